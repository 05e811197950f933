"""The ledger's counts of lost, duplicated, phantom and out-of-order records."""

from __future__ import annotations

from core.demos.ledger import Ledger, OutputRecord, out_of_order


def _out(*items: tuple[str, str, int]) -> list[OutputRecord]:
    return [OutputRecord(i, k, s, 0, n) for n, (i, k, s) in enumerate(items)]


def test_counts_lost_duplicated_and_phantom() -> None:
    ledger = Ledger()
    ledger.expect_all([("a", "k1", 1), ("b", "k1", 2), ("c", "k2", 1), ("d", "k2", 2)])
    ledger.forbid("x")

    counts = ledger.count(
        _out(
            ("a", "k1", 1),
            ("a", "k1", 1),
            ("c", "k2", 1),
            ("x", "k3", 1),
            ("y", "k3", 2),
            ("a", "k1", 1),
        )
    )

    assert counts.expected == 4
    assert counts.delivered == 2
    assert counts.lost == 2
    assert counts.lost_ids == ["b", "d"]
    assert counts.duplicated == 2
    assert counts.duplicated_ids == ["a"]
    assert counts.phantom == 2
    assert counts.phantom_ids == ["x", "y"]


def test_forbid_does_not_override_expect() -> None:
    ledger = Ledger()
    ledger.expect("a")
    ledger.forbid("a")

    assert ledger.count(_out(("a", "", 0))).phantom == 0


def test_out_of_order_per_key() -> None:
    records = _out(
        ("a", "k1", 1),
        ("b", "k2", 1),
        ("c", "k1", 3),
        ("d", "k1", 2),
        ("e", "k2", 2),
        ("f", "k1", 4),
    )

    assert out_of_order(records) == 1


def test_redelivery_after_a_later_record_is_out_of_order() -> None:
    records = _out(("a", "k", 1), ("b", "k", 2), ("a", "k", 1), ("b", "k", 2))

    assert out_of_order(records) == 1
