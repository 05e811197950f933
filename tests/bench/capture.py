"""Benchmarks of change capture, measured in one run on a running stack.

    CDC_STUDIO_TEST_PORT_BASE=... .venv/bin/python -m tests.bench.capture DATA_DIR

1. H2 write rate with capture on / off on the same statements (goal >= 0.7).
2. Relay throughput per mode / a raw confluent-kafka producer with the same
   settings sending the same events (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from core.cdc import events
from core.cdc.relay import Relay, RelayConfig, ensure_topics
from core.h2 import outbox, triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.settings import Settings
from tests.conftest import test_settings

ROWS = 5000


def _write(conn: H2Connection, table: str, rows: int) -> float:
    """Rows per second inserted, 50 per transaction."""
    conn.set_autocommit(False)
    started = time.perf_counter()
    for i in range(rows):
        conn.run(f"INSERT INTO {table} VALUES (?, ?, ?)", [i, f"name {i}", i * 3])
        if i % 50 == 49:
            conn.commit()
    conn.commit()
    conn.set_autocommit(True)
    return rows / (time.perf_counter() - started)


def write_ratio(conn: H2Connection, schema: str) -> tuple[float, float]:
    ddl = "(ID INT PRIMARY KEY, NAME VARCHAR, N DECIMAL(10,2))"
    conn.run(f"CREATE TABLE {quote(schema)}.OFF {ddl}")
    conn.run(f"CREATE TABLE {quote(schema)}.ON_ {ddl}")
    triggers.add_rule(conn, triggers.CaptureRule(schema, "ON_"))
    off = _write(conn, f"{quote(schema)}.OFF", ROWS)
    on = _write(conn, f"{quote(schema)}.ON_", ROWS)
    return on, off


def relay_rate(settings: Settings, schema: str, mode: str) -> float:
    relay = Relay(
        settings,
        RelayConfig(
            mode=mode,
            prefix=f"b{uuid.uuid4().hex[:6]}",
            relay_id=f"bench-{uuid.uuid4().hex[:6]}",
            schemas=(schema,),
            batch_size=500,
        ),
    )
    relay.run_once()  # start-up (fencing, position) and the first batch: not timed
    started = time.perf_counter()
    total = 0
    while published := relay.run_once():
        total += published
    elapsed = time.perf_counter() - started
    relay.close()
    return total / elapsed


def raw_rate(settings: Settings, rows: list[events.OutboxRow], mode: str) -> float:
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.bootstrap_servers, {topic}, 3, 3)
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": True,
    }
    if mode == "exactly-once":
        config["transactional.id"] = f"raw-{uuid.uuid4().hex[:6]}"
    producer = Producer(config)
    if mode == "exactly-once":
        producer.init_transactions(30)
    started = time.perf_counter()
    for start in range(0, len(rows), 500):
        if mode == "exactly-once":
            producer.begin_transaction()
        for row in rows[start : start + 500]:
            producer.produce(
                topic,
                key=events.key_bytes(row),
                value=events.envelope(row, "studio", 0, 0),
            )
            producer.poll(0)
        if mode == "exactly-once":
            producer.commit_transaction(30)
        else:
            producer.flush(30)
    return len(rows) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    settings = test_settings(args.data_dir)
    conn = H2Connection(settings)
    triggers.ensure_metadata(conn)
    schema = f"BENCH_{uuid.uuid4().hex[:6].upper()}"
    conn.run(f'CREATE SCHEMA "{schema}"')

    on, off = write_ratio(conn, schema)
    print(
        f"H2 writes: capture on {on:.0f}/s, off {off:.0f}/s, ratio {on / off:.2f}"
        " (goal >= 0.7)"
    )
    rows = outbox.fetch(conn, ROWS, (schema,))
    for mode in ("exactly-once", "idempotent"):
        raw = raw_rate(settings, rows, mode)
        relayed = relay_rate(settings, schema, mode)
        print(
            f"relay {mode}: {relayed:.0f}/s, raw producer {raw:.0f}/s, "
            f"ratio {relayed / raw:.2f} (goal >= 0.8)"
        )
        conn.run(f"DELETE FROM {quote(schema)}.ON_")
        conn.run(f"INSERT INTO {quote(schema)}.ON_ SELECT * FROM {quote(schema)}.OFF")
        conn.run(
            f"DELETE FROM {triggers.OUTBOX} WHERE OP = 'd' AND TABLE_SCHEMA = ?",
            [schema],
        )
        rows = outbox.fetch(conn, ROWS, (schema,))
    conn.run(f"DELETE FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ?", [schema])
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
