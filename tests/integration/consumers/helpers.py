"""Helpers for consumer tests: write plain or transactional records, read a topic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition


def produce(
    client: dict[str, Any],
    topic: str,
    values: list[str],
    partitions: int = 3,
    *,
    transaction: str | None = None,
    txn_id: str | None = None,
) -> None:
    """Write ``values`` (keys k<value>) round-robin over the partitions.

    ``transaction``: None (plain), "commit" or "abort".
    """
    config = dict(client)
    if transaction is not None:
        config["transactional.id"] = txn_id or f"test-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if transaction is not None:
        producer.init_transactions(30)
        producer.begin_transaction()
    for index, value in enumerate(values):
        producer.produce(
            topic,
            key=f"k{value}".encode(),
            value=value.encode(),
            partition=index % partitions,
        )
    if transaction == "commit":
        producer.commit_transaction(30)
    elif transaction == "abort":
        # written first: an abort would otherwise purge records not yet sent
        assert producer.flush(30) == 0
        producer.abort_transaction(30)
    assert producer.flush(30) == 0


def read_all(
    client: dict[str, Any],
    topic: str,
    partitions: int,
    isolation: str,
    timeout: float = 30.0,
) -> list[Message]:
    """Every record a consumer with ``isolation`` sees, up to the end."""
    consumer = Consumer(
        {
            **client,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: no end after {timeout} s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                at_end.add(int(msg.partition() or 0))
                continue
            at_end.discard(int(msg.partition() or 0))
            records.append(msg)
    finally:
        consumer.close()
    return records


def high_watermarks(client: dict[str, Any], topic: str, partitions: int) -> list[int]:
    consumer = Consumer({**client, "group.id": f"hw-{uuid.uuid4().hex[:8]}"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def wait_for_marker(
    client: dict[str, Any], topic: str, end: int, partitions: int = 1
) -> None:
    """Wait until every partition of ``topic`` reaches offset ``end``.

    Markers are written after commit_transaction/abort_transaction return:
    a record produced right after can land before the marker.
    """
    deadline = time.monotonic() + 30
    while min(high_watermarks(client, topic, partitions)) < end:
        assert time.monotonic() < deadline, f"{topic} never reached offset {end}"
        time.sleep(0.1)


def wait_until_stable(client: dict[str, Any], topic: str, partitions: int) -> None:
    """Wait until no partition of ``topic`` has an LSO below its HW.

    A committed transaction's markers land after commit_transaction returns;
    until then a read_committed reader stops short of its records.
    """
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(client)
    asked = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    deadline = time.monotonic() + 30
    while True:
        ends = [
            {
                tp.partition: f.result(10).offset
                for tp, f in admin.list_offsets(asked, isolation_level=level).items()
            }
            for level in (
                IsolationLevel.READ_COMMITTED,
                IsolationLevel.READ_UNCOMMITTED,
            )
        ]
        if ends[0] == ends[1]:
            return
        assert time.monotonic() < deadline, f"{topic}: LSO stayed below HW for 30 s"
        time.sleep(0.1)


def hold_open_transaction(
    client: dict[str, Any], topic: str, txn_id: str, after: int
) -> Producer:
    """A producer whose transaction holds one record of ``topic``'s partition 0
    (at offset 0) open, then ``after`` plain records; abort or commit it."""
    holder = Producer({**client, "transactional.id": txn_id})
    holder.init_transactions(30)
    holder.begin_transaction()
    holder.produce(topic, key=b"open", value=b"open", partition=0)
    assert holder.flush(30) == 0
    produce(client, topic, [f"p{i}" for i in range(after)], partitions=1)
    return holder
