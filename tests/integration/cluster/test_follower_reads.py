"""Follower fetching: a consumer with client.rack reads from its rack's replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from core.kafka.follower import FetchSource, FetchSourceWatcher, consumer_config
from core.kafka.inspector import ClusterInspector
from tests.integration.cluster.conftest import unique_topic, wait_for

pytestmark = pytest.mark.integration
PARTITIONS = 6
PER_PARTITION = 4


@pytest.fixture()
def filled_topic(bootstrap: str, inspector: ClusterInspector) -> Iterator[str]:
    topic = unique_topic("test.follower")
    inspector.create_topic(topic, PARTITIONS, 3)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition in range(PARTITIONS):
        for n in range(PER_PARTITION):
            producer.produce(
                topic, value=f"{partition}-{n}".encode(), partition=partition
            )
    assert producer.flush(30) == 0
    yield topic
    inspector.delete_topic(topic)


def read_all(
    bootstrap: str, topic: str, rack: str | None
) -> tuple[dict[int, list[str]], dict[tuple[str, int], FetchSource]]:
    """Read every record of ``topic``; return them and the fetch sources seen."""
    watcher = FetchSourceWatcher()
    config = consumer_config(
        bootstrap,
        f"g-{topic}-{rack}",
        rack=rack,
        stats_cb=watcher,
        stats_interval_ms=200,
    )
    consumer = Consumer(config)
    seen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

        def done() -> bool:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                seen[msg.partition()].append(msg.value().decode())
            sources = watcher.sources()
            complete = sum(map(len, seen.values())) == PARTITIONS * PER_PARTITION
            settled = len(sources) == PARTITIONS and all(
                s.fetch_state == "active" and (rack is None or s.broker == 2)
                for s in sources.values()
            )
            return complete and settled

        wait_for(done, 60, f"all records of {topic} and settled fetch sources")
        return seen, watcher.sources()
    finally:
        consumer.close()


def test_rack_2_consumer_reads_from_the_rack_2_replica(
    bootstrap: str, inspector: ClusterInspector, filled_topic: str
) -> None:
    topic = filled_topic
    snapshot = inspector.snapshot(offsets=False, configs=False)
    racks = {b.id: b.rack for b in snapshot.brokers}
    assert racks == {1: "rack-1", 2: "rack-2", 3: "rack-3"}
    leaders = {p.partition: p.leader for p in snapshot.topics[topic].partitions}
    led_elsewhere = {p for p, leader in leaders.items() if leader != 2}
    assert led_elsewhere  # replicas are spread, so broker 2 leads only some

    seen, sources = read_all(bootstrap, topic, rack="rack-2")
    expected = {
        p: [f"{p}-{n}" for n in range(PER_PARTITION)] for p in range(PARTITIONS)
    }
    assert seen == expected
    assert {p: s.leader for (_, p), s in sources.items()} == leaders
    assert {p: s.broker for (_, p), s in sources.items()} == dict.fromkeys(
        range(PARTITIONS), 2
    )
    assert {p for (_, p), s in sources.items() if s.from_follower} == led_elsewhere


def test_consumer_without_rack_reads_from_leaders(
    bootstrap: str, inspector: ClusterInspector, filled_topic: str
) -> None:
    topic = filled_topic
    snapshot = inspector.snapshot(offsets=False, configs=False)
    leaders = {p.partition: p.leader for p in snapshot.topics[topic].partitions}

    seen, sources = read_all(bootstrap, topic, rack=None)
    assert sum(map(len, seen.values())) == PARTITIONS * PER_PARTITION
    assert {p: s.broker for (_, p), s in sources.items()} == leaders
    assert not any(s.from_follower for s in sources.values())
