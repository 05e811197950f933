"""The cluster inspector: fresh layout snapshots, a timeline of changes, actions.

Usage (one inspector per cluster; its methods block, so call them off the GUI
thread)::

    inspector = ClusterInspector.for_settings(settings)   # embedded stack
    snapshot, events = inspector.refresh()    # events: changes since last refresh
    p = snapshot.partition("orders", 0)
    p.leader, p.replicas, p.isr               # -> 2, (2, 3, 1), (2, 3)
    p.flags()                                 # -> ["under-replicated", ...]
    p.high_watermark, p.last_stable_offset    # exact offsets (None: unreadable)
    snapshot.leader_counts()                  # -> {1: 4, 2: 4, 3: 4}
    inspector.timeline.events()               # every change seen so far
    inspector.elect_preferred_leaders()       # after a broker came back
    inspector.close()
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    ElectionType,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
)

from core.errors import ClusterActionError, KafkaConnectionError, ReadOnlyError
from core.kafka import connection
from core.kafka.cluster import (
    Broker,
    ClusterSnapshot,
    PartitionState,
    TopicConfig,
    TopicState,
)
from core.kafka.timeline import ClusterEvent, Timeline, diff
from core.settings import Settings

log = logging.getLogger(__name__)

CONFIG_KEYS = (
    "min.insync.replicas",
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "unclean.leader.election.enable",
)
# Offsets of partitions whose leader just died are given up on after this
# long, so that a refresh during a fail-over stays short.
OFFSETS_TIMEOUT_S = 3.0
Offsets = dict[tuple[str, int], tuple[int | None, int | None, int | None]]


def is_internal(name: str) -> bool:
    """Kafka's own topics (offsets, transaction state, share groups, ...)."""
    return name.startswith("__")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _topic_config(entries: dict[str, Any]) -> TopicConfig:
    def value(key: str) -> str | None:
        entry = entries.get(key)
        return None if entry is None else entry.value

    unclean = value("unclean.leader.election.enable")
    return TopicConfig(
        min_insync_replicas=_int_or_none(value("min.insync.replicas")),
        cleanup_policy=value("cleanup.policy"),
        retention_ms=_int_or_none(value("retention.ms")),
        retention_bytes=_int_or_none(value("retention.bytes")),
        unclean_leader_election=None if unclean is None else unclean == "true",
    )


class ClusterInspector:
    """Reads the layout of one cluster and runs admin actions on it.

    ``client_config`` is a librdkafka config dict (at least
    ``bootstrap.servers``). With ``read_only`` every action that writes to
    the cluster raises :class:`ReadOnlyError`. Thread-safe.
    """

    def __init__(
        self,
        client_config: dict[str, Any],
        *,
        read_only: bool = False,
        include_internal: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.bootstrap = str(client_config.get("bootstrap.servers", ""))
        self.read_only = read_only
        self.include_internal = include_internal
        self.timeout = timeout
        self.timeline = Timeline()
        self._client_config = dict(client_config)
        self._errors = connection.ErrorCollector()
        self._admin = connection.admin_client(client_config, self._errors)
        self._lock = threading.Lock()
        self._last: ClusterSnapshot | None = None
        self._configs: dict[str, TopicConfig] = {}
        self._racks: dict[int, str | None] = {}
        self._racks_retry_at = 0.0

    @classmethod
    def for_settings(cls, settings: Settings, **kwargs: Any) -> ClusterInspector:
        """An inspector of the embedded stack described by ``settings``."""
        return cls({"bootstrap.servers": settings.bootstrap_servers}, **kwargs)

    def client_config(self) -> dict[str, Any]:
        """A copy of the librdkafka config, for other clients of this cluster."""
        return dict(self._client_config)

    def close(self) -> None:
        """Drop the client (librdkafka closes it when it is collected)."""
        self._admin.poll(0)

    # -- reading -----------------------------------------------------------

    @property
    def last(self) -> ClusterSnapshot | None:
        """The snapshot of the latest refresh, if any."""
        return self._last

    def refresh(
        self, *, offsets: bool = True, configs: bool = True
    ) -> tuple[ClusterSnapshot, list[ClusterEvent]]:
        """Take a fresh snapshot; return it and the changes since the last one.

        The changes are also appended to :attr:`timeline`. ``configs=False``
        reuses the topic configs read last time (they rarely change).
        """
        snapshot = self.snapshot(offsets=offsets, configs=configs)
        with self._lock:
            events = diff(self._last, snapshot)
            self._last = snapshot
        self.timeline.extend(events)
        return snapshot, events

    def snapshot(
        self, *, offsets: bool = True, configs: bool = True
    ) -> ClusterSnapshot:
        """The cluster's layout now, from fresh metadata (no timeline change).

        The layout comes from one Metadata request, which any live broker
        answers. (librdkafka sends DescribeTopics and DescribeCluster to the
        broker it believes is the controller and, when that broker has just
        died, waits for it until the cluster fences it.)
        """
        taken_at = time.time()
        try:
            metadata = self._admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise self._connection_error(exc) from exc
        live = set(metadata.brokers)
        listed = {
            name: topic
            for name, topic in metadata.topics.items()
            if topic.error is None and (self.include_internal or not is_internal(name))
        }
        if configs:
            self._configs.update(self._describe_configs(sorted(listed)))
        positions = self._offsets(listed) if offsets else {}

        topics: dict[str, TopicState] = {}
        for name in sorted(listed):
            config = self._configs.get(name, TopicConfig())
            partitions = tuple(
                self._partition(name, p, live, config, positions)
                for p in sorted(listed[name].partitions.values(), key=lambda p: p.id)
            )
            topics[name] = TopicState(name, is_internal(name), partitions, config)
        controller = metadata.controller_id if metadata.controller_id >= 0 else None
        brokers = self._brokers(metadata.brokers)
        return ClusterSnapshot(
            metadata.cluster_id, controller, brokers, topics, taken_at
        )

    def _partition(
        self,
        topic: str,
        info: Any,
        live: set[int],
        config: TopicConfig,
        positions: Offsets,
    ) -> PartitionState:
        replicas = tuple(info.replicas)
        start, high, stable = positions.get((topic, info.id), (None, None, None))
        return PartitionState(
            topic=topic,
            partition=info.id,
            leader=info.leader if info.leader >= 0 else None,
            replicas=replicas,
            isr=tuple(info.isrs),
            offline_replicas=tuple(r for r in replicas if r not in live),
            min_insync_replicas=config.min_insync_replicas,
            log_start_offset=start,
            high_watermark=high,
            last_stable_offset=stable,
        )

    def _brokers(self, listed: dict[int, Any]) -> tuple[Broker, ...]:
        """The live brokers, with racks (the metadata answer carries none)."""
        unknown = [b for b in listed if b not in self._racks]
        if unknown and time.monotonic() >= self._racks_retry_at:
            self._learn_racks()
        return tuple(
            Broker(b.id, b.host, b.port, self._racks.get(b.id))
            for b in sorted(listed.values(), key=lambda b: b.id)
        )

    def _learn_racks(self) -> None:
        try:
            future = self._admin.describe_cluster(request_timeout=2)
            cluster = future.result(timeout=self._answer_timeout())
        except (KafkaException, TimeoutError) as exc:
            log.debug("racks not read, retrying in 30 s: %s", exc)
            self._racks_retry_at = time.monotonic() + 30
            return
        for node in cluster.nodes:
            self._racks[node.id] = node.rack

    def _describe_configs(self, names: list[str]) -> dict[str, TopicConfig]:
        if not names:
            return {}
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        futures = self._admin.describe_configs(resources, request_timeout=self.timeout)
        configs: dict[str, TopicConfig] = {}
        deadline = time.monotonic() + self._answer_timeout()
        for resource, future in futures.items():
            try:
                answer = future.result(timeout=_left(deadline))
                configs[resource.name] = _topic_config(answer)
            except (KafkaException, TimeoutError) as exc:
                log.debug("configs of %s not read: %s", resource.name, exc)
        return configs

    def _offsets(self, listed: dict[str, Any]) -> Offsets:
        """Log start, high watermark and last stable offset of every partition.

        A partition without a leader (or whose leader just died) gets None
        for the offsets that could not be read.
        """
        partitions = [
            (name, p) for name, topic in listed.items() for p in topic.partitions
        ]
        if not partitions:
            return {}
        requests = {
            "start": (OffsetSpec.earliest(), IsolationLevel.READ_UNCOMMITTED),
            "high": (OffsetSpec.latest(), IsolationLevel.READ_UNCOMMITTED),
            "stable": (OffsetSpec.latest(), IsolationLevel.READ_COMMITTED),
        }
        pending: dict[str, dict[TopicPartition, Future[Any]]] = {}
        for what, (spec, isolation) in requests.items():
            pending[what] = self._admin.list_offsets(
                {TopicPartition(t, p): spec for t, p in partitions},
                isolation_level=isolation,
                request_timeout=min(self.timeout, OFFSETS_TIMEOUT_S),
            )
        found: dict[str, dict[tuple[str, int], int]] = {}
        deadline = time.monotonic() + self._answer_timeout()
        for what, futures in pending.items():
            found[what] = {}
            for tp, future in futures.items():
                try:
                    answer = future.result(timeout=_left(deadline))
                    found[what][(tp.topic, tp.partition)] = answer.offset
                except (KafkaException, TimeoutError) as exc:
                    log.debug(
                        "%s offset of %s-%d: %s", what, tp.topic, tp.partition, exc
                    )
        return {
            key: (
                found["start"].get(key),
                found["high"].get(key),
                found["stable"].get(key),
            )
            for key in partitions
        }

    # -- actions -------------------------------------------------------------

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"Cannot {action}: this connection is read-only",
                hint="use a connection profile that is not marked read-only",
            )

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: dict[str, str] | None = None,
    ) -> None:
        """Create ``name`` and wait until every partition has a leader."""
        self._check_writable(f"create topic {name}")
        _check_min_insync(name, (config or {}).get(MIN_ISR), replication_factor)
        new = NewTopic(name, partitions, replication_factor, config=config or {})
        futures = self._admin.create_topics([new], request_timeout=self.timeout)
        self._action_result(futures[name], f"create topic {name}")
        # Brokers learn of a new topic one by one, and each metadata request
        # may go to another broker: the topic counts as there once the full
        # listing (what a snapshot reads) showed it led, 3 times in a row.
        deadline = time.monotonic() + self.timeout * 3
        streak = 0
        while time.monotonic() < deadline:
            try:
                found = self._admin.list_topics(timeout=self.timeout)
            except KafkaException:
                found = None
            topic = found.topics.get(name) if found else None
            led = (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            )
            streak = streak + 1 if led else 0
            if streak >= 3:
                log.info(
                    "created topic %s (%d x %d)", name, partitions, replication_factor
                )
                return
            time.sleep(0.05 if led else 0.1)
        raise ClusterActionError(
            f"Topic {name} was created but not all its partitions got a leader",
            hint="check that enough brokers are up for the replication factor",
        )

    def alter_topic_config(self, topic: str, changes: dict[str, str | None]) -> None:
        """Set (or, with None, reset to the default) configs of ``topic``."""
        self._check_writable(f"change the config of {topic}")
        if changes.get(MIN_ISR) is not None:
            listed = self._admin.list_topics(topic, timeout=self.timeout).topics
            found = listed.get(topic)
            if found is not None and found.error is None and found.partitions:
                factor = min(len(p.replicas) for p in found.partitions.values())
                _check_min_insync(topic, changes[MIN_ISR], factor)
        entries = [
            ConfigEntry(
                key,
                value,
                incremental_operation=(
                    AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
                ),
            )
            for key, value in changes.items()
        ]
        resource = ConfigResource(
            ConfigResource.Type.TOPIC, topic, incremental_configs=entries
        )
        futures = self._admin.incremental_alter_configs(
            [resource], request_timeout=self.timeout
        )
        for future in futures.values():
            self._action_result(future, f"change the config of {topic}")
        self._configs.pop(topic, None)
        log.info("changed config of %s: %s", topic, changes)

    def elect_preferred_leaders(
        self, partitions: list[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], str | None]:
        """Move leadership back to each partition's preferred replica.

        ``partitions`` None means every partition of the cluster. Returns, per
        partition the cluster answered about, None on success or the reason
        it was not moved (e.g. already on its preferred leader).
        """
        self._check_writable("run a preferred leader election")
        tps = (
            None
            if partitions is None
            else [TopicPartition(t, p) for t, p in partitions]
        )
        # No timeout keywords: confluent-kafka 2.16 fails on any keyword
        # argument to elect_leaders (its C binding rejects them).
        future = self._admin.elect_leaders(ElectionType.PREFERRED, tps)
        answered = self._action_result(future, "run a preferred leader election")
        outcome: dict[tuple[str, int], str | None] = {}
        for tp, error in answered.items():
            outcome[(tp.topic, tp.partition)] = (
                None
                if error is None
                else str(
                    error.args[0].str() if isinstance(error, KafkaException) else error
                )
            )
        moved = sum(v is None for v in outcome.values())
        log.info("preferred leader election: %d partition(s) moved", moved)
        return outcome

    def delete_topic(self, name: str) -> None:
        """Delete ``name`` (the GUI asks for confirmation before calling this)."""
        self._check_writable(f"delete topic {name}")
        futures = self._admin.delete_topics([name], request_timeout=self.timeout)
        self._action_result(futures[name], f"delete topic {name}")
        self._configs.pop(name, None)
        log.info("deleted topic %s", name)

    # -- errors --------------------------------------------------------------

    def _answer_timeout(self) -> float:
        """How long to wait for an admin answer: librdkafka times requests out
        itself well before this; the bound only keeps a lost answer from
        holding a worker thread forever."""
        return self.timeout * 3

    def _action_result(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self._answer_timeout())
        except TimeoutError as exc:
            self._raise_unconfirmed(what, exc)
            self._admin.poll(0)
            raise connection.classify(
                self.bootstrap, None, self._errors.take()
            ) from exc
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() in (
                KafkaError._TIMED_OUT,
                KafkaError._TRANSPORT,
                KafkaError._ALL_BROKERS_DOWN,
            ):
                if error.code() == KafkaError._TIMED_OUT:
                    self._raise_unconfirmed(what, exc)
                raise self._connection_error(exc) from exc
            text = error.str() if isinstance(error, KafkaError) else str(error)
            raise ClusterActionError(
                f"Could not {what}: {text}",
                hint="check the values given and the cluster's state",
            ) from exc

    def _raise_unconfirmed(self, what: str, cause: BaseException) -> None:
        """An action timed out although brokers answer: say that, not "no broker".

        Brokers pass creates, config changes and deletes on to the controller;
        with the controller down they time out, and may still take effect
        once it is back.
        """
        try:
            self._admin.list_topics(timeout=2)
        except KafkaException:
            return  # no broker answers either: the connection error says so
        raise ClusterActionError(
            f"Kafka did not confirm that it could {what} in time, though its "
            "brokers answer: the controller may be down (`cdc-studio stack status`)",
            hint="the request may still take effect once the controller is back: "
            "check with `cdc-studio cluster` before trying again",
        ) from cause

    def _connection_error(self, exc: KafkaException) -> KafkaConnectionError:
        self._admin.poll(0)  # serves error_cb, filling the collector
        return connection.classify(self.bootstrap, exc, self._errors.take())


def _left(deadline: float) -> float:
    """Seconds to the deadline; a little even when it has passed, so answers
    already in are still taken."""
    return max(deadline - time.monotonic(), 0.01)


MIN_ISR = "min.insync.replicas"


def _check_min_insync(topic: str, value: str | None, replication_factor: int) -> None:
    """Refuse a min.insync.replicas no partition of ``topic`` could meet.

    Kafka takes it, and then refuses every acks=all write to the topic.
    """
    if value is None:
        return
    try:
        wanted = int(value)
    except ValueError:
        raise ClusterActionError(
            f"{MIN_ISR} of {topic} must be a whole number, not {value!r}",
            hint="for example 2",
        ) from None
    if wanted > replication_factor:
        raise ClusterActionError(
            f"{MIN_ISR} {wanted} is more than the replication factor "
            f"{replication_factor} of {topic}: every acks=all write would be refused",
            hint=f"use at most {replication_factor}",
        )
