"""Scenario 8: acks=1 and unclean election lose acknowledged records; acks=all not."""

from __future__ import annotations

import pytest

from core.demos import kafka_io
from core.stack import Stack
from tests.integration.demos.conftest import DemoCli

pytestmark = pytest.mark.integration

RECORDS = 8


@pytest.mark.parametrize("seed", [1, 2])
def test_acks1_loses_what_acks_all_never_promised(
    demo_cli: DemoCli, stack: Stack, bootstrap: str, seed: int
) -> None:
    code, result = demo_cli(
        "run", "broker-failure", "--seed", str(seed), "--records", str(RECORDS)
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    assert result["crash_reached"]
    counts = result["counts"]
    half = RECORDS // 2
    assert counts["acks1_acked"] == RECORDS
    assert counts["acks1_acked_while_alone"] == half
    assert counts["acks1_lost"] == half
    assert counts["acks1_delivered"] == half
    assert counts["acks1_duplicated"] == 0
    assert counts["acksall_acked"] == half
    assert counts["acksall_refused"] == RECORDS - half
    assert counts["acksall_lost"] == 0
    assert counts["acksall_delivered"] == half
    lost = set(result["ledgers"]["acks1"]["lost_ids"])
    assert lost == {f"acks1-{n:06d}" for n in range(half, RECORDS)}

    # The demo put the cluster back: every broker up, every ISR full.
    assert all(node.up for node in stack.status().nodes)
    kafka_io.wait_for_full_isr(bootstrap, ["__consumer_offsets"], timeout=1)
