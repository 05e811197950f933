"""Scenario 10: the webhook path loses and invents changes; the outbox does not."""

from __future__ import annotations

import pytest

from tests.integration.demos.conftest import DemoCli, read_jsonl

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", [1, 2])
def test_webhook_loses_and_invents_outbox_neither(demo_cli: DemoCli, seed: int) -> None:
    code, result = demo_cli(
        "run", "webhook-vs-outbox", "--seed", str(seed), "--records", "5"
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    workload = read_jsonl(result, "workload")
    committed = [e for e in workload if e["kind"] == "committed"]
    rolled_back = [e for e in workload if e["kind"] == "aborted"]
    down = sum(len(e["ids"]) for e in committed if e["phase"] == 2)
    up_rolled_back = sum(len(e["ids"]) for e in rolled_back if e["phase"] != 2)
    assert counts["committed_while_down"] == down >= 1
    assert counts["rolled_back_while_up"] == up_rolled_back >= 1

    # The webhook path: exactly the changes committed while the receiver was
    # down are lost; the rolled-back changes it posted while up are in Kafka.
    lost = result["ledgers"]["webhook"]["lost_ids"]
    down_ids = sorted(i for e in committed if e["phase"] == 2 for i in e["ids"])
    assert sorted(lost) == down_ids
    assert counts["webhook_lost"] == down
    assert counts["webhook_lost_outside_outage"] == 0
    assert 1 <= counts["webhook_phantom"] <= up_rolled_back
    assert counts["webhook_duplicated"] == 0

    # The outbox: exactly what committed.
    assert counts["outbox_expected"] == sum(len(e["ids"]) for e in committed)
    assert counts["outbox_delivered"] == counts["outbox_expected"]
    assert counts["outbox_lost"] == 0
    assert counts["outbox_phantom"] == 0
    assert counts["outbox_duplicated"] == 0
