"""Scenario 9: the relay SIGKILLed during a workload, exactly-once throughout."""

from __future__ import annotations

import uuid

import pytest

from core.cdc.relay import RelayConfig
from core.settings import Settings
from tests.integration.capture.conftest import running_relay
from tests.integration.demos.conftest import DemoCli, read_jsonl

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("seed", "kills"), [(1, 2), (2, 1)])
def test_relay_killed_loses_and_repeats_nothing(
    demo_cli: DemoCli, seed: int, kills: int
) -> None:
    code, result = demo_cli(
        "run",
        "relay-crash",
        "--seed",
        str(seed),
        "--records",
        "10",
        "--set",
        f"kills={kills}",
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["kills"] == kills
    assert counts["expected"] >= 10
    assert counts["delivered"] == counts["expected"]
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["phantom"] == 0
    assert counts["out_of_order"] == 0
    # The ledger is the workload's own record of the outbox rows it committed.
    committed = [e for e in read_jsonl(result, "workload") if e["kind"] == "committed"]
    assert sum(len(e["ids"]) for e in committed) == counts["expected"]
    killed = [e["source"] for e in result["timeline"] if e["text"] == "SIGKILL: relay"]
    assert killed == [f"relay-{n}" for n in range(1, kills + 1)]


def test_relay_crash_passes_beside_the_users_relay_for_all_schemas(
    demo_cli: DemoCli, stack_settings: Settings
) -> None:
    # A trainer's usual set-up: the shop workload's relay publishes every
    # schema while a demo runs. The demo's schema is claimed, so that relay
    # leaves its changes alone instead of taking half of them.
    config = RelayConfig(
        prefix=f"user{uuid.uuid4().hex[:6]}", relay_id=f"user-{uuid.uuid4().hex[:6]}"
    )
    with running_relay(stack_settings, config) as (relay, errors):
        code, result = demo_cli(
            "run", "relay-crash", "--seed", "3", "--records", "8", "--set", "kills=1"
        )

    assert errors == []
    assert relay.stats.state == "stopped"
    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert (counts["lost"], counts["duplicated"]) == (0, 0)
    assert counts["delivered"] == counts["expected"] >= 8
    # The demo's relays leave no status file behind for `relay status`.
    statuses = [p.name for p in (stack_settings.data_path / "relay").glob("*.json")]
    assert [name for name in statuses if name.startswith("demo-relay-")] == []
