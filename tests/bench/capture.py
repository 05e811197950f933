"""Benchmarks of change capture, measured in one run on a running stack.

    CDC_STUDIO_TEST_PORT_BASE=... .venv/bin/python -m tests.bench.capture DATA_DIR

1. H2 write rate with capture on / off on the same statements (goal >= 0.7).
2. Relay throughput per mode / a raw confluent-kafka producer with the same
   settings sending the same events (goal >= 0.8).
3. Commit-to-consumer latency p50/p99 at 1,000 changes/s through an
   exactly-once relay and a read_committed consumer (goal p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from core.cdc import events
from core.cdc.pipeline import start_relay_process
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
    relay.close(release=True)  # the next mode's relay claims the schema
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


def _relay_idle(status: Path) -> bool:
    try:
        return json.loads(status.read_text())["state"] == "idle"
    except (OSError, ValueError, KeyError):
        return False


def latency(
    settings: Settings,
    conn: H2Connection,
    schema: str,
    mode: str = "exactly-once",
    rate: int = 1000,
    seconds: float = 8,
) -> tuple[float, float, int]:
    """p50 and p99 in ms from H2 commit to a read_committed consumer."""
    table = f"LAT_{mode.replace('-', '_').upper()}"
    conn.run(f"CREATE TABLE {quote(schema)}.{table} (ID INT PRIMARY KEY, V INT)")
    triggers.add_rule(conn, triggers.CaptureRule(schema, table))
    prefix = f"l{uuid.uuid4().hex[:6]}"
    topic = events.topic_for(prefix, schema, table)
    ensure_topics(settings.bootstrap_servers, {topic}, 3, 3)
    relay_id = f"lat-{uuid.uuid4().hex[:6]}"
    relay = start_relay_process(
        settings, mode, prefix=prefix, relay_id=relay_id, schemas=(schema,)
    )
    status = settings.data_path / "relay" / f"{relay_id}.json"
    stop = threading.Event()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": prefix,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.subscribe([topic])
    committed: dict[int, float] = {}
    received: dict[int, float] = {}

    assigned = threading.Event()

    def consume() -> None:
        while not stop.is_set() or len(received) < len(committed):
            msg = consumer.poll(0.1)
            if consumer.assignment():
                assigned.set()
            if msg is None or msg.error() is not None or msg.value() is None:
                continue
            row_id = json.loads(msg.value() or b"{}")["after"]["ID"]
            received[row_id] = time.perf_counter()

    consumer_thread = threading.Thread(target=consume)
    consumer_thread.start()
    # Neither the relay's start-up nor the group join is latency: wait them out.
    deadline = time.monotonic() + 60
    while not _relay_idle(status) or not assigned.is_set():
        assert time.monotonic() < deadline, "relay or consumer did not start"
        time.sleep(0.05)
    per_tx = 10
    conn.set_autocommit(False)
    started = time.perf_counter()
    row_id = 0
    while time.perf_counter() - started < seconds:
        for _ in range(per_tx):
            conn.run(f"INSERT INTO {quote(schema)}.{table} VALUES (?, 1)", [row_id])
            row_id += 1
        conn.commit()
        now = time.perf_counter()
        for done in range(row_id - per_tx, row_id):
            committed[done] = now
        ahead = started + row_id / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    conn.set_autocommit(True)
    achieved = row_id / (time.perf_counter() - started)
    deadline = time.monotonic() + 60
    while len(received) < len(committed) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    relay.terminate()
    relay.wait(60)
    consumer_thread.join(60)
    consumer.close()
    delays = sorted((received[i] - committed[i]) * 1000 for i in received)
    p99 = delays[int(len(delays) * 0.99) - 1]
    return statistics.median(delays), p99, int(achieved)


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
    for mode in ("exactly-once", "idempotent"):
        p50, p99, achieved = latency(settings, conn, schema, mode)
        print(
            f"commit-to-consumer latency, {mode}, at {achieved} changes/s: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal p99 <= 50 ms)"
        )
    conn.run(f"DELETE FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ?", [schema])
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
