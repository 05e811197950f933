"""The inspector against the real stack, checked by Kafka's own kafka-topics."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.errors import ReadOnlyError
from core.kafka.inspector import ClusterInspector
from core.stack import Stack
from core.stack.tools import describe_topic
from tests.integration.cluster.conftest import (
    layout,
    restart_broker,
    unique_topic,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_layout_equals_kafka_topics_through_kill_rejoin_and_election(
    stack: Stack, bootstrap: str, inspector: ClusterInspector
) -> None:
    settings = stack.settings
    topic = unique_topic()
    inspector.create_topic(topic, partitions=6, replication_factor=3)
    snapshot, _ = inspector.refresh()
    state = snapshot.topics[topic]
    assert [p.partition for p in state.partitions] == list(range(6))
    assert state.replication_factor == 3
    assert state.config.min_insync_replicas == 1
    assert wait_for(
        lambda: layout(inspector, topic) == describe_topic(settings, bootstrap, topic),
        30,
        "the layout at rest to equal kafka-topics",
    )
    assert all(p.flags() == [] for p in inspector.snapshot().topics[topic].partitions)

    victim = snapshot.partition(topic, 0).leader
    assert victim is not None
    led = {p.partition for p in state.partitions if p.leader == victim}
    # One replica per partition: the partition on the victim goes offline.
    single = unique_topic()
    inspector.create_topic(single, partitions=3, replication_factor=1)
    alone = wait_for(
        lambda: inspector.snapshot(offsets=False, configs=False).topics.get(single),
        30,
        "the new topic in a snapshot",
    )
    stranded = {p.partition for p in alone.partitions if p.replicas == (victim,)}
    assert len(stranded) == 1
    inspector.refresh(offsets=False, configs=False)
    stack.kill_broker(victim)
    try:

        def settled() -> bool:
            snap, _ = inspector.refresh(offsets=False, configs=False)
            parts = snap.topics[topic].partitions
            return victim not in snap.broker_ids and all(
                p.leader not in (None, victim) and victim not in p.isr for p in parts
            )

        wait_for(settled, 60, f"leaders and ISRs without broker {victim}")
        killed = layout(inspector, topic)
        assert killed == describe_topic(settings, bootstrap, topic)
        assert all(len(p["isr"]) == 2 for p in killed.values())  # type: ignore[arg-type]
        now = inspector.snapshot().topics[topic].partitions
        assert all(p.offline_replicas == (victim,) for p in now)
        assert all("under-replicated" in p.flags() for p in now)

        mine = [e for e in inspector.timeline.events() if e.topic in (topic, None)]
        assert f"broker {victim} left" in [e.message for e in mine]
        moves = {
            e.partition: (e.before, e.after) for e in mine if e.kind == "leader-moved"
        }
        assert set(moves) == led
        assert all(
            before == victim and after != victim for before, after in moves.values()
        )
        shrunk = {e.partition for e in mine if e.kind == "isr-shrank"}
        assert shrunk == set(range(6))

        offline = inspector.snapshot().topics[single].partitions
        # Kafka empties the ISR of a partition whose last replica died.
        assert {
            p.partition
            for p in offline
            if p.flags() == ["offline", "under-replicated", "under-min-isr"]
            and p.isr == ()
        } == stranded
        assert all(
            p.leader is None and p.high_watermark is None
            for p in offline
            if p.partition in stranded
        )
        assert layout(inspector, single) == describe_topic(settings, bootstrap, single)
        lost = [
            e
            for e in inspector.timeline.events()
            if e.topic == single and e.kind != "topic-created"
        ]
        (gone,) = stranded
        assert [(e.kind, e.partition, e.before) for e in lost] == [
            ("partition-offline", gone, victim),
            ("isr-shrank", gone, [victim]),
        ]
    finally:
        restart_broker(stack, victim, bootstrap, topic)

    def rejoined() -> bool:
        snap, _ = inspector.refresh(offsets=False, configs=False)
        return victim in snap.broker_ids and all(
            len(p.isr) == 3 for p in snap.topics[topic].partitions
        )

    wait_for(rejoined, 60, "the inspector to see the full ISR again")
    assert layout(inspector, topic) == describe_topic(settings, bootstrap, topic)
    messages = [e.message for e in inspector.timeline.events()]
    assert f"broker {victim} joined" in messages
    grown = {
        e.partition
        for e in inspector.timeline.events()
        if e.topic == topic and e.kind == "isr-expand"
    }
    assert grown == set(range(6))
    wait_for(
        lambda: all(
            p.leader == victim
            for p in inspector.refresh(offsets=False)[0].topics[single].partitions
            if p.partition in stranded
        ),
        60,
        "the single-replica partition back online",
    )
    back = [e.kind for e in inspector.timeline.events() if e.topic == single]
    assert back == [
        "topic-created",
        "partition-offline",
        "isr-shrank",
        "partition-online",
        "isr-expand",
    ]
    inspector.delete_topic(single)

    not_preferred = {
        p.partition
        for p in inspector.snapshot().topics[topic].partitions
        if p.leader_not_preferred
    }
    assert not_preferred == led
    outcome = inspector.elect_preferred_leaders([(topic, p) for p in range(6)])
    assert {p for (_, p), error in outcome.items() if error is None} == led
    wait_for(
        lambda: all(
            p.leader == p.preferred_leader
            for p in inspector.snapshot().topics[topic].partitions
        ),
        30,
        "preferred leaders back",
    )
    assert layout(inspector, topic) == describe_topic(settings, bootstrap, topic)
    inspector.delete_topic(topic)


def test_exact_offsets_with_an_open_transaction(
    bootstrap: str, inspector: ClusterInspector
) -> None:
    topic = unique_topic()
    inspector.create_topic(topic, partitions=1, replication_factor=3)

    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for n in range(5):
        plain.produce(topic, value=f"plain-{n}".encode(), partition=0)
    assert plain.flush(30) == 0

    def offsets() -> tuple[int | None, int | None, int | None]:
        p = inspector.snapshot(configs=False).partition(topic, 0)
        return p.log_start_offset, p.high_watermark, p.last_stable_offset

    assert offsets() == (0, 5, 5)

    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    for n in range(3):
        txn.produce(topic, value=f"txn-{n}".encode(), partition=0)
    assert txn.flush(30) == 0
    # The open transaction pins the last stable offset at its first record.
    assert offsets() == (0, 8, 5)

    txn.commit_transaction(30)
    # The commit marker takes offset 8; the LSO moves past it.
    assert wait_for(lambda: offsets() == (0, 9, 9), 10, "LSO after commit")

    admin = AdminClient({"bootstrap.servers": bootstrap})
    done = admin.delete_records([TopicPartition(topic, 0, 2)])
    for future in done.values():
        future.result(timeout=30)
    assert offsets() == (2, 9, 9)
    inspector.delete_topic(topic)


def test_config_changes_read_only_refusals_and_delete(
    bootstrap: str, inspector: ClusterInspector
) -> None:
    topic = unique_topic()
    inspector.create_topic(topic, 2, 3, config={"retention.ms": "3600000"})
    inspector.alter_topic_config(
        topic, {"min.insync.replicas": "3", "cleanup.policy": "compact"}
    )
    snapshot, _ = inspector.refresh()
    config = snapshot.topics[topic].config
    assert (config.min_insync_replicas, config.cleanup_policy, config.retention_ms) == (
        3,
        "compact",
        3_600_000,
    )
    assert config.unclean_leader_election is False
    assert all(
        p.min_insync_replicas == 3 and not p.under_min_isr
        for p in snapshot.topics[topic].partitions
    )

    reader = ClusterInspector({"bootstrap.servers": bootstrap}, read_only=True)
    refusals = [
        lambda: reader.create_topic(unique_topic(), 1, 1),
        lambda: reader.alter_topic_config(topic, {"retention.ms": "1"}),
        lambda: reader.elect_preferred_leaders(),
        lambda: reader.delete_topic(topic),
    ]
    for attempt in refusals:
        with pytest.raises(ReadOnlyError):
            attempt()
    assert topic in reader.snapshot(offsets=False).topics
    assert reader.snapshot(offsets=False).topics[topic].config.retention_ms == 3_600_000

    inspector.delete_topic(topic)
    wait_for(lambda: topic not in inspector.refresh()[0].topics, 30, "topic gone")
    assert [e.kind for e in inspector.timeline.events() if e.topic == topic] == [
        "topic-deleted"
    ]
