"""Fixtures for capture tests: a JDBC connection and throwaway tables."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from core.cdc.relay import Relay, RelayConfig
from core.h2 import triggers
from core.h2.connection import H2Connection
from core.settings import Settings
from core.stack import Stack


@pytest.fixture
def h2(stack: Stack, stack_settings: Settings) -> Iterator[H2Connection]:
    """An autocommit JDBC connection to the stack's H2, metadata in place (per
    test: a test may restart the H2 server)."""
    conn = H2Connection(stack_settings)
    triggers.ensure_metadata(conn)
    yield conn
    conn.close()


@pytest.fixture
def table_name(h2: H2Connection) -> Iterator[str]:
    """A unique table name for one test; its outbox rows go afterwards."""
    name = f"T_{uuid.uuid4().hex[:10].upper()}"
    yield name
    h2.run(f"DELETE FROM {triggers.OUTBOX} WHERE TABLE_NAME = ?", [name])


def _unique_schema(h2: H2Connection) -> Iterator[str]:
    name = f"S_{uuid.uuid4().hex[:10].upper()}"
    h2.run(f'CREATE SCHEMA "{name}"')
    yield name
    h2.run(f"DELETE FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ?", [name])
    h2.run(f"DELETE FROM {triggers.CLAIMS} WHERE TABLE_SCHEMA = ?", [name])


@pytest.fixture
def schema(h2: H2Connection) -> Iterator[str]:
    """A unique schema for one test, so that its relay sees only its changes."""
    yield from _unique_schema(h2)


@pytest.fixture
def other_schema(h2: H2Connection) -> Iterator[str]:
    """A second unique schema."""
    yield from _unique_schema(h2)


@dataclass(frozen=True)
class Record:
    """One record read back from Kafka."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    isolation: str = "read_committed",
    timeout: float = 60.0,
    at_least: int = 0,
) -> list[Record]:
    """Every record of ``topic`` up to its end, once ``at_least`` are there."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"capture-test-{uuid.uuid4().hex}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    deadline = time.monotonic() + timeout
    while True:
        records = _read_once(config, topic, deadline)
        if len(records) >= at_least or time.monotonic() > deadline:
            return records


def _read_once(config: dict[str, Any], topic: str, deadline: float) -> list[Record]:
    consumer = Consumer(config)
    try:
        while True:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is not None and metadata.partitions:
                break
            if time.monotonic() > deadline:
                return []
            time.sleep(0.2)
        partitions = sorted(metadata.partitions)
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        at_end: set[int] = set()
        records: list[Record] = []
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            records.append(
                Record(msg.partition(), msg.offset(), msg.key(), msg.value())
            )
        return records
    finally:
        consumer.close()


def outbox_rows(conn: H2Connection, schema: str, table: str) -> list[list[object]]:
    """OP, KEY_JSON, BEFORE_JSON, AFTER_JSON of a table's outbox rows, in order."""
    return conn.query(
        f"SELECT OP, KEY_JSON, BEFORE_JSON, AFTER_JSON FROM {triggers.OUTBOX} "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY SEQ",
        [schema, table],
    )


def restart_h2(stack: Stack) -> None:
    """Stop this test stack's H2 server (SIGTERM) and start it again."""
    node = next(n for n in stack.status().nodes if n.role == "h2")
    if node.up and node.pid:
        process = psutil.Process(node.pid)
        process.terminate()
        process.wait(60)
    stack.up()


@contextmanager
def running_relay(
    settings: Settings, config: RelayConfig
) -> Iterator[tuple[Relay, list[BaseException]]]:
    """A relay running on a thread for the block; what it raised, in the list."""
    relay = Relay(settings, config)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="relay-under-test")
    thread.start()
    try:
        yield relay, errors
    finally:
        stop.set()
        thread.join(60)
