"""Change events as pure logic: topic names, envelopes, position ranges."""

from __future__ import annotations

import json

from core.cdc.events import (
    OutboxRow,
    envelope,
    expand_ranges,
    key_bytes,
    partition_of,
    seq_ranges,
    topic_for,
)


def _row(**changes: object) -> OutboxRow:
    values: dict[str, object] = {
        "seq": 42,
        "tx_id": "abc-7",
        "schema": "SHOP",
        "table": "ORDERS",
        "op": "u",
        "key_json": '{"ID":1}',
        "before_json": '{"ID":1,"X":"1.50"}',
        "after_json": '{"ID":1,"X":"2.50"}',
        "changed_at_ms": 1000,
        "tombstone": False,
    }
    return OutboxRow(**(values | changes))  # type: ignore[arg-type]


def test_topic_names_are_kept_or_made_safe_and_distinct() -> None:
    assert topic_for("h2", "SHOP", "ORDERS") == "h2.SHOP.ORDERS"
    odd = topic_for("h2", "Shop ü", "Ordér")
    assert (
        odd.startswith("h2.Shop__.Ord_r.") and len(odd) == len("h2.Shop__.Ord_r.") + 8
    )
    assert topic_for("h2", "A B", "C") != topic_for("h2", "A_B", "C")
    assert len(topic_for("h2", "S", "T" * 400)) == 249


def test_envelope_splices_row_text_exactly() -> None:
    value = envelope(_row(), "studio", commit_ms=2000, now_ms=3000)

    assert value.startswith(b'{"op":"u","before":{"ID":1,"X":"1.50"},')
    assert json.loads(value) == {
        "op": "u",
        "before": {"ID": 1, "X": "1.50"},
        "after": {"ID": 1, "X": "2.50"},
        "source": {
            "db": "studio",
            "schema": "SHOP",
            "table": "ORDERS",
            "seq": 42,
            "tx_id": "abc-7",
            "changed_ms": 1000,
            "commit_ms": 2000,
        },
        "ts_ms": 3000,
    }


def test_keys_and_partitions() -> None:
    assert key_bytes(_row()) == b'{"ID":1}'
    assert partition_of(_row()) is None
    assert (key_bytes(_row(key_json=None)), partition_of(_row(key_json=None))) == (
        None,
        0,
    )


def test_seq_ranges_round_trip() -> None:
    seqs = [9, 1, 2, 3, 7, 10, 5]
    assert seq_ranges(seqs) == [[1, 3], [5, 5], [7, 7], [9, 10]]
    assert expand_ranges(seq_ranges(seqs)) == sorted(seqs)
    assert seq_ranges([]) == []
