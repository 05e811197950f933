"""The same topic through read_committed and read_uncommitted, side by side."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from core.kafka.tail import IsolationPair, PaneRow, Tail
from core.kafka.txn_producer import TrainerProducer
from tests.integration.consumers.helpers import produce, wait_for_marker

pytestmark = pytest.mark.integration


class Panes:
    """Both panes as they stand after every poll so far."""

    def __init__(self, pair: IsolationPair) -> None:
        self.pair = pair
        self.committed: list[PaneRow] = []
        self.uncommitted: dict[tuple[int, int], PaneRow] = {}
        self.gaps: list[PaneRow] = []

    def poll_until(
        self, condition: Callable[[Panes], bool], timeout: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            assert time.monotonic() < deadline, "the panes never reached the state"
            update = self.pair.poll(0.1)
            self.committed += update.committed
            for row in update.uncommitted + update.settled:
                if row.kind == "gap":
                    self.gaps.append(row)
                else:
                    self.uncommitted[(row.partition, row.offset)] = row

    def committed_values(self, partition: int) -> list[str]:
        return [
            r.record.value.decode()
            for r in self.committed
            if r.kind == "record"
            and r.partition == partition
            and r.record is not None
            and r.record.value is not None
        ]

    def statuses(self, partition: int) -> list[tuple[int, str]]:
        return sorted(
            (o, r.status) for (p, o), r in self.uncommitted.items() if p == partition
        )


@pytest.fixture
def trainer(
    client: dict[str, Any], new_topic: Callable[..., str]
) -> Iterator[TrainerProducer]:
    producer = TrainerProducer(client, new_topic(2))
    yield producer
    producer.close()


def test_open_transaction_is_seen_only_uncommitted_until_commit(
    client: dict[str, Any],
    trainer: TrainerProducer,
) -> None:
    topic = trainer.topic
    panes = Panes(IsolationPair(client, topic))
    try:
        trainer.send(1, partition=0)
        produce(client, topic, [f"p{i}" for i in range(5)], partitions=1)
        # a plain record on partition 1 proves the committed reader is reading
        sentinel = Producer(client)
        sentinel.produce(topic, value=b"sentinel", partition=1)
        assert sentinel.flush(30) == 0

        panes.poll_until(
            lambda p: (
                len(p.statuses(0)) == 6
                and "sentinel"
                in [
                    r.record.value.decode()
                    for r in p.committed
                    if r.record and r.record.value
                ]
            )
        )
        assert panes.committed_values(0) == []
        assert panes.statuses(0) == [(o, "open") for o in range(6)]

        trainer.commit()
        panes.poll_until(
            lambda p: (
                len(p.committed_values(0)) == 6
                and all(s == "committed" for _, s in p.statuses(0))
            )
        )
        assert panes.committed_values(0) == ["txn-1", "p0", "p1", "p2", "p3", "p4"]

        # the commit marker sits at offset 6: the next record leaves a gap there
        produce(client, topic, ["after"], partitions=1)
        panes.poll_until(
            lambda p: "after" in p.committed_values(0) and (0, 7) in p.uncommitted
        )
        gaps = {
            (g.pane, g.offset, g.until)
            for g in panes.committed + panes.gaps
            if g.kind == "gap" and g.partition == 0
        }
        assert gaps == {("committed", 6, 6), ("uncommitted", 6, 6)}
    finally:
        panes.pair.close()


def test_aborted_records_are_marked_and_absent_from_committed(
    client: dict[str, Any],
    trainer: TrainerProducer,
) -> None:
    topic = trainer.topic
    panes = Panes(IsolationPair(client, topic))
    try:
        trainer.send(3, partition=0)
        trainer.abort()
        wait_for_marker(client, topic, 4)
        produce(client, topic, ["q0", "q1"], partitions=1)

        panes.poll_until(
            lambda p: (
                len(p.committed_values(0)) == 2
                and len(p.statuses(0)) == 5
                and all(s != "open" for _, s in p.statuses(0))
            )
        )
        # offsets: 3 aborted records, the abort marker, q0, q1
        assert panes.statuses(0) == [
            (0, "aborted"),
            (1, "aborted"),
            (2, "aborted"),
            (4, "committed"),
            (5, "committed"),
        ]
        assert panes.committed_values(0) == ["q0", "q1"]
        committed_gaps = [
            (g.offset, g.until) for g in panes.committed if g.kind == "gap"
        ]
        uncommitted_gaps = [(g.offset, g.until) for g in panes.gaps]
        assert committed_gaps == [] and uncommitted_gaps == [(3, 3)]
    finally:
        panes.pair.close()


def test_tail_shows_key_value_headers_with_and_without_group(
    client: dict[str, Any],
    new_topic: Callable[..., str],
) -> None:
    topic = new_topic(2)
    produce(client, topic, ["v0", "v1"], partitions=2)
    producer = Producer(client)
    producer.produce(
        topic,
        key=b"kv2",
        value=b"v2",
        partition=0,
        headers=[("source", b"test"), ("empty", None)],
    )
    assert producer.flush(30) == 0
    alone = Tail(client, [topic], start="beginning")
    member = Tail(client, [topic], start="beginning", group_id=f"tail-{topic}")
    try:
        for tail in (alone, member):
            records: list[Any] = []
            deadline = time.monotonic() + 30
            while len(records) < 3:
                assert time.monotonic() < deadline
                records += tail.poll(timeout=0.2)
            rows = sorted((r.partition, r.offset, r.key, r.value) for r in records)
            assert rows == [
                (0, 0, b"kv0", b"v0"),
                (0, 1, b"kv2", b"v2"),
                (1, 0, b"kv1", b"v1"),
            ]
            headers = {r.value: r.headers for r in records}
            assert headers == {
                b"v0": (),
                b"v1": (),
                b"v2": (("source", b"test"), ("empty", None)),
            }
            assert all(r.timestamp_ms for r in records)
    finally:
        alone.close()
        member.close()
