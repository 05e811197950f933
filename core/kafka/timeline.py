"""Changes between two cluster snapshots, as events on a bounded timeline."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from core.kafka.cluster import ClusterSnapshot, PartitionState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterEvent:
    """One change seen between two refreshes.

    ``kind`` is one of: broker-joined, broker-left, topic-created,
    topic-deleted, leader-moved, partition-offline, partition-online,
    isr-shrank, isr-expand, isr-changed, replicas-changed.
    """

    at: float
    kind: str
    message: str
    topic: str | None = None
    partition: int | None = None
    broker: int | None = None
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "message": self.message,
            "topic": self.topic,
            "partition": self.partition,
            "broker": self.broker,
            "before": self.before,
            "after": self.after,
        }


def _ids(values: tuple[int, ...] | list[int]) -> str:
    return "{" + ",".join(str(v) for v in sorted(values)) + "}"


def _partition_events(
    old: PartitionState, new: PartitionState, at: float
) -> list[ClusterEvent]:
    name = f"{new.topic}-{new.partition}"
    topic, partition = new.topic, new.partition
    events: list[ClusterEvent] = []

    if old.leader != new.leader:
        if new.leader is None:
            events.append(
                ClusterEvent(
                    at,
                    "partition-offline",
                    f"{name}: offline (leader {old.leader} lost)",
                    broker=old.leader,
                    before=old.leader,
                    after=None,
                    topic=topic,
                    partition=partition,
                )
            )
        elif old.leader is None:
            events.append(
                ClusterEvent(
                    at,
                    "partition-online",
                    f"{name}: back online, leader {new.leader}",
                    broker=new.leader,
                    before=None,
                    after=new.leader,
                    topic=topic,
                    partition=partition,
                )
            )
        else:
            events.append(
                ClusterEvent(
                    at,
                    "leader-moved",
                    f"{name}: leader moved from {old.leader} to {new.leader}",
                    broker=new.leader,
                    before=old.leader,
                    after=new.leader,
                    topic=topic,
                    partition=partition,
                )
            )

    if old.replicas != new.replicas:
        events.append(
            ClusterEvent(
                at,
                "replicas-changed",
                f"{name}: replicas changed from {list(old.replicas)} to "
                f"{list(new.replicas)}",
                before=list(old.replicas),
                after=list(new.replicas),
                topic=topic,
                partition=partition,
            )
        )

    old_isr, new_isr = set(old.isr), set(new.isr)
    if new_isr == old_isr:
        return events
    if len(new_isr) < len(old_isr):
        kind, verb = "isr-shrank", "shrank"
    elif len(new_isr) > len(old_isr):
        kind, verb = "isr-expand", "grew"
    else:
        kind, verb = "isr-changed", "changed"
    events.append(
        ClusterEvent(
            at,
            kind,
            f"{name}: ISR {verb} to {_ids(new.isr)}",
            before=sorted(old_isr),
            after=sorted(new_isr),
            topic=topic,
            partition=partition,
        )
    )
    return events


def diff(old: ClusterSnapshot | None, new: ClusterSnapshot) -> list[ClusterEvent]:
    """The events that turn ``old`` into ``new`` (none for the first snapshot)."""
    if old is None:
        return []
    at = new.taken_at
    events: list[ClusterEvent] = []

    old_brokers, new_brokers = set(old.broker_ids), set(new.broker_ids)
    for broker_id in sorted(old_brokers - new_brokers):
        events.append(
            ClusterEvent(
                at, "broker-left", f"broker {broker_id} left", broker=broker_id
            )
        )
    for broker_id in sorted(new_brokers - old_brokers):
        events.append(
            ClusterEvent(
                at, "broker-joined", f"broker {broker_id} joined", broker=broker_id
            )
        )
    # No event for controller_id: under KRaft, brokers name a random live
    # broker as "controller" in metadata answers, so it changes at will.

    for topic in sorted(set(old.topics) - set(new.topics)):
        events.append(
            ClusterEvent(at, "topic-deleted", f"topic {topic} deleted", topic=topic)
        )
    for topic in sorted(set(new.topics) - set(old.topics)):
        count = len(new.topics[topic].partitions)
        events.append(
            ClusterEvent(
                at,
                "topic-created",
                f"topic {topic} created with {count} partitions",
                topic=topic,
                after=count,
            )
        )

    for topic in sorted(set(old.topics) & set(new.topics)):
        before = {p.partition: p for p in old.topics[topic].partitions}
        for partition in new.topics[topic].partitions:
            if partition.partition in before:
                events += _partition_events(before[partition.partition], partition, at)
    return events


class Timeline:
    """The most recent events, oldest first; safe to use from several threads."""

    def __init__(self, capacity: int = 5000) -> None:
        self._events: deque[ClusterEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def extend(self, events: list[ClusterEvent]) -> None:
        with self._lock:
            self._events.extend(events)
        for event in events:
            log.info("cluster: %s", event.message)

    def events(self, since: float | None = None) -> list[ClusterEvent]:
        with self._lock:
            events = list(self._events)
        if since is None:
            return events
        return [e for e in events if e.at > since]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


# What a summary line says for each kind of partition event.
_SUMMARY_VERBS = {
    "leader-moved": "leader moved",
    "partition-offline": "went offline",
    "partition-online": "came back online",
    "replicas-changed": "replicas changed",
    "isr-shrank": "ISR shrank",
    "isr-expand": "ISR grew",
    "isr-changed": "ISR changed",
}


def readable_batch(
    events: list[ClusterEvent], focus: str = "", detail_limit: int = 100
) -> list[str]:
    """The lines a person reads for one refresh's events, oldest first.

    A broker dying on a big cluster changes thousands of partitions at once;
    listed one by one they would push "broker 1 left" out of any bounded
    timeline. So cluster-wide events (brokers, topics) always come through,
    last (on top of a newest-first list), and when a refresh changed more than
    ``detail_limit`` partitions, their events become one summary line per
    kind, plus, one by one, those of topics whose name contains ``focus``
    (the topic filter the person typed), up to ``detail_limit``.
    """
    cluster_wide = [e for e in events if e.partition is None]
    per_partition = [e for e in events if e.partition is not None]
    if len(per_partition) <= detail_limit:
        return [e.message for e in per_partition + cluster_wide]
    lines: list[str] = []
    needle = focus.strip().lower()
    if needle:
        focused = [e for e in per_partition if needle in (e.topic or "").lower()]
        lines += [e.message for e in focused[:detail_limit]]
    by_kind: dict[str, list[ClusterEvent]] = {}
    for event in per_partition:
        by_kind.setdefault(event.kind, []).append(event)
    for kind, group in by_kind.items():
        topics = len({e.topic for e in group})
        lines.append(
            f"{_SUMMARY_VERBS.get(kind, kind)}: {len(group)} partitions of "
            f"{topics} topics (filter the topic list to list them here)"
        )
    return lines + [e.message for e in cluster_wide]
