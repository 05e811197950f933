"""Scenarios 6 and 7: a transaction crashed before its commit, zombie fencing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.demos.conftest import DemoCli, read_jsonl

pytestmark = pytest.mark.integration

RECORDS = 12


@pytest.mark.parametrize(("seed", "abort_by"), [(1, "new-producer"), (2, "timeout")])
def test_txn_crash_before_commit(demo_cli: DemoCli, seed: int, abort_by: str) -> None:
    code, result = demo_cli(
        "run",
        "txn-crash",
        "--seed",
        str(seed),
        "--records",
        str(RECORDS),
        "--set",
        f"abort_by={abort_by}",
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["written_in_crashed_txn"] == RECORDS
    assert counts["committed_visible_before_abort"] == 0
    assert counts["uncommitted_visible_before_abort"] == RECORDS
    assert counts["aborted_visible_read_committed"] == 0
    assert counts["aborted_visible_read_uncommitted"] == RECORDS
    assert counts["delivered"] == RECORDS
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["read_uncommitted_total"] == 2 * RECORDS
    crashes = [e for e in read_jsonl(result, "producer-1") if e["kind"] == "crash"]
    assert [e["point"] for e in crashes] == ["before_commit"]
    kinds = [e["kind"] for e in result["timeline"]]
    assert kinds.index("crash") < kinds.index("aborted") < kinds.index("recovered")


@pytest.mark.parametrize("seed", [1, 2])
def test_zombie_is_fenced(demo_cli: DemoCli, seed: int) -> None:
    code, result = demo_cli(
        "run",
        "zombie-fencing",
        "--seed",
        str(seed),
        "--records",
        str(RECORDS),
        *(["--png"] if seed == 1 else []),
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["fenced"] == 1
    assert counts["zombie_written_before_pause"] == RECORDS
    assert counts["zombie_visible_read_committed"] == 0
    assert counts["zombie_visible_read_uncommitted"] == RECORDS
    assert counts["zombie_late_records_in_log"] == 0
    assert counts["delivered"] == RECORDS
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    zombie = read_jsonl(result, "producer-1")
    if seed == 1:
        assert (Path(result["run_dir"]) / "timeline.png").stat().st_size > 0
    assert [e["kind"] for e in zombie if e["kind"] in ("hold", "go", "fenced")] == [
        "hold",
        "go",
        "fenced",
    ]
