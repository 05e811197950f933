"""The ledger of a demo run: ids that went in versus ids the output holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutputRecord:
    """One record as a reader found it: its id, key, sequence within the key."""

    id: str
    key: str = ""
    seq: int = 0
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True)
class LedgerCounts:
    """What the ledger found; every field is an exact count."""

    expected: int
    delivered: int
    lost: int
    duplicated: int
    phantom: int
    out_of_order: int
    lost_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)
    phantom_ids: list[str] = field(default_factory=list)

    def to_json(self, sample: int = 20) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "phantom": self.phantom,
            "out_of_order": self.out_of_order,
            "lost_ids": self.lost_ids[:sample],
            "duplicated_ids": self.duplicated_ids[:sample],
            "phantom_ids": self.phantom_ids[:sample],
        }


class Ledger:
    """Counts loss, duplication, phantoms and reordering of one output.

    ``expected`` are the ids that must appear exactly once (records acknowledged,
    committed, or changes that committed). ``forbidden`` are ids that must not
    appear at all (records of aborted transactions, rolled-back changes); any
    id the output holds that is in neither set is a phantom too.
    """

    def __init__(self) -> None:
        self._expected: dict[str, tuple[str, int]] = {}
        self._forbidden: set[str] = set()

    def expect(self, record_id: str, key: str = "", seq: int = 0) -> None:
        self._expected[record_id] = (key, seq)
        self._forbidden.discard(record_id)

    def forbid(self, record_id: str) -> None:
        if record_id not in self._expected:
            self._forbidden.add(record_id)

    def expect_all(self, records: Iterable[tuple[str, str, int]]) -> None:
        for record_id, key, seq in records:
            self.expect(record_id, key, seq)

    @property
    def expected_ids(self) -> set[str]:
        return set(self._expected)

    def count(self, output: Iterable[OutputRecord]) -> LedgerCounts:
        """Compare ``output`` (in the order a reader saw it) with the ledger."""
        records = list(output)
        seen = Counter(r.id for r in records)
        lost = sorted(i for i in self._expected if i not in seen)
        duplicated = sorted(i for i, n in seen.items() if n > 1)
        phantom = sorted(i for i in seen if i not in self._expected)
        return LedgerCounts(
            expected=len(self._expected),
            delivered=sum(1 for i in seen if i in self._expected),
            lost=len(lost),
            duplicated=sum(n - 1 for n in seen.values() if n > 1),
            phantom=sum(seen[i] for i in phantom),
            out_of_order=out_of_order(records),
            lost_ids=lost,
            duplicated_ids=duplicated,
            phantom_ids=phantom,
        )


def out_of_order(records: Iterable[OutputRecord]) -> int:
    """How many records came after a record of the same key with a higher seq.

    Records are taken in the order given (per partition, offset order); a
    duplicate that repeats an earlier record counts as out of order only if a
    later sequence of its key was already seen.
    """
    highest: dict[str, int] = {}
    late = 0
    for record in records:
        top = highest.get(record.key)
        if top is not None and record.seq < top:
            late += 1
        else:
            highest[record.key] = record.seq
    return late
