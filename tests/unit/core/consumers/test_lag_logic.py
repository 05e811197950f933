"""Pure parts of lag: where counting starts, how scans become counts, tool tables."""

from __future__ import annotations

from core.kafka.lag import GroupTarget, _count, _Ends, _start
from core.kafka.offset_probe import NextRecord, Scan
from core.kafka.transactions import parse_table

ENDS = _Ends(log_start=5, high_watermark=20, last_stable_offset=12, newest_ms=None)
TP = ("t", 0)


def test_start_follows_commit_reset_policy_and_log_start() -> None:
    assert _start(9, ENDS, GroupTarget("g")) == (9, "committed")
    assert _start(2, ENDS, GroupTarget("g")) == (5, "below-log-start")
    earliest = GroupTarget("g", reset_policy="earliest")
    assert _start(None, ENDS, earliest) == (5, "no-committed-offset")
    latest_rc = GroupTarget("g", isolation="read_committed")
    assert _start(None, ENDS, latest_rc) == (12, "no-committed-offset")
    assert _start(None, ENDS, GroupTarget("g")) == (20, "no-committed-offset")


def test_count_prefers_records_over_offsets() -> None:
    assert _count(20, 20, {}, TP) == (0, True)
    assert _count(25, 20, {}, TP) == (0, True)  # never negative
    assert _count(10, 20, {}, TP) == (10, False)  # no scan answer
    assert _count(10, 20, {(TP, 10, 20): Scan(None, 0)}, TP) == (
        0,
        True,
    )  # only markers
    assert _count(10, 20, {(TP, 10, 20): Scan(NextRecord(11, 1), 7)}, TP) == (7, True)
    assert _count(10, 20, {(TP, 10, 20): Scan(NextRecord(13, 1), None)}, TP) == (
        7,
        False,
    )


def test_parse_table_reads_the_tools_padded_columns() -> None:
    text = (
        "ProducerId\tProducerEpoch\tCurrentTransactionStartOffset\t\n"
        "36        \t0            \t0                            \t\n"
        "37        \t2            \tNone                         \t\n"
    )
    assert parse_table(text) == [
        {
            "ProducerId": "36",
            "ProducerEpoch": "0",
            "CurrentTransactionStartOffset": "0",
        },
        {
            "ProducerId": "37",
            "ProducerEpoch": "2",
            "CurrentTransactionStartOffset": "None",
        },
    ]


def test_reset_none_without_a_committed_offset_says_the_consumer_fails() -> None:
    from core.kafka.lag import PartitionLag

    def part(reset: str) -> PartitionLag:
        return PartitionLag(
            "g", "t", 0, None, 0, 5, 5, 0, 0, "read_uncommitted",
            "no-committed-offset", reset,
        )  # fmt: skip

    assert part("none").note() == (
        "no-committed-offset; auto.offset.reset=none: a consumer of this group "
        "fails here"
    )
    assert part("latest").note() == "no-committed-offset"
