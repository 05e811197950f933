"""Scenarios 1-4: consumer members crashed at their named points, then recovered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.demos.conftest import DemoCli, read_jsonl

pytestmark = pytest.mark.integration

RECORDS = 20


def _crash_points(result: dict[str, Any]) -> list[str]:
    """The crash points the group's members reported, from the run's own log."""
    events = read_jsonl(result, "group")
    return [e["detail"]["point"] for e in events if e["kind"] == "member-crashed"]


@pytest.mark.parametrize("seed", [1, 2])
def test_at_most_once_loses_the_committed_batch(demo_cli: DemoCli, seed: int) -> None:
    code, result = demo_cli(
        "run", "at-most-once", "--seed", str(seed), "--records", str(RECORDS)
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["committed_unprocessed_at_crash"] >= 1
    assert counts["lost"] == counts["committed_unprocessed_at_crash"]
    assert counts["delivered"] == RECORDS - counts["lost"]
    assert counts["duplicated"] == 0
    assert _crash_points(result) == ["after-commit-before-process"]


@pytest.mark.parametrize("seed", [1, 2])
def test_at_least_once_repeats_the_uncommitted_batch(
    demo_cli: DemoCli, seed: int
) -> None:
    code, result = demo_cli(
        "run", "at-least-once", "--seed", str(seed), "--records", str(RECORDS)
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["processed_uncommitted_at_crash"] >= 1
    assert counts["duplicated"] == counts["processed_uncommitted_at_crash"]
    assert counts["lost"] == 0
    assert counts["delivered"] == RECORDS
    assert _crash_points(result) == ["after-process-before-commit"]


@pytest.mark.parametrize(
    ("seed", "point"), [(1, "before-commit-transaction"), (2, "mid-transaction")]
)
def test_eos_kafka_exactly_once_for_read_committed(
    demo_cli: DemoCli, seed: int, point: str
) -> None:
    code, result = demo_cli(
        "run",
        "eos-kafka",
        "--seed",
        str(seed),
        "--records",
        str(RECORDS),
        "--set",
        f"crash_point={point}",
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["delivered"] == RECORDS
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert counts["committed_total"] == RECORDS
    assert counts["uncommitted_lost"] == 0
    assert counts["uncommitted_duplicated"] == counts["aborted_records_in_log"]
    assert counts["uncommitted_total"] == RECORDS + counts["aborted_records_in_log"]
    assert _crash_points(result) == [point]


@pytest.mark.parametrize("seed", [1, 2])
def test_eos_h2_exactly_once(demo_cli: DemoCli, seed: int) -> None:
    code, result = demo_cli(
        "run", "eos-h2", "--seed", str(seed), "--records", str(RECORDS)
    )

    assert result["verdict"] == "pass", result
    assert code == 0
    counts = result["counts"]
    assert counts["delivered"] == RECORDS
    assert counts["lost"] == 0
    assert counts["duplicated"] == 0
    assert _crash_points(result) == ["after-write-before-db-commit"]


def test_crash_point_never_reached_is_not_a_pass(demo_cli: DemoCli) -> None:
    code, result = demo_cli(
        "run", "at-most-once", "--records", "8", "--set", "crash_after=1000"
    )

    assert result["verdict"] == "crash point not reached"
    assert result["crash_reached"] is False
    assert code == 1
    assert _crash_points(result) == []
