"""One snapshot of a Kafka cluster's layout: brokers, topics, partitions, offsets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Broker:
    """A live broker as the cluster metadata lists it."""

    id: int
    host: str
    port: int
    rack: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "port": self.port, "rack": self.rack}


@dataclass(frozen=True)
class TopicConfig:
    """The topic settings that matter for availability and retention."""

    min_insync_replicas: int | None = None
    cleanup_policy: str | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    unclean_leader_election: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "min.insync.replicas": self.min_insync_replicas,
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": self.retention_ms,
            "retention.bytes": self.retention_bytes,
            "unclean.leader.election.enable": self.unclean_leader_election,
        }


@dataclass(frozen=True)
class PartitionState:
    """One partition: where it lives, how healthy it is, and its offsets.

    ``replicas`` is in assignment order; its first broker is the preferred
    leader. ``offline_replicas`` are assigned brokers that are not live.
    Offsets are None when they could not be read (no leader, or not asked).
    """

    topic: str
    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    min_insync_replicas: int | None = None
    log_start_offset: int | None = None
    high_watermark: int | None = None
    last_stable_offset: int | None = None

    @property
    def preferred_leader(self) -> int | None:
        return self.replicas[0] if self.replicas else None

    @property
    def offline(self) -> bool:
        """No leader: the partition can be neither written nor read."""
        return self.leader is None

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    @property
    def under_min_isr(self) -> bool:
        """Fewer in-sync replicas than min.insync.replicas: acks=all writes fail."""
        if self.min_insync_replicas is None:
            return False
        return len(self.isr) < self.min_insync_replicas

    @property
    def leader_not_preferred(self) -> bool:
        return self.leader is not None and self.leader != self.preferred_leader

    def role_of(self, broker_id: int) -> str:
        """What ``broker_id`` is for this partition.

        One of ``leader``, ``in-sync``, ``out-of-sync``, ``offline`` (an
        assigned replica on a broker that is down) or ``none``.
        """
        if broker_id not in self.replicas:
            return "none"
        if broker_id in self.offline_replicas:
            return "offline"
        if broker_id == self.leader:
            return "leader"
        if broker_id in self.isr:
            return "in-sync"
        return "out-of-sync"

    def flags(self) -> list[str]:
        checks = (
            ("offline", self.offline),
            ("under-replicated", self.under_replicated),
            ("under-min-isr", self.under_min_isr),
            ("leader-not-preferred", self.leader_not_preferred),
        )
        return [name for name, on in checks if on]

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "leader": self.leader,
            "replicas": list(self.replicas),
            "isr": list(self.isr),
            "offline_replicas": list(self.offline_replicas),
            "flags": self.flags(),
            "log_start_offset": self.log_start_offset,
            "high_watermark": self.high_watermark,
            "last_stable_offset": self.last_stable_offset,
        }


@dataclass(frozen=True)
class TopicState:
    """A topic, its partitions in order and its relevant configs."""

    name: str
    internal: bool
    partitions: tuple[PartitionState, ...]
    config: TopicConfig = field(default_factory=TopicConfig)

    @property
    def replication_factor(self) -> int:
        return max((len(p.replicas) for p in self.partitions), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "internal": self.internal,
            "replication_factor": self.replication_factor,
            "config": self.config.to_json(),
            "partitions": [p.to_json() for p in self.partitions],
        }


@dataclass(frozen=True)
class ClusterSnapshot:
    """The whole layout at one instant, from fresh metadata.

    ``controller_id`` is what the metadata answer names; under KRaft that is
    a live broker picked at random, since clients cannot reach controllers.
    """

    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[Broker, ...]
    topics: dict[str, TopicState]
    taken_at: float

    @property
    def broker_ids(self) -> list[int]:
        return sorted(b.id for b in self.brokers)

    def partitions(self) -> list[PartitionState]:
        return [p for name in sorted(self.topics) for p in self.topics[name].partitions]

    def partition(self, topic: str, partition: int) -> PartitionState:
        return self.topics[topic].partitions[partition]

    def leader_counts(self) -> dict[int, int]:
        """Partitions led per live broker (brokers leading none count 0)."""
        counts = Counter(p.leader for p in self.partitions() if p.leader is not None)
        for broker_id in self.broker_ids:
            counts.setdefault(broker_id, 0)
        return dict(sorted(counts.items()))

    def leader_skew(self) -> float:
        """How far the busiest broker is above an even share, as a fraction.

        0.0 is perfectly balanced; 0.5 means the busiest broker leads 50 %
        more partitions than its fair share.
        """
        counts = self.leader_counts()
        total = sum(counts.values())
        if not counts or total == 0:
            return 0.0
        fair = total / len(counts)
        return max(counts.values()) / fair - 1.0

    @cached_property
    def _health(self) -> tuple[dict[str, int], dict[str, int]]:
        """Counts of every flag, and partitions with any flag per topic.

        Computed once per snapshot (the GUI asks on its own thread, so the
        refresher computes it on the worker thread first).
        """
        counts = dict.fromkeys(
            ("offline", "under_replicated", "under_min_isr", "leader_not_preferred"), 0
        )
        problems: dict[str, int] = {}
        for name, topic in self.topics.items():
            flagged = 0
            for p in topic.partitions:
                flags = p.flags()
                flagged += bool(flags)
                for flag in flags:
                    counts[flag.replace("-", "_")] += 1
            problems[name] = flagged
        summary = {
            "brokers": len(self.brokers),
            "topics": len(self.topics),
            "partitions": sum(len(t.partitions) for t in self.topics.values()),
            **counts,
        }
        return summary, problems

    def summary(self) -> dict[str, int]:
        """How many brokers, topics, partitions, and partitions with each flag."""
        return dict(self._health[0])

    def problems_per_topic(self) -> dict[str, int]:
        """Per topic, how many of its partitions have any flag."""
        return self._health[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "controller_id": self.controller_id,
            "taken_at": self.taken_at,
            "brokers": [b.to_json() for b in self.brokers],
            "leader_counts": {str(k): v for k, v in self.leader_counts().items()},
            "leader_skew": round(self.leader_skew(), 4),
            "summary": self.summary(),
            "topics": [self.topics[name].to_json() for name in sorted(self.topics)],
        }


def counted(count: int, noun: str) -> str:
    """``1 topic``, ``3 topics``: a count with its noun (regular plurals)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
