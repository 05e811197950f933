"""Lag is exact: Kafka's own tool agrees, markers are not messages, pins show."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.kafka.lag import GroupTarget, LagReader, LagSampler
from core.settings import Settings
from core.stack.tools import run_tool
from tests.integration.consumers.helpers import (
    hold_open_transaction,
    produce,
    read_all,
    wait_for_marker,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def reader(client: dict[str, Any]) -> Iterator[LagReader]:
    lag_reader = LagReader(client)
    yield lag_reader
    lag_reader.close()


def commit(
    client: dict[str, Any], group: str, offsets: dict[tuple[str, int], int]
) -> None:
    """Commit ``offsets`` for ``group`` without joining it."""
    consumer = Consumer({**client, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


def test_lag_equals_kafka_consumer_groups(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
    stack_settings: Settings,
    bootstrap: str,
) -> None:
    topic = new_topic(3)
    produce(client, topic, [f"v{i}" for i in range(30)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, {(topic, 0): 3, (topic, 1): 7, (topic, 2): 10})

    ours = reader.sample([GroupTarget(group)]).group(group)
    described = run_tool(
        stack_settings,
        "kafka-consumer-groups",
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--group",
        group,
    )

    lines = [line.split() for line in described.splitlines() if line.strip()]
    header = lines[0]
    rows = [dict(zip(header, cells, strict=True)) for cells in lines[1:]]
    theirs = {
        int(row["PARTITION"]): int(row["LAG"]) for row in rows if row["TOPIC"] == topic
    }
    assert theirs == {0: 7, 1: 3, 2: 0}
    assert {p.partition: p.lag for p in ours.partitions} == theirs
    assert all(p.exact and p.position == "committed" for p in ours.partitions)


def test_caught_up_group_on_transactional_topic_shows_zero(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
) -> None:
    topic = new_topic(2)
    produce(
        client, topic, [f"c{i}" for i in range(6)], partitions=2, transaction="commit"
    )
    produce(
        client, topic, [f"d{i}" for i in range(4)], partitions=2, transaction="commit"
    )
    wait_for_marker(client, topic, 7, partitions=2)
    after_last = {
        (topic, m.partition()): m.offset() + 1
        for m in read_all(client, topic, 2, "read_committed")
    }
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, after_last)

    targets = [
        GroupTarget(group, (topic,), "read_committed"),
        GroupTarget(group, (topic,), "read_uncommitted"),
    ]
    committed_view, uncommitted_view = reader.sample(targets).groups
    for part in committed_view.partitions:
        # 5 records and 2 markers: offsets 0..6, HW 7; the group is at 6
        assert (part.committed, part.high_watermark) == (6, 7)
        assert (part.lag, part.lag_lso, part.lag_hw) == (0, 0, 0)
        assert part.time_lag_s == 0.0
    assert uncommitted_view.lag == 0


def test_open_transaction_pins_the_last_stable_offset(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
    stack_settings: Settings,
) -> None:
    topic = new_topic(1)
    txn_id = f"pinning-{uuid.uuid4().hex[:8]}"
    holder = hold_open_transaction(client, topic, txn_id, after=5)
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, {(topic, 0): 0})
    targets = [GroupTarget(group, (topic,), "read_committed")]

    sampler = LagSampler(reader, lambda: targets, settings=stack_settings)
    try:
        part = sampler.sample_once().group(group).partitions[0]
        assert (part.last_stable_offset, part.high_watermark) == (0, 6)
        assert (part.lag_lso, part.lag_hw, part.lag) == (0, 6, 0)
        txn = part.open_transaction
        assert txn is not None and txn.offsets_past == 6
        assert txn.since_ms is not None and txn.since_ms <= time.time() * 1000

        deadline = time.monotonic() + 60
        while txn.producer is None:
            assert time.monotonic() < deadline, "the pinning producer was not found"
            time.sleep(0.5)
            txn = sampler.sample_once().group(group).partitions[0].open_transaction
            assert txn is not None
        assert txn.producer.transactional_id == txn_id
        assert txn.producer.state == "Ongoing"
        assert txn.producer.start_offset == 0
    finally:
        sampler.stop()

    holder.commit_transaction(30)
    wait_for_marker(client, topic, 7)
    part = reader.sample(targets).group(group).partitions[0]
    # 6 records then the commit marker at offset 6: lag is 6 messages, not 7
    assert (part.last_stable_offset, part.high_watermark) == (7, 7)
    assert (part.lag_lso, part.exact, part.open_transaction) == (6, True, None)


def test_aborted_records_do_not_count_for_read_committed(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
) -> None:
    topic = new_topic(1)
    produce(client, topic, ["a0", "a1", "a2"], partitions=1, transaction="abort")
    wait_for_marker(client, topic, 4)
    produce(client, topic, ["p0", "p1"], partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, {(topic, 0): 0})

    committed_view, uncommitted_view = reader.sample(
        [
            GroupTarget(group, (topic,), "read_committed"),
            GroupTarget(group, (topic,), "read_uncommitted"),
        ]
    ).groups
    # offsets: a0 a1 a2, abort marker, p0 p1
    assert committed_view.partitions[0].lag == 2
    assert uncommitted_view.partitions[0].lag == 5


def test_no_committed_offset_uses_the_reset_policy(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
) -> None:
    topic = new_topic(1)
    produce(client, topic, [f"v{i}" for i in range(8)], partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"

    earliest, latest = reader.sample(
        [
            GroupTarget(group, (topic,), reset_policy="earliest"),
            GroupTarget(group, (topic,), reset_policy="latest"),
        ]
    ).groups
    assert earliest.partitions[0].committed is None
    assert earliest.partitions[0].position == "no-committed-offset"
    assert earliest.partitions[0].lag == 8
    assert latest.partitions[0].lag == 0


def test_commit_below_log_start_counts_from_log_start(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    reader: LagReader,
) -> None:
    topic = new_topic(1)
    produce(client, topic, [f"v{i}" for i in range(10)], partitions=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, {(topic, 0): 2})
    admin = AdminClient(client)
    # what retention does, on demand: delete the records below offset 6
    admin.delete_records([TopicPartition(topic, 0, 6)])[
        TopicPartition(topic, 0, 6)
    ].result(30)

    part = reader.sample([GroupTarget(group, (topic,))]).group(group).partitions[0]
    assert (part.committed, part.log_start, part.high_watermark) == (2, 6, 10)
    assert (part.position, part.lag) == ("below-log-start", 4)


def test_time_lag_is_the_age_gap_of_next_and_newest_record(
    client: dict[str, Any], new_topic: Callable[..., str], reader: LagReader
) -> None:
    topic = new_topic(1)
    base = int(time.time() * 1000) - 60_000
    producer = Producer(client)
    for i in range(5):  # record timestamps one second apart
        producer.produce(
            topic, value=b"t%d" % i, partition=0, timestamp=base + i * 1000
        )
    assert producer.flush(30) == 0
    group = f"g-{uuid.uuid4().hex[:8]}"
    commit(client, group, {(topic, 0): 1})

    part = reader.sample([GroupTarget(group, (topic,))]).group(group).partitions[0]
    assert (part.lag, part.time_lag_s) == (4, 3.0)
