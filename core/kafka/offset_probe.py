"""Read what offsets alone cannot say: committed offsets, the next real record.

Committed offsets come from a Consumer per group (``committed()`` with the
group's id, never subscribing, so the group is not joined). The AdminClient's
``list_consumer_group_offsets`` is avoided on purpose: librdkafka's reply
handler for it can dereference a null consumer group when the coordinator
answers NOT_COORDINATOR (confluent-kafka-python #1982, -javascript #374), and
a segfault would take the whole application down - coordinators move exactly
when our demos kill brokers.

The next record at or after an offset comes from a fetch: transaction markers
and, under read_committed, aborted records are not messages, so offset
arithmetic alone overcounts (a caught-up group on a transactional topic would
show a lag of 1).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from core.errors import LagError
from core.kafka.connection import ClientLog

log = logging.getLogger(__name__)

TP = tuple[str, int]
# Many idle clients knock on a killed broker's port; back off longer.
QUIET_RECONNECTS = {"reconnect.backoff.ms": 500, "reconnect.backoff.max.ms": 5000}


@dataclass(frozen=True)
class NextRecord:
    """The first record a reader gets at or after an offset."""

    offset: int
    timestamp_ms: int | None


@dataclass(frozen=True)
class Scan:
    """What a reader found between two offsets.

    ``first``: the first record (None: there is none before the end).
    ``count``: the records in the range, when it was small enough to read
    through (else None).
    """

    first: NextRecord | None
    count: int | None


_COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def _coordinator_moving(error: KafkaError) -> bool:
    return error.code() in _COORDINATOR_MOVING or error.retriable()


class CommittedReader:
    """Committed offsets of any group, read with one idle Consumer per group."""

    # TODO: one AdminClient.list_consumer_group_offsets call instead of a
    # consumer per group, once librdkafka's admin OffsetFetch survives
    # NOT_COORDINATOR (it crashed the process in an earlier session here)

    def __init__(
        self, client: dict[str, Any], timeout: float = 10.0, keep: int = 32
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._keep = keep
        self._consumers: dict[str, Consumer] = {}
        self._lock = threading.Lock()

    def committed(self, group: str, partitions: list[TP]) -> dict[TP, int | None]:
        """Committed offset per partition; None where the group has none."""
        if not partitions:
            return {}
        with self._lock:
            consumer = self._consumers.pop(group, None)
            if consumer is None:
                consumer = Consumer(
                    {
                        **self._client,
                        "group.id": group,
                        "enable.auto.commit": False,
                        "logger": ClientLog(),
                        **QUIET_RECONNECTS,
                    }
                )
            self._consumers[group] = consumer  # the most recent last
        asked = [TopicPartition(t, p) for t, p in partitions]
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                answer = consumer.committed(asked, timeout=self._timeout)
                break
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if _coordinator_moving(error) and time.monotonic() < deadline:
                    # The group's coordinator moved (a broker stopped, or a
                    # leader election): ask again, the client finds the new one.
                    log.debug("committed offsets of %s: %s, again", group, error.str())
                    time.sleep(0.2)
                    continue
                raise LagError(
                    f"Cannot read the committed offsets of group {group}: "
                    f"{error.str()}",
                    hint="check that the cluster is reachable and the group exists",
                ) from exc
        return {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
            for tp in answer
        }

    def trim(self) -> None:
        """Close the least recently used consumers beyond ``keep``.

        Only between samples: a consumer must not close while in use.
        """
        with self._lock:
            surplus = max(0, len(self._consumers) - self._keep)
            evicted = [
                self._consumers.pop(name) for name in list(self._consumers)[:surplus]
            ]
        for consumer in evicted:
            consumer.close()

    def forget(self, group: str) -> None:
        with self._lock:
            consumer = self._consumers.pop(group, None)
        if consumer is not None:
            consumer.close()

    def close(self) -> None:
        with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            consumer.close()


class RecordProbe:
    """Reads offset ranges with one isolation level: first record, record count.

    One consumer, reused: assign every asked partition at its start, read
    until the range's end (or its first record, for long ranges) or the
    partition's end (EOF: the high watermark under read_uncommitted, the last
    stable offset under read_committed), then pause it.
    """

    def __init__(self, client: dict[str, Any], isolation: str) -> None:
        self.isolation = isolation
        self._consumer = Consumer(
            {
                **client,
                # never joins or commits: a group id only because the client wants one
                "group.id": f"cdc-studio-lag-probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": isolation,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
                "max.partition.fetch.bytes": 65536,
                "fetch.max.bytes": 4 * 1024 * 1024,
                "queued.max.messages.kbytes": 8192,
                "logger": ClientLog(),
                **QUIET_RECONNECTS,
            }
        )
        self._lock = threading.Lock()
        self._known_topics: set[str] = set()

    def scan(
        self,
        ranges: dict[TP, tuple[int, int]],
        *,
        count_up_to: int = 1000,
        timeout: float = 5.0,
    ) -> dict[TP, Scan]:
        """Per partition, the records in [start, end): the first and how many.

        A range longer than ``count_up_to`` offsets is only read to its first
        record. Partitions that do not answer within ``timeout`` are left out.
        """
        if not ranges:
            return {}
        with self._lock:
            return self._scan(ranges, count_up_to, timeout)

    def _scan(
        self, ranges: dict[TP, tuple[int, int]], count_up_to: int, timeout: float
    ) -> dict[TP, Scan]:
        consumer = self._consumer
        new_topics = {t for t, _ in ranges} - self._known_topics
        if new_topics:
            # Without this, librdkafka learns a new topic's leaders at its next
            # periodic metadata scan: up to a second per scan.
            try:
                metadata = consumer.list_topics(timeout=timeout)
                self._known_topics |= set(metadata.topics)
            except KafkaException as exc:
                log.debug("metadata before scan: %s", exc)
        consumer.assign([TopicPartition(t, p, s) for (t, p), (s, _) in ranges.items()])
        pending = set(ranges)
        first: dict[TP, NextRecord] = {}
        counts: dict[TP, int] = {}
        done: dict[TP, Scan] = {}
        deadline = time.monotonic() + timeout
        try:
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.05):
                    key = (str(msg.topic()), int(msg.partition() or 0))
                    if key not in pending:
                        continue
                    start, end = ranges[key]
                    counting = end - start <= count_up_to
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            done[key] = Scan(
                                first.get(key), counts.get(key, 0) if counting else None
                            )
                        else:
                            log.debug("scan of %s: %s", key, error.str())
                    elif int(msg.offset() or 0) >= end:
                        done[key] = Scan(
                            first.get(key), counts.get(key, 0) if counting else None
                        )
                    else:
                        if key not in first:
                            kind, stamp = msg.timestamp()
                            first[key] = NextRecord(
                                int(msg.offset() or 0), stamp if kind else None
                            )
                        counts[key] = counts.get(key, 0) + 1
                        if not counting or int(msg.offset() or 0) == end - 1:
                            done[key] = Scan(
                                first[key], counts[key] if counting else None
                            )
                    if key in done:
                        pending.discard(key)
                        consumer.pause([TopicPartition(*key)])
        finally:
            # a paused partition stays paused in the next assignment
            consumer.resume([TopicPartition(t, p) for t, p in ranges])
            consumer.unassign()
        if pending:
            log.info(
                "scan (%s) had no answer for %d partitions within %.1f s",
                self.isolation,
                len(pending),
                timeout,
            )
        return done

    def close(self) -> None:
        self._consumer.close()
