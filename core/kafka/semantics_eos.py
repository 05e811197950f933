"""Exactly-once members: Kafka to Kafka by transactions, Kafka to an H2 table."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from core.errors import ConsumerError, H2Error
from core.kafka.member import CrashPoints, MemberSpec, Reporter
from core.kafka.semantics import (
    Semantics,
    SimulatedFailureError,
    next_offsets,
    offsets_json,
    partitions_json,
)

log = logging.getLogger(__name__)
_TXN_TIMEOUT_S = 30.0


class ExactlyOnceKafka(Semantics):
    """Consume, transform and produce in one transaction with the offsets.

    Each batch is one transaction: the output records and the consumed
    offsets (``send_offsets_to_transaction``) commit or abort together. The
    group metadata is fetched for every transaction, because a rebalance
    changes the generation and the broker fences offsets sent with a stale
    one. Errors are handled by their flags: abortable -> abort and rewind to
    the batch's first offsets; anything else -> stop (fatal, e.g. fenced by
    a newer member with the same transactional id).
    """

    def __init__(self, spec: MemberSpec, report: Reporter, crash: CrashPoints) -> None:
        super().__init__(spec, report, crash)
        self.producer = Producer(
            {
                **spec.client,
                "transactional.id": spec.effective_transactional_id,
                "transaction.timeout.ms": spec.transaction_timeout_ms,
                # must stay below the transaction time-out
                "message.timeout.ms": max(1000, spec.transaction_timeout_ms - 1000),
                "logger": log,
            }
        )
        try:
            self.producer.init_transactions(_TXN_TIMEOUT_S)
        except KafkaException as exc:
            raise ConsumerError(
                f"Cannot start transactions as {spec.effective_transactional_id}: "
                f"{exc.args[0].str()}",
                hint="check that the cluster is up and allows transactions",
            ) from exc

    def handle(self, batch: list[Message]) -> None:
        try:
            self._transaction(batch)
        except SimulatedFailureError:
            self._abort(batch, "processing failed")
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():
                self._abort(batch, error.str())
                return
            raise ConsumerError(
                f"Transaction failed fatally: {error.str()}",
                hint="a newer member with the same transactional id fences this "
                "one; start a new member instead",
            ) from exc

    def _transaction(self, batch: list[Message]) -> None:
        output = str(self.spec.output_topic)
        half = max(1, len(batch) // 2)
        self.producer.begin_transaction()
        for index, msg in enumerate(batch, start=1):
            self.attempt(msg)
            source = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
            self.producer.produce(
                output,
                key=msg.key(),
                value=msg.value(),
                headers=[("source", source.encode())],
            )
            self.producer.poll(0)
            if index == half:
                self.crash.reach("mid-transaction")

        offsets = next_offsets(batch)
        metadata = self._consumer.consumer_group_metadata()
        self.producer.send_offsets_to_transaction(offsets, metadata, _TXN_TIMEOUT_S)
        self.crash.reach("before-commit-transaction")
        self._commit()
        self.report("committed", offsets=offsets_json(offsets))
        self.report("batch", count=len(batch))

    def _commit(self) -> None:
        for _ in range(3):
            try:
                self.producer.commit_transaction(_TXN_TIMEOUT_S)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise
                log.info("commit of transaction will be retried: %s", exc)
        self.producer.commit_transaction(_TXN_TIMEOUT_S)

    def _abort(self, batch: list[Message], reason: str) -> None:
        self.producer.abort_transaction(_TXN_TIMEOUT_S)
        self.rewind(batch)
        self.report("aborted", reason=reason, count=len(batch))

    def close(self) -> None:
        try:
            self.producer.flush(5)
        except KafkaException as exc:  # fenced or failed: nothing left to send
            log.info("producer closed after: %s", exc.args[0].str())


class ExactlyOnceH2(Semantics):
    """Write output rows and next offsets to H2 in one database transaction.

    On assignment the member seeks to the offsets stored in H2, not to
    Kafka's committed ones (those are committed too, after the database
    commit, only so that lag tools can see the group). Before writing, the
    stored offset of each partition is read FOR UPDATE: records below it were
    already written (by this member before a rebalance, or by another one)
    and are skipped, so a stale member cannot write twice.
    """

    def __init__(self, spec: MemberSpec, report: Reporter, crash: CrashPoints) -> None:
        super().__init__(spec, report, crash)
        from core.h2.connection import H2Connection

        self.conn = H2Connection(settings_from_spec(spec))
        try:
            ensure_sink_tables(self.conn, spec.sink_table)
        except H2Error:
            # another member created them at the same moment
            ensure_sink_tables(self.conn, spec.sink_table)
        self.conn.set_autocommit(False)

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._stored_offsets(partitions)
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                tp.offset = stored[(tp.topic, tp.partition)]
        consumer.assign(partitions)
        self.report(
            "assigned",
            partitions=partitions_json(partitions),
            h2_offsets=[[t, p, o] for (t, p), o in sorted(stored.items())],
        )

    def _stored_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        rows = self.conn.query(
            f"SELECT TOPIC, KAFKA_PARTITION, NEXT_OFFSET FROM "
            f"{self.spec.sink_table}_OFFSETS WHERE GROUP_ID = ?",
            [self.spec.group_id],
        )
        self.conn.commit()
        wanted = {(tp.topic, tp.partition) for tp in partitions}
        return {(r[0], r[1]): r[2] for r in rows if (r[0], r[1]) in wanted}

    def handle(self, batch: list[Message]) -> None:
        try:
            written = self._write(batch)
        except (SimulatedFailureError, H2Error) as exc:
            self.conn.rollback()
            self.rewind(batch)
            self.report(
                "aborted", reason=str(exc) or "processing failed", count=len(batch)
            )
            return
        offsets = next_offsets(written)
        if offsets:
            self.report("committed", offsets=offsets_json(offsets))
            self._consumer.commit(offsets=offsets, asynchronous=True)
        self.report("batch", count=len(batch))

    def _write(self, batch: list[Message]) -> list[Message]:
        table = self.spec.sink_table
        fresh: list[Message] = []
        for tp in next_offsets(batch):
            stored = self.conn.query(
                f"SELECT NEXT_OFFSET FROM {table}_OFFSETS WHERE GROUP_ID = ? "
                "AND TOPIC = ? AND KAFKA_PARTITION = ? FOR UPDATE",
                [self.spec.group_id, tp.topic, tp.partition],
            )
            start = stored[0][0] if stored else -1
            mine = [
                m
                for m in batch
                if (m.topic(), m.partition()) == (tp.topic, tp.partition)
            ]
            kept = [m for m in mine if int(m.offset() or 0) >= start]
            if len(kept) < len(mine):
                self.report(
                    "skipped",
                    topic=tp.topic,
                    partition=tp.partition,
                    count=len(mine) - len(kept),
                    stored=start,
                )
            fresh += kept

        for msg in fresh:
            self.attempt(msg)
            self.conn.run(
                f"INSERT INTO {table} (GROUP_ID, TOPIC, KAFKA_PARTITION, "
                "RECORD_OFFSET, RECORD_KEY, RECORD_VALUE, MEMBER) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    self.spec.group_id,
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key(),
                    msg.value(),
                    self.spec.name,
                ],
            )
        for tp in next_offsets(fresh):
            self.conn.run(
                f"MERGE INTO {table}_OFFSETS (GROUP_ID, TOPIC, KAFKA_PARTITION, "
                "NEXT_OFFSET) KEY (GROUP_ID, TOPIC, KAFKA_PARTITION) "
                "VALUES (?, ?, ?, ?)",
                [self.spec.group_id, tp.topic, tp.partition, tp.offset],
            )
        self.crash.reach("after-write-before-db-commit")
        self.conn.commit()
        return fresh

    def close(self) -> None:
        self.conn.close()


def ensure_sink_tables(conn: Any, table: str) -> None:
    """Create the sink table and its offsets table unless they exist."""
    if not table.replace("_", "").isalnum():
        raise H2Error(
            f"Bad sink table name {table!r}",
            hint="use letters, digits and underscores only",
        )
    conn.run(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "ID BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "GROUP_ID VARCHAR(255) NOT NULL, TOPIC VARCHAR(255) NOT NULL, "
        "KAFKA_PARTITION INT NOT NULL, RECORD_OFFSET BIGINT NOT NULL, "
        "RECORD_KEY VARBINARY, RECORD_VALUE VARBINARY, MEMBER VARCHAR(64), "
        "WRITTEN_AT TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.run(
        f"CREATE TABLE IF NOT EXISTS {table}_OFFSETS ("
        "GROUP_ID VARCHAR(255) NOT NULL, TOPIC VARCHAR(255) NOT NULL, "
        "KAFKA_PARTITION INT NOT NULL, NEXT_OFFSET BIGINT NOT NULL, "
        "PRIMARY KEY (GROUP_ID, TOPIC, KAFKA_PARTITION))"
    )


def settings_from_spec(spec: MemberSpec) -> Any:
    """The studio Settings the spec carries (they locate the H2 server)."""
    from core.settings import H2Settings, JvmSettings, KafkaSettings, Settings

    values = dict(spec.settings)
    return Settings(
        data_dir=values.get("data_dir", ""),
        kafka=KafkaSettings(**values.get("kafka", {})),
        h2=H2Settings(**values.get("h2", {})),
        jvm=JvmSettings(**values.get("jvm", {})),
    )
