"""Scenario 5: lost produce responses make duplicates unless idempotence is on."""

from __future__ import annotations

import pytest

from tests.integration.demos.conftest import DemoCli

pytestmark = pytest.mark.integration

RECORDS = 20


@pytest.mark.parametrize("seed", [1, 2])
def test_duplicates_only_without_idempotence(demo_cli: DemoCli, seed: int) -> None:
    code, result = demo_cli(
        "run",
        "idempotent-producer",
        "--seed",
        str(seed),
        "--records",
        str(RECORDS),
        "--set",
        "drops=2",
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    for mode in ("off", "on"):
        assert counts[f"{mode}_dropped"] == 2
        assert counts[f"{mode}_acked"] == RECORDS
        assert counts[f"{mode}_delivered"] == RECORDS
        assert counts[f"{mode}_lost"] == 0
    assert counts["off_duplicated"] >= 2
    assert counts["on_duplicated"] == 0
    assert counts["on_out_of_order"] == 0
    dropped = [e for e in result["timeline"] if e["kind"] == "dropped"]
    assert len(dropped) == 4
