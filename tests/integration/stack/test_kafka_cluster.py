"""The embedded Kafka cluster: a real round trip and a real broker failure."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.stack import Stack
from core.stack.tools import describe_topic

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except KafkaException:  # a request that went to the killed broker
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def create_topic(bootstrap: str, partitions: int, replication: int) -> str:
    name = f"test.stack.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, replication)])
    futures[name].result(timeout=30)
    wait_for(
        lambda: (
            all(
                p.leader >= 0
                for p in admin.list_topics(name, timeout=5)
                .topics[name]
                .partitions.values()
            )
            and len(admin.list_topics(name, timeout=5).topics[name].partitions)
            == partitions
        ),
        30,
        f"leaders of {name}",
    )
    return name


def test_round_trip_six_partitions_rf3(stack: Stack, bootstrap: str) -> None:
    topic = create_topic(bootstrap, partitions=6, replication=3)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
    )
    delivered: list[tuple[int, int, bytes]] = []

    def on_delivery(err: object, msg: object) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset(), msg.value()))  # type: ignore[attr-defined]

    for partition in range(6):
        for n in range(5):
            producer.produce(
                topic,
                key=f"k{partition}",
                value=f"p{partition}-m{n}-ü".encode(),
                partition=partition,
                on_delivery=on_delivery,
            )
    assert producer.flush(30) == 0
    assert len(delivered) == 30

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
        seen: dict[int, list[tuple[int, str, str]]] = {p: [] for p in range(6)}
        deadline = time.monotonic() + 30
        while sum(map(len, seen.values())) < 30 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen[msg.partition()].append(
                (msg.offset(), msg.key().decode(), msg.value().decode())
            )
    finally:
        consumer.close()

    for partition in range(6):
        assert seen[partition] == [
            (n, f"k{partition}", f"p{partition}-m{n}-ü") for n in range(5)
        ]
    assert sorted(delivered) == sorted(
        (p, n, f"p{p}-m{n}-ü".encode()) for p in range(6) for n in range(5)
    )


def test_leader_killed_new_leader_isr_and_rejoin(stack: Stack, bootstrap: str) -> None:
    settings = stack.settings
    topic = create_topic(bootstrap, partitions=1, replication=3)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    old_leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    assert describe_topic(settings, bootstrap, topic)[0]["leader"] == old_leader

    stack.kill_broker(old_leader)
    try:

        def new_leader() -> int | None:
            md = admin.list_topics(topic, timeout=5).topics[topic].partitions[0]
            if md.leader not in (-1, old_leader) and old_leader not in md.isrs:
                return md.leader
            return None

        leader = wait_for(new_leader, 60, "a new leader without the killed broker")
        assert leader != old_leader

        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 30000}
        )
        results: list[object] = []
        producer.produce(
            topic,
            value=b"after-kill",
            on_delivery=lambda err, msg: results.append(err or msg.offset()),
        )
        assert producer.flush(40) == 0
        assert results == [0]

        described = describe_topic(settings, bootstrap, topic)[0]
        assert described["leader"] == leader
        assert old_leader not in described["isr"]
        assert sorted(described["replicas"]) == [1, 2, 3]  # type: ignore[arg-type]
        assert len(described["isr"]) == 2  # type: ignore[arg-type]
    finally:
        stack.start_broker(old_leader)

    wait_for(
        lambda: old_leader in describe_topic(settings, bootstrap, topic)[0]["isr"],  # type: ignore[operator]
        90,
        f"broker {old_leader} back in the ISR",
    )
    final = describe_topic(settings, bootstrap, topic)[0]
    assert sorted(final["isr"]) == [1, 2, 3]  # type: ignore[arg-type]
    md = admin.list_topics(topic, timeout=10).topics[topic].partitions[0]
    assert sorted(md.isrs) == [1, 2, 3]


def test_a_broker_starts_while_another_stays_down(stack: Stack, bootstrap: str) -> None:
    assert stack.stop_broker(2) and stack.stop_broker(3)
    try:
        assert stack.start_broker(2, timeout=90)  # broker 3 is still down
        up = {n.name: n.up for n in stack.status().nodes}
        assert up == {
            "controller": True,
            "broker-1": True,
            "broker-2": True,
            "broker-3": False,
            "h2": True,
        }
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert 2 in admin.list_topics(timeout=10).brokers
    finally:
        stack.start_broker(2)
        stack.start_broker(3)
    wait_for(
        lambda: all(
            len(p.isrs) == len(p.replicas)
            for t in AdminClient({"bootstrap.servers": bootstrap})
            .list_topics(timeout=10)
            .topics.values()
            for p in t.partitions.values()
        ),
        120,
        "every ISR full again",
    )
