"""Kafka helpers the demos share: topics, exact reads per isolation level, ISR."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from core.demos.ledger import OutputRecord
from core.errors import DemoError

log = logging.getLogger(__name__)
_client_log = logging.getLogger(__name__ + ".librdkafka")


def admin(bootstrap: str) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _client_log}
    return AdminClient(config)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    replication: int = 3,
    config: dict[str, str] | None = None,
    replica_assignment: list[list[int]] | None = None,
) -> None:
    """Create a topic and wait until every partition has a leader."""
    if replica_assignment:
        topic = NewTopic(
            name,
            num_partitions=len(replica_assignment),
            replica_assignment=replica_assignment,
            config=config or {},
        )
    else:
        topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication,
            config=config or {},
        )
    client = admin(bootstrap)
    try:
        client.create_topics([topic])[name].result(30)
    except KafkaException as exc:
        raise DemoError(
            f"Cannot create topic {name}: {exc.args[0].str()}",
            hint="check that the stack is up: `cdc-studio stack status`",
        ) from exc
    wait_for_leaders(bootstrap, name, len(replica_assignment or []) or partitions)
    log.info("created topic %s (%d partitions)", name, partitions)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    if not names:
        return
    client = admin(bootstrap)
    futures = client.delete_topics(names, operation_timeout=30)
    for name, future in futures.items():
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                log.debug("topic %s was not there to delete", name)
                continue
            log.warning("could not delete topic %s: %s", name, exc)


def topic_names(bootstrap: str) -> list[str]:
    """Every topic of the cluster, internal ones included."""
    return sorted(admin(bootstrap).list_topics(timeout=10).topics)


def partition_state(bootstrap: str, topic: str) -> dict[int, dict[str, Any]]:
    """Leader, replicas and ISR per partition, from fresh metadata.

    Empty when the cluster does not answer in time (a broker just stopped):
    callers wait in a loop and ask again.
    """
    try:
        metadata = admin(bootstrap).list_topics(topic, timeout=10)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._TIMED_OUT:
            raise
        log.debug("metadata of %s timed out; asking again later", topic)
        return {}
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return {}
    return {
        p.id: {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)}
        for p in found.partitions.values()
    }


def wait_for_leaders(
    bootstrap: str, topic: str, partitions: int, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = partition_state(bootstrap, topic)
        if len(state) == partitions and all(p["leader"] >= 0 for p in state.values()):
            return
        time.sleep(0.2)
    raise DemoError(
        f"Topic {topic} has partitions without a leader after {timeout:.0f} s"
    )


def wait_for_full_isr(bootstrap: str, topics: list[str], timeout: float = 90) -> None:
    """Wait until every replica of every partition of ``topics`` is in the ISR."""
    deadline = time.monotonic() + timeout
    while True:
        lagging = []
        for topic in topics:
            # A topic that does not exist (yet) has nothing to wait for.
            for pid, p in partition_state(bootstrap, topic).items():
                if p["leader"] < 0 or sorted(p["isr"]) != sorted(p["replicas"]):
                    lagging.append(f"{topic}[{pid}] isr={p['isr']}")
        if not lagging:
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"The ISR did not become full within {timeout:.0f} s: "
                + ", ".join(lagging),
                hint="check the brokers with `cdc-studio stack status`",
            )
        time.sleep(0.3)


def end_offsets(
    bootstrap: str, topic: str, partitions: list[int], committed: bool
) -> dict[int, int]:
    """Per partition, the last stable offset (``committed``) or high watermark."""
    level = (
        IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    )
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
    client = admin(bootstrap)
    futures = client.list_offsets(request, isolation_level=level, request_timeout=30)
    return {tp.partition: f.result(30).offset for tp, f in futures.items()}


def read_topic(
    bootstrap: str,
    topic: str,
    isolation: str = "read_committed",
    timeout: float = 60,
    parse: Callable[[Message], OutputRecord | None] | None = None,
) -> list[OutputRecord]:
    """Every record a reader with ``isolation`` sees, from the start to the end,
    as ``parse`` makes it (None skips one; default: the demos' own records).

    The end of a partition is where the client reports end-of-partition: the
    last stable offset for ``read_committed`` (an open transaction and all after
    it stay unread), the high watermark for ``read_uncommitted``.
    """
    partitions = sorted(partition_state(bootstrap, topic))
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"cdc-studio-demo-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
        "logger": _client_log,
    }
    consumer = Consumer(config)
    records: list[OutputRecord] = []
    try:
        consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        )
        pending = set(partitions)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise DemoError(
                    f"Reading {topic} ({isolation}) did not reach the end of "
                    f"partitions {sorted(pending)} within {timeout:.0f} s"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise DemoError(f"Reading {topic} failed: {error.str()}")
            record = (parse or _demo_record)(message)
            if record is not None:
                records.append(record)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def _demo_record(message: Message) -> OutputRecord:
    return _output_record(
        message.value(), message.partition() or 0, message.offset() or 0
    )


def _output_record(raw: bytes | None, partition: int, offset: int) -> OutputRecord:
    try:
        value = json.loads(raw or b"{}")
        return OutputRecord(
            str(value["id"]),
            str(value.get("key", "")),
            int(value.get("seq", 0)),
            partition,
            offset,
        )
    except (ValueError, KeyError, TypeError):
        return OutputRecord(
            f"<unreadable@{partition}:{offset}>", "", 0, partition, offset
        )
