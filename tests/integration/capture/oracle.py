"""Independent checks for capture tests: tables rebuilt from topics vs SELECT *."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.h2.catalog import Table, quote
from core.h2.connection import H2Connection
from tests.integration.capture.conftest import Record


def rebuild(records: list[Record]) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """State per key from change events (per partition, offset order), and the
    outbox sequence of every event seen."""
    state: dict[str, dict[str, Any]] = {}
    seqs: list[int] = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            continue
        event = json.loads(record.value)
        seqs.append(event["source"]["seq"])
        key = (record.key or b"").decode()
        if event["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = event["after"]
    return state, seqs


def normalise(value: Any, type_name: str) -> Any:
    """One value from either side in a comparable form; the type decides."""
    if value is None:
        return None
    if type_name in ("DECIMAL", "NUMERIC"):
        return Decimal(str(value))
    if type_name.startswith("TIMESTAMP"):
        return datetime.fromisoformat(str(value))
    return value


def table_rows(conn: H2Connection, table: Table) -> dict[str, dict[str, Any]]:
    """SELECT * keyed like the topic: the primary key as compact JSON."""
    result = conn.run(f"SELECT * FROM {table.qualified}")
    types = {c.name: c.type_name for c in table.columns}
    rows = {}
    for values in result.rows:
        row = dict(zip(result.columns, values, strict=True))
        key = json.dumps({c: row[c] for c in table.primary_key}, separators=(",", ":"))
        rows[key] = {c: normalise(v, types[c]) for c, v in row.items()}
    return rows


def compare(conn: H2Connection, table: Table, records: list[Record]) -> list[str]:
    """Differences between the table and its topic; empty when they agree."""
    state, _ = rebuild(records)
    types = {c.name: c.type_name for c in table.columns}
    rebuilt = {
        key: {c: normalise(v, types[c]) for c, v in row.items()}
        for key, row in state.items()
    }
    actual = table_rows(conn, table)
    problems = []
    for key in sorted(set(actual) | set(rebuilt)):
        if actual.get(key) != rebuilt.get(key):
            problems.append(
                f"{table.name} {key}: H2 {actual.get(key)} topic {rebuilt.get(key)}"
            )
    return problems


def lost_and_duplicated(expected: set[int], seen: list[int]) -> tuple[int, int]:
    counts = Counter(seen)
    return len(expected - set(counts)), sum(n - 1 for n in counts.values() if n > 1)


__all__ = ["compare", "lost_and_duplicated", "quote", "rebuild"]
