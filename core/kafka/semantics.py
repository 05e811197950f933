"""The four delivery semantics a consumer-group member can run with."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from core.errors import ConsumerError
from core.kafka.member import CrashPoints, MemberSpec, Reporter

log = logging.getLogger(__name__)


class SimulatedFailureError(Exception):
    """A simulated processing failure (the spec's failure rate)."""


def partitions_json(partitions: Sequence[TopicPartition]) -> list[list[Any]]:
    return sorted([tp.topic, tp.partition] for tp in partitions)


def next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the batch's last record: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        key = (str(msg.topic()), int(msg.partition() or 0))
        last[key] = max(last.get(key, -1), int(msg.offset() or 0))
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def offsets_json(offsets: Sequence[TopicPartition]) -> list[list[Any]]:
    return [[tp.topic, tp.partition, tp.offset] for tp in offsets]


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


class Semantics:
    """What all semantics share: processing knobs, reports, rewinding."""

    auto_offset_store = True

    def __init__(self, spec: MemberSpec, report: Reporter, crash: CrashPoints) -> None:
        self.spec = spec
        self.report = report
        self.crash = crash
        self._rng = random.Random(spec.seed)
        self.consumer: Consumer | None = None

    def attach(self, consumer: Consumer) -> None:
        self.consumer = consumer

    @property
    def _consumer(self) -> Consumer:
        assert self.consumer is not None, "attach() the consumer first"
        return self.consumer

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.report("assigned", partitions=partitions_json(partitions))

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.report("revoked", partitions=partitions_json(partitions))

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.report("lost", partitions=partitions_json(partitions))

    def attempt(self, msg: Message) -> None:
        """Spend the per-record delay; fail at the spec's failure rate."""
        if self.spec.delay_ms > 0:
            time.sleep(self.spec.delay_ms / 1000)
        self.crash.handled += 1
        if self.spec.failure_rate and self._rng.random() < self.spec.failure_rate:
            self.report(
                "failed",
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
            )
            raise SimulatedFailureError

    def rewind(self, unprocessed: Sequence[Message]) -> None:
        """Seek each partition back to its first unprocessed record.

        A partition revoked meanwhile cannot be sought; its next owner starts
        from the committed offset, which is what a rewind wants anyway.
        """
        first: dict[tuple[str, int], int] = {}
        for msg in unprocessed:
            key = (str(msg.topic()), int(msg.partition() or 0))
            first[key] = min(
                first.get(key, int(msg.offset() or 0)), int(msg.offset() or 0)
            )
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.info("no rewind of %s-%d: %s", topic, partition, exc)

    def record_line(self, msg: Message) -> dict[str, Any]:
        return {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": _text(msg.key()),
            "value": _text(msg.value()),
            "member": self.spec.name,
        }

    def handle(self, batch: list[Message]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the semantics holds (files, producers, connections)."""


class _FileOutput(Semantics):
    """Processing appends one JSON line per record to the output file."""

    def __init__(self, spec: MemberSpec, report: Reporter, crash: CrashPoints) -> None:
        super().__init__(spec, report, crash)
        self._fd: int | None = None
        if spec.output_path:
            self._fd = os.open(
                spec.output_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )

    def output(self, msg: Message) -> None:
        line = self.record_line(msg)
        if self._fd is not None:
            os.write(self._fd, (json.dumps(line) + "\n").encode())
        if self.spec.report_records:
            self.report("processed", **line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class AtMostOnce(_FileOutput):
    """Commit the batch's offsets first, then process it.

    A crash after the commit loses the batch's unprocessed records; a
    processing failure drops the record (it is never offered again).
    """

    def handle(self, batch: list[Message]) -> None:
        offsets = next_offsets(batch)
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not committed (a rebalance, most likely): not processed either,
            # so whoever owns the partitions next reads them again.
            self.report("commit-failed", error=exc.args[0].str())
            self.rewind(batch)
            return
        self.report("committed", offsets=offsets_json(offsets))
        self.crash.reach("after-commit-before-process")

        for msg in batch:
            try:
                self.attempt(msg)
            except SimulatedFailureError:
                continue
            self.output(msg)
        self.report("batch", count=len(batch))


class AtLeastOnce(_FileOutput):
    """Process each record, then store its offset; commit the stored offsets.

    librdkafka by default stores a record's offset the moment ``consume()``
    hands it over (enable.auto.offset.store=true), and any commit - the
    auto-commit timer or a rebalance - would then commit records that were
    never processed: a crash turns that into loss. So offsets are stored only
    with ``store_offsets()`` once a record is processed, and only stored
    offsets are committed. A crash between processing and the commit makes
    the next owner process those records again: duplicates, never loss.
    """

    auto_offset_store = False

    def handle(self, batch: list[Message]) -> None:
        for index, msg in enumerate(batch):
            try:
                self.attempt(msg)
            except SimulatedFailureError:
                self.rewind(batch[index:])
                break
            self.output(msg)
            self._consumer.store_offsets(message=msg)
        self.crash.reach("after-process-before-commit")
        self._commit_stored()
        self.report("batch", count=len(batch))

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit_stored()
        super().on_revoke(consumer, partitions)

    def _commit_stored(self) -> None:
        try:
            committed = self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                # The stored offsets stay stored and go with the next commit;
                # if the partitions moved, their next owner repeats records.
                self.report("commit-failed", error=exc.args[0].str())
            return
        if committed:
            done = [tp for tp in committed if tp.offset >= 0]
            self.report("committed", offsets=offsets_json(done))


def run_member(spec: MemberSpec, report: Reporter, crash: CrashPoints) -> int:
    """Consume until SIGTERM; 0 after a clean stop, 3 after a fatal error."""
    from core.kafka.semantics_eos import ExactlyOnceH2, ExactlyOnceKafka

    kinds: dict[str, type[Semantics]] = {
        "at-most-once": AtMostOnce,
        "at-least-once": AtLeastOnce,
        "exactly-once-kafka": ExactlyOnceKafka,
        "exactly-once-h2": ExactlyOnceH2,
    }
    semantics = kinds[spec.semantics](spec, report, crash)
    # After the semantics: an H2 sink starts a JVM, which would otherwise
    # take SIGTERM for itself and exit at once (code 143) mid-batch.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    consumer = Consumer(consumer_config(spec, semantics.auto_offset_store))
    semantics.attach(consumer)
    consumer.subscribe(
        spec.topics,
        on_assign=semantics.on_assign,
        on_revoke=semantics.on_revoke,
        on_lost=semantics.on_lost,
    )
    report(
        "started",
        semantics=spec.semantics,
        isolation=spec.isolation,
        topics=spec.topics,
    )
    log.info(
        "member %s of %s started (%s, %s)",
        spec.name,
        spec.group_id,
        spec.semantics,
        spec.isolation,
    )
    code = 0
    try:
        while not stop.is_set():
            batch = [
                m
                for m in consumer.consume(spec.batch_size, 0.5)
                if not _is_error(m, report)
            ]
            if batch:
                semantics.handle(batch)
    except ConsumerError as exc:
        report("fatal", error=str(exc))
        code = 3
    except KafkaException as exc:  # unclassified Kafka errors count as fatal
        report("fatal", error=exc.args[0].str())
        log.error("member stops on a Kafka error: %s", exc.args[0].str())
        code = 3
    finally:
        consumer.close()
        semantics.close()
    report("stopped", code=code)
    return code


def consumer_config(spec: MemberSpec, auto_offset_store: bool) -> dict[str, Any]:
    return {
        **spec.client,
        "group.id": spec.group_id,
        "client.id": f"{spec.group_id}.{spec.name}",
        "isolation.level": spec.isolation,
        "auto.offset.reset": spec.auto_offset_reset,
        "enable.auto.commit": False,
        "enable.auto.offset.store": auto_offset_store,
        "session.timeout.ms": spec.session_timeout_ms,
        "heartbeat.interval.ms": max(500, spec.session_timeout_ms // 3),
        "logger": log,
    }


def _is_error(msg: Message, report: Reporter) -> bool:
    error = msg.error()
    if error is None:
        return False
    if error.fatal():
        raise ConsumerError(f"The consumer hit a fatal error: {error.str()}")
    log.warning("consumer error: %s", error.str())
    report("error", error=error.str())
    return True
