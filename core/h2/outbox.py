"""The outbox table as the relay uses it: read a batch, delete, reject, count.

Claims: a relay started for given schemas claims them (``claim``), and a
relay for all schemas leaves claimed schemas alone, so a demo's relay and
the user's relay never publish the same rows under two transactional ids.
A claim outlives a crash of its relay on purpose: the rows wait for that
relay, which knows from its position topic what it already published. A
clean stop releases it (``release``). The first claim holds: a demo claims
its schema when it creates it, and its relays' own claims then change
nothing.
"""

from __future__ import annotations

import logging
import time

from core.cdc.events import OUTBOX_COLUMNS, OutboxRow
from core.h2.connection import H2Connection
from core.h2.triggers import CLAIMS, OUTBOX, REJECTED

log = logging.getLogger(__name__)

_CHUNK = 500


def fetch(
    conn: H2Connection, limit: int, schemas: tuple[str, ...] = ()
) -> list[OutboxRow]:
    """The committed rows with the lowest sequence numbers, in sequence order.

    Per key this is commit order: a second change of a row waits for the
    row lock of the first, so it gets a higher sequence and commits later.
    """
    if schemas:
        where = "WHERE TABLE_SCHEMA IN (" + ", ".join("?" * len(schemas)) + ") "
    else:
        where = f"WHERE TABLE_SCHEMA NOT IN (SELECT TABLE_SCHEMA FROM {CLAIMS}) "
    rows = conn.query(
        f"SELECT {OUTBOX_COLUMNS} FROM {OUTBOX} {where}ORDER BY SEQ LIMIT ?",
        [*schemas, limit],
    )
    return [OutboxRow.from_row(r) for r in rows]


# The claim of a relay for all schemas (one at a time: a second would publish
# every unclaimed change again). Not a name H2 gives a schema unless quoted so.
ALL_SCHEMAS = "*"


def claim(conn: H2Connection, schemas: tuple[str, ...], owner: str) -> dict[str, str]:
    """Reserve ``schemas`` for ``owner`` unless someone holds them already
    (relays for all schemas skip claimed schemas); who holds each now."""
    now = int(time.time() * 1000)
    for schema in schemas:
        conn.run(
            f"INSERT INTO {CLAIMS} (TABLE_SCHEMA, OWNER, CLAIMED_AT_MS) "
            f"SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM {CLAIMS} "
            "WHERE TABLE_SCHEMA = ?)",
            [schema, owner, now, schema],
        )
    if schemas:
        log.debug("%s claimed schemas %s", owner, ", ".join(schemas))
    held = claims(conn)
    return {schema: held[schema] for schema in schemas if schema in held}


def release(conn: H2Connection, owner: str, schemas: tuple[str, ...] = ()) -> int:
    """Give back ``owner``'s claims (only those of ``schemas`` when given)."""
    if not schemas:
        result = conn.run(f"DELETE FROM {CLAIMS} WHERE OWNER = ?", [owner])
        return result.update_count or 0
    released = 0
    for schema in schemas:
        result = conn.run(
            f"DELETE FROM {CLAIMS} WHERE OWNER = ? AND TABLE_SCHEMA = ?",
            [owner, schema],
        )
        released += result.update_count or 0
    return released


def release_schema(conn: H2Connection, schema: str) -> str | None:
    """Drop the claim on ``schema`` whoever holds it; the owner it had."""
    owner = claims(conn).get(schema)
    conn.run(f"DELETE FROM {CLAIMS} WHERE TABLE_SCHEMA = ?", [schema])
    return owner


def claims(conn: H2Connection) -> dict[str, str]:
    """Claimed schema -> owner."""
    rows = conn.query(f"SELECT TABLE_SCHEMA, OWNER FROM {CLAIMS} ORDER BY 1")
    return {str(s): str(o) for s, o in rows}


def delete(conn: H2Connection, seqs: list[int]) -> int:
    """Delete published rows; deleting one twice is harmless."""
    deleted = 0
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        listed = ", ".join(str(int(s)) for s in chunk)
        result = conn.run(f"DELETE FROM {OUTBOX} WHERE SEQ IN ({listed})")
        deleted += result.update_count or 0
    return deleted


def reject(conn: H2Connection, row: OutboxRow, reason: str) -> None:
    """Move a row that Kafka cannot take to the rejected table, atomically."""
    with conn.transaction():
        conn.run(
            f"INSERT INTO {REJECTED} SELECT {OUTBOX_COLUMNS}, ?, ? FROM {OUTBOX} "
            "WHERE SEQ = ?",
            [reason, int(time.time() * 1000), row.seq],
        )
        conn.run(f"DELETE FROM {OUTBOX} WHERE SEQ = ?", [row.seq])


def backlog(conn: H2Connection) -> int:
    """Committed changes not yet published."""
    return int(conn.query(f"SELECT COUNT(*) FROM {OUTBOX}")[0][0])


def per_table(conn: H2Connection) -> dict[tuple[str, str], int]:
    """The backlog of each captured table."""
    rows = conn.query(
        f"SELECT TABLE_SCHEMA, TABLE_NAME, COUNT(*) FROM {OUTBOX} "
        "GROUP BY TABLE_SCHEMA, TABLE_NAME"
    )
    return {(s, t): int(n) for s, t, n in rows}


def rejected(conn: H2Connection) -> list[tuple[int, str, str, str | None, str]]:
    """Rejected rows: sequence, schema, table, key and reason."""
    rows = conn.query(
        f"SELECT SEQ, TABLE_SCHEMA, TABLE_NAME, KEY_JSON, REASON FROM {REJECTED} "
        "ORDER BY SEQ"
    )
    return [(int(a), b, c, d, e) for a, b, c, d, e in rows]


def close_quietly(conn: H2Connection | None) -> None:
    """Close a connection that may be broken already (H2 restarted)."""
    if conn is None:
        return
    try:
        conn.close()
    except Exception:
        log.debug("closing a broken H2 connection", exc_info=True)
