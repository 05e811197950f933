"""Change events: outbox rows, their Kafka topic, key and envelope.

The envelope (value of each record) is JSON in Debezium's shape::

    {"op": "c" | "u" | "d",
     "before": {...} | null, "after": {...} | null,
     "source": {"db", "schema", "table", "seq", "tx_id", "changed_ms",
                "commit_ms"},
     "ts_ms": ...}

``before``/``after`` are the row objects the trigger serialised in Java; they
are spliced in as text, never parsed and re-encoded, so every value keeps the
exact text the trigger wrote (DECIMAL as a string with its scale, temporal
values as ISO-8601 text, binary as base64, JSON embedded, ARRAY as a JSON
array; see ValueWriter.java). ``source.seq`` is the outbox sequence (unique,
not contiguous, not commit-ordered across transactions), ``tx_id`` H2's
transaction id, ``changed_ms`` the server time when the row changed, and
``commit_ms`` when the relay first read the committed row: the trigger cannot
see the commit, so this is an upper bound of the commit time (within one
poll interval). ``ts_ms`` is when the relay built the event.

Key: the primary-key columns as a JSON object (``{"ID":1}``), or no key for
a table without a primary key (those go to partition 0, see ``partition_of``).
A delete with the rule's tombstone option is followed by a record with the
same key and a null value, for compacted topics.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

# Kafka topic names: at most 249 of [a-zA-Z0-9._-].
_TOPIC_CHAR = re.compile(r"[^a-zA-Z0-9._-]")
_MAX_TOPIC = 249

OUTBOX_COLUMNS = (
    "SEQ, TX_ID, TABLE_SCHEMA, TABLE_NAME, OP, KEY_JSON, BEFORE_JSON, AFTER_JSON, "
    "CHANGED_AT_MS, TOMBSTONE"
)


@dataclass(frozen=True)
class OutboxRow:
    """One captured change as the trigger wrote it into the outbox."""

    seq: int
    tx_id: str | None
    schema: str
    table: str
    op: str
    key_json: str | None
    before_json: str | None
    after_json: str | None
    changed_at_ms: int
    tombstone: bool

    @classmethod
    def from_row(cls, row: list[Any]) -> OutboxRow:
        """From a row selected with ``OUTBOX_COLUMNS``."""
        seq, tx_id, schema, table, op, key, before, after, changed, tomb = row
        return cls(
            int(seq),
            tx_id,
            schema,
            table,
            op.strip(),
            key,
            before,
            after,
            int(changed),
            bool(tomb),
        )

    @property
    def size(self) -> int:
        """Bytes the event will take, near enough to check against limits."""
        return (
            sum(
                len(p or "") for p in (self.key_json, self.before_json, self.after_json)
            )
            + 300
        )


def topic_for(prefix: str, schema: str, table: str) -> str:
    """``<prefix>.<schema>.<table>``; names Kafka cannot take are made safe.

    A character outside [a-zA-Z0-9._-] becomes ``_`` and a short hash of the
    exact names is appended, so two tables never share a topic.
    """
    wanted = f"{prefix}.{schema}.{table}"
    safe = _TOPIC_CHAR.sub("_", wanted)
    if safe == wanted and len(safe) <= _MAX_TOPIC:
        return safe
    digest = hashlib.sha1(f"{schema}\x00{table}".encode()).hexdigest()[:8]
    return f"{safe[: _MAX_TOPIC - 9]}.{digest}"


def key_bytes(row: OutboxRow) -> bytes | None:
    return None if row.key_json is None else row.key_json.encode("utf-8")


def partition_of(row: OutboxRow) -> int | None:
    """Partition 0 for tables without a primary key (their only order), else the
    partitioner's choice by key."""
    return 0 if row.key_json is None else None


def envelope(row: OutboxRow, database: str, commit_ms: int, now_ms: int) -> bytes:
    """The record value: the Debezium-shaped envelope, exact values spliced in."""
    source = {
        "db": database,
        "schema": row.schema,
        "table": row.table,
        "seq": row.seq,
        "tx_id": row.tx_id,
        "changed_ms": row.changed_at_ms,
        "commit_ms": commit_ms,
    }
    text = (
        '{"op":'
        + json.dumps(row.op)
        + ',"before":'
        + (row.before_json or "null")
        + ',"after":'
        + (row.after_json or "null")
        + ',"source":'
        + json.dumps(source, ensure_ascii=False, separators=(",", ":"))
        + ',"ts_ms":'
        + str(now_ms)
        + "}"
    )
    return text.encode("utf-8")


def seq_ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted sequence numbers as [first, last] runs: compact for positions."""
    ranges: list[list[int]] = []
    for seq in sorted(seqs):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


def expand_ranges(ranges: list[list[int]]) -> list[int]:
    return [seq for first, last in ranges for seq in range(first, last + 1)]
