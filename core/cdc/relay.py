"""The relay: moves committed changes from the H2 outbox to Kafka topics.

API (for the CLI, the GUI and the demos)::

    relay = Relay(settings, RelayConfig(mode="exactly-once", prefix="h2"))
    relay.run(stop_event)        # until stop_event is set or a fatal error
    relay.run_once()             # one batch; the number of changes published
    relay.stats                  # RelayStats: state, counters, last error
    relay.close()

or as its own process: ``cdc-studio relay run --mode exactly-once`` (see
core/cdc/cli.py), which can be killed with SIGKILL at any instant.

Modes:

- ``exactly-once`` (default): a transactional producer with a stable
  ``transactional.id`` (``relay_id``). Each batch's events and the relay's
  position (the batch's outbox sequence numbers, in the relay's own compacted
  topic ``cdc-studio.relay-position.<relay_id>``) are committed in one Kafka
  transaction; the outbox rows are deleted only after the commit. A restarted
  relay first fences any older instance (``init_transactions``), reads its
  last committed position with ``read_committed`` and deletes those rows, so
  a batch is never published twice and never lost, whatever instant the old
  one died.
- ``idempotent``: an idempotent producer (no duplicates from retries); rows
  are deleted once every event is acknowledged, so a crash between the two
  republishes that batch.
- ``at-least-once``: ``acks=all`` with retries, one request in flight per
  connection (to keep per-key order), no idempotence.

Errors are handled by their flags: retriable -> retry; abortable
(``txn_requires_abort``) -> abort and retry the batch; fatal (including
being fenced by a newer relay with the same id) -> stop, raising
``RelayFencedError`` / ``RelayError``. A broker outage or an H2 restart makes
the relay wait and resume. A change too large for Kafka is moved to
``CDC_STUDIO.OUTBOX_REJECTED`` and logged with its table and key; the others
go on.

One relay per schema: a relay given ``schemas`` claims them in
``CDC_STUDIO.RELAY_CLAIMS`` (see core/h2/outbox.py), and a relay for all
schemas skips claimed ones, so a demo's relay and the user's relay can run
side by side on one database.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from core.cdc import events
from core.cdc.events import OutboxRow
from core.errors import H2Error, RelayError, RelayFencedError
from core.h2 import outbox, triggers
from core.h2.connection import H2Connection
from core.settings import Settings

log = logging.getLogger(__name__)
_client_log = logging.getLogger(__name__ + ".librdkafka")


class TransientToInfo(logging.Filter):
    """librdkafka warns about transient states (coordinator loading, broker
    down) that the relay rides out and reports through its own state; those
    lines are kept at INFO. Errors stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_client_log.addFilter(TransientToInfo())

MODES = ("exactly-once", "idempotent", "at-least-once")
# A newer instance with the same transactional id took over (the broker may
# say so as an old epoch, depending on the request that noticed it).
_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}


@dataclass
class RelayConfig:
    """How the relay publishes; every field has a default."""

    mode: str = "exactly-once"
    prefix: str = "h2"
    partitions: int = 3
    replication_factor: int = 3
    relay_id: str = "cdc-studio-relay"
    # Default: "cdc-studio.relay-position.<relay_id>", one topic per relay, so
    # that no other producer's open transaction holds back its last stable offset.
    position_topic: str = ""
    batch_size: int = 500
    poll_interval_s: float = 0.02
    bootstrap_servers: str = ""
    database: str = ""
    max_message_bytes: int = 1_000_000
    transaction_timeout_ms: int = 60_000
    producer_config: dict[str, Any] = field(default_factory=dict)
    # Only changes of these schemas (all when empty): tests and demos share one DB.
    schemas: tuple[str, ...] = ()


@dataclass
class RelayStats:
    """What the relay did so far, for status files and the Pipeline view."""

    mode: str = ""
    state: str = "starting"
    pid: int = field(default_factory=os.getpid)
    published: int = 0
    rejected: int = 0
    batches: int = 0
    aborted: int = 0
    restarts: int = 0  # producer started again after a refused abort
    last_seq: int | None = None
    error: str | None = None
    updated_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Relay:
    """One relay: outbox -> topics, in the configured mode."""

    def __init__(
        self,
        settings: Settings,
        config: RelayConfig | None = None,
        on_stats: Callable[[RelayStats], None] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or RelayConfig()
        if self.config.mode not in MODES:
            raise RelayError(
                f"Relay mode {self.config.mode!r} is unknown",
                hint=f"use one of {', '.join(MODES)}",
            )
        self.bootstrap = self.config.bootstrap_servers or settings.bootstrap_servers
        self.position_topic = self.config.position_topic or events.topic_for(
            "cdc-studio", "relay-position", self.config.relay_id
        )
        self.database = self.config.database or settings.h2.database
        self.stats = RelayStats(mode=self.config.mode)
        self._on_stats = on_stats
        self._conn: H2Connection | None = None
        self._producer: Producer | None = None
        self._topics: set[str] = set()
        self._pending_delete: list[int] = []
        self._too_large: dict[int, str] = {}
        self._started = False

    @property
    def transactional(self) -> bool:
        return self.config.mode == "exactly-once"

    # -- lifecycle ------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set; a fatal error is raised."""
        log.info("relay %s starting (%s)", self.config.relay_id, self.config.mode)
        try:
            while not stop.is_set():
                try:
                    published = self.run_once()
                except H2Error as exc:
                    self._h2_lost(exc)
                    stop.wait(1.0)
                    continue
                if not published:
                    stop.wait(self.config.poll_interval_s)
            self._release_claims()
            self._set_state("stopped")
        except RelayError as exc:
            self._set_state("failed", str(exc.args[0]))
            raise
        finally:
            self.close()

    def close(self, release: bool = False) -> None:
        """Close the producer and the connection. The schemas' claims stay (as
        after a crash) unless ``release``: then the relay is done with them."""
        if release:
            self._release_claims()
        if self._producer is not None:
            try:
                self._producer.flush(5)
            except KafkaException as exc:
                # After a fatal error (fenced, invalid state) flush raises too;
                # the error itself was reported when it happened.
                log.debug("flush at close failed: %s", exc)
            self._producer = None
        outbox.close_quietly(self._conn)
        self._conn = None

    def _h2_lost(self, exc: H2Error) -> None:
        log.warning("H2 unavailable, relay waiting: %s", exc.args[0])
        self._set_state("waiting for H2", str(exc.args[0]))
        outbox.close_quietly(self._conn)
        self._conn = None

    def _h2(self) -> H2Connection:
        if self._conn is None:
            self._conn = H2Connection(self.settings)
        return self._conn

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.stats.state:
            log.info("relay %s: %s", self.config.relay_id, state)
        self.stats.state = state
        self.stats.error = error
        self.stats.updated_ms = _now_ms()
        if self._on_stats is not None:
            self._on_stats(self.stats)

    # -- one batch ------------------------------------------------------

    def run_once(self) -> int:
        """Publish one batch of committed changes; how many were published."""
        if not self._started:
            self._start()
        conn = self._h2()
        if self._pending_delete:
            outbox.delete(conn, self._pending_delete)
            self._pending_delete = []

        # TODO: latency at 1,000 changes/s is above the 50 ms goal (tests/bench).
        # Measured with librdkafka's eos debug log: commit_transaction returns
        # in ~4 ms, but the next transaction's AddPartitionsToTxn gets
        # CONCURRENT_TRANSACTIONS until the coordinator has written the last
        # one's markers (~45 ms: 2 retries 20 ms apart). Two transactional ids
        # used in turn would hide that wait; not done, as it doubles fencing.
        rows = outbox.fetch(conn, self.config.batch_size, self.config.schemas)
        commit_ms = _now_ms()
        rows = [r for r in rows if not self._reject_if_too_large(conn, r)]
        if not rows:
            self._set_state("idle")
            return 0
        self._set_state("publishing")
        self._ensure_topics(
            {events.topic_for(self.config.prefix, r.schema, r.table) for r in rows}
        )
        if self.transactional:
            rows = self._publish_transaction(conn, rows, commit_ms)
            if not rows:
                return 0  # started over: the rows are fetched again
        else:
            rows = self._publish_plain(conn, rows, commit_ms)

        seqs = [r.seq for r in rows]
        self._pending_delete = seqs
        outbox.delete(conn, seqs)
        self._pending_delete = []
        self.stats.published += len(rows)
        self.stats.batches += 1
        self.stats.last_seq = max(seqs) if seqs else self.stats.last_seq
        self._set_state("publishing")
        return len(rows)

    def _start(self) -> None:
        conn = self._h2()
        triggers.ensure_metadata(conn)
        self._claim(conn)
        self._ensure_topics({self.position_topic}, position=True)
        self._producer = Producer(self._producer_config())
        if self.transactional:
            self._set_state("fencing older relays")
            self._retry(lambda: self._producer_or_fail().init_transactions(30))
            position = self._read_position()
            if position:
                seqs = events.expand_ranges(position["seqs"])
                log.info(
                    "relay %s resumes after batch %s (%d changes up to seq %s)",
                    self.config.relay_id,
                    position.get("batch"),
                    len(seqs),
                    position.get("last_seq"),
                )
                self._pending_delete = seqs
        self._started = True

    def _claim(self, conn: H2Connection) -> None:
        """Claim the relay's schemas; refuse one that is missing or held by
        another relay (two relays would publish its changes twice)."""
        relay_id = self.config.relay_id
        existing = {
            str(name)
            for (name,) in conn.query(
                "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA"
            )
        }
        for schema in self.config.schemas:
            if schema not in existing:
                similar = [n for n in existing if n.casefold() == schema.casefold()]
                raise RelayError(
                    f"Schema {schema} does not exist",
                    hint=f"names are exact: did you mean {similar[0]}?"
                    if similar
                    else "check the name with `cdc-studio capture tables --schema ...`",
                )
        held = outbox.claim(conn, self._claim_names, relay_id)
        for schema, owner in held.items():
            if owner != relay_id and schema == outbox.ALL_SCHEMAS:
                raise RelayError(
                    f"Relay {owner} publishes every schema: a second relay for all "
                    "schemas would publish each change again",
                    hint=f"stop {owner} first (a clean stop gives its claim back), "
                    "or give each relay its own --schema; if it will never run "
                    f"again, `cdc-studio relay release '{outbox.ALL_SCHEMAS}'`",
                )
            if owner != relay_id:
                raise RelayError(
                    f"Schema {schema} is claimed by relay {owner}: only it publishes "
                    "the schema's changes",
                    hint=f"start that relay again (--relay-id {owner}); if it will "
                    f"never run again, `cdc-studio relay release {schema}` first",
                )

    @property
    def _claim_names(self) -> tuple[str, ...]:
        """What this relay claims: its schemas, or all (one such relay at a time)."""
        return self.config.schemas or (outbox.ALL_SCHEMAS,)

    def _release_claims(self) -> None:
        """A clean stop gives the schemas back to relays for all schemas."""
        if not self._started:
            return
        try:
            outbox.release(self._h2(), self.config.relay_id, self._claim_names)
        except H2Error as exc:
            log.info(
                "relay %s keeps its claim on %s (H2 unavailable: %s)",
                self.config.relay_id,
                ", ".join(self._claim_names),
                exc.args[0],
            )

    def _producer_or_fail(self) -> Producer:
        if self._producer is None:
            raise RelayError("The relay's producer is closed")
        return self._producer

    def _producer_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "message.max.bytes": self.config.max_message_bytes + 10_000,
            "logger": _client_log,
        }
        if self.config.mode == "exactly-once":
            config |= {
                "transactional.id": self.config.relay_id,
                "enable.idempotence": True,
                "transaction.timeout.ms": self.config.transaction_timeout_ms,
                "message.timeout.ms": self.config.transaction_timeout_ms - 5_000,
            }
        elif self.config.mode == "idempotent":
            config |= {"enable.idempotence": True, "message.timeout.ms": 300_000}
        else:
            config |= {
                "enable.idempotence": False,
                "max.in.flight.requests.per.connection": 1,
                "retries": 2_147_483_647,
                "message.timeout.ms": 300_000,
            }
        return config | self.config.producer_config

    # -- producing --------------------------------------------------------

    def _produce(self, row: OutboxRow, commit_ms: int) -> None:
        producer = self._producer_or_fail()
        topic = events.topic_for(self.config.prefix, row.schema, row.table)
        key = events.key_bytes(row)
        extra: dict[str, Any] = {}
        partition = events.partition_of(row)
        if partition is not None:
            extra["partition"] = partition
        values: list[bytes | None] = [
            events.envelope(row, self.database, commit_ms, _now_ms())
        ]
        if row.tombstone and row.op == "d" and key is not None:
            values.append(None)

        def delivered(err: KafkaError | None, msg: Message, seq: int = row.seq) -> None:
            if err is not None:
                self._too_large.setdefault(seq, err.str())

        for value in values:
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key, on_delivery=delivered, **extra
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)

    def _reject_if_too_large(self, conn: H2Connection, row: OutboxRow) -> bool:
        if row.size <= self.config.max_message_bytes:
            return False
        self._reject(conn, row, f"{row.size} bytes > {self.config.max_message_bytes}")
        return True

    def _reject(self, conn: H2Connection, row: OutboxRow, reason: str) -> None:
        log.error(
            "change too large for Kafka, moved to OUTBOX_REJECTED: table %s.%s key %s "
            "seq %d (%s)",
            row.schema,
            row.table,
            row.key_json,
            row.seq,
            reason,
        )
        outbox.reject(conn, row, reason)
        self.stats.rejected += 1

    def _publish_transaction(
        self, conn: H2Connection, rows: list[OutboxRow], commit_ms: int
    ) -> list[OutboxRow]:
        """Events and position in one transaction; retried after an abort."""
        producer = self._producer_or_fail()
        while True:
            self._too_large.clear()
            try:
                producer.begin_transaction()
                for row in rows:
                    self._produce(row, commit_ms)
                self._produce_position(rows)
                self._retry(lambda: producer.commit_transaction(30))
                return rows
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal() or error.code() in _FENCED:
                    self._fatal(error)
                if not error.txn_requires_abort():
                    self._fatal(error)
                log.warning("transaction aborted, retrying the batch: %s", error.str())
                self.stats.aborted += 1
                try:
                    self._retry(lambda: producer.abort_transaction(30))
                except KafkaException as refused:
                    if refused.args[0].code() != KafkaError.INVALID_TXN_STATE:
                        raise
                    self._start_over(refused.args[0])
                    return []
                rows = self._drop_rejected_by_broker(conn, rows)

    def _start_over(self, error: KafkaError) -> None:
        """Drop the producer and start again as after a restart.

        librdkafka sends EndTxn(abort) even for a transaction that never got
        a partition registered (the coordinator did not know a topic yet, or
        it was deleted); the broker answers INVALID_TXN_STATE and librdkafka
        makes that fatal (librdkafka issue 4849). Nothing of the batch was
        committed, and a new producer's init_transactions finishes whatever
        the old one left, so starting over is the crash recovery the relay
        already relies on: the rows are fetched again, the topics ensured
        again, the position read again.
        """
        log.warning(
            "relay %s: Kafka refused to abort a transaction that never began "
            "(%s); starting the producer again",
            self.config.relay_id,
            error.str(),
        )
        self.stats.restarts += 1
        self._producer = None
        self._topics.clear()
        self._started = False

    def _drop_rejected_by_broker(
        self, conn: H2Connection, rows: list[OutboxRow]
    ) -> list[OutboxRow]:
        kept = []
        for row in rows:
            reason = self._too_large.get(row.seq, "")
            if "too large" in reason.lower() or "MSG_SIZE_TOO_LARGE" in reason:
                self._reject(conn, row, reason)
            else:
                kept.append(row)
        return kept

    def _produce_position(self, rows: list[OutboxRow]) -> None:
        seqs = [r.seq for r in rows]
        position = {
            "relay_id": self.config.relay_id,
            "batch": self.stats.batches + 1,
            "seqs": events.seq_ranges(seqs),
            "last_seq": max(seqs) if seqs else None,
            "count": len(seqs),
            "ts_ms": _now_ms(),
        }
        self._producer_or_fail().produce(
            self.position_topic,
            key=self.config.relay_id.encode(),
            value=json.dumps(position).encode(),
            partition=0,
        )

    def _publish_plain(
        self, conn: H2Connection, rows: list[OutboxRow], commit_ms: int
    ) -> list[OutboxRow]:
        """Produce, wait for every acknowledgement, re-produce what failed."""
        pending = rows
        published: list[OutboxRow] = []
        while pending:
            self._too_large.clear()
            for row in pending:
                self._produce(row, commit_ms)
            producer = self._producer_or_fail()
            while producer.flush(1.0) > 0:
                self._set_state("waiting for Kafka")
            failed = self._drop_rejected_by_broker(
                conn, [r for r in pending if r.seq in self._too_large]
            )
            published += [r for r in pending if r.seq not in self._too_large]
            if failed:
                log.warning("%d events failed, producing them again", len(failed))
                self._recreate_producer_if_fatal()
            pending = failed
        return published

    def _recreate_producer_if_fatal(self) -> None:
        """A non-transactional producer that hit a fatal error is replaced."""
        self._producer_or_fail().flush(0)
        self._producer = Producer(self._producer_config())

    def _retry(self, call: Callable[[], object]) -> None:
        """Call until it succeeds, retrying retriable errors (broker outage)."""
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.retriable() and not error.fatal():
                    self._set_state("waiting for Kafka", error.str())
                    continue
                raise

    def _fatal(self, error: KafkaError) -> None:
        self._producer = None
        if error.code() in _FENCED:
            raise RelayFencedError(
                f"Relay {self.config.relay_id} was fenced by a newer relay with the "
                "same transactional id; it stops and publishes nothing more",
                hint="run one relay per outbox; this one has been replaced",
            )
        raise RelayError(
            f"Kafka reported a fatal error to relay {self.config.relay_id}: "
            f"{error.str()}",
            hint="restart the relay; it resumes from its last committed position",
        )

    # -- topics and position --------------------------------------------

    def _ensure_topics(self, topics: set[str], position: bool = False) -> None:
        missing = topics - self._topics
        if not missing:
            return
        partitions = 1 if position else self.config.partitions
        ensure_topics(
            self.bootstrap,
            missing,
            partitions,
            self.config.replication_factor,
            compact=position,
        )
        self._topics |= missing

    def _read_position(self) -> dict[str, Any] | None:
        """The last committed position of this relay (read_committed).

        Only this relay's transactional id writes its position topic, and
        ``init_transactions`` has finished any transaction of an older
        instance, so the last stable offset is the end: nothing is missed.
        """
        # TODO: seek near the end instead of reading the compacted topic from
        # its start (it grows by one record per batch until compaction).
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": f"{self.config.relay_id}.position-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "logger": _client_log,
        }
        consumer = Consumer(config)
        last: dict[str, Any] | None = None
        key = self.config.relay_id.encode()
        try:
            consumer.assign([TopicPartition(self.position_topic, 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return last
                    if error.retriable():
                        continue
                    raise KafkaException(error)
                value = msg.value()
                if msg.key() == key and value is not None:
                    last = json.loads(value)
        finally:
            consumer.close()
        raise RelayError(
            f"Could not read the relay position from {self.position_topic}",
            hint="check that the Kafka cluster is up, then start the relay again",
        )


def ensure_topics(
    bootstrap: str,
    topics: set[str],
    partitions: int,
    replication_factor: int,
    compact: bool = False,
    timeout: float = 30,
) -> None:
    """Create the topics that do not exist yet (min.insync.replicas 2 at RF 3+)."""
    admin_config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": _client_log,
    }
    admin = AdminClient(admin_config)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise RelayError(
            f"Cannot reach Kafka at {bootstrap}: {exc.args[0].str()}",
            hint="check the bootstrap address (--bootstrap) and that the cluster "
            "is up (`cdc-studio stack status` for the embedded one)",
        ) from exc
    wanted = []
    for topic in sorted(topics - existing):
        config = {"min.insync.replicas": "2"} if replication_factor >= 3 else {}
        if compact:
            config |= {"cleanup.policy": "compact", "segment.bytes": "1048576"}
        wanted.append(NewTopic(topic, partitions, replication_factor, config=config))
    for topic, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(timeout=30)
            log.info("created topic %s", topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RelayError(
                    f"Cannot create topic {topic}: {exc.args[0].str()}",
                    hint="check partitions and replication factor against the "
                    "number of brokers",
                ) from exc
    _wait_for_leaders(admin, topics)


def _wait_for_leaders(
    admin: AdminClient, topics: set[str], timeout: float = 60
) -> None:
    """Until every partition of ``topics`` has a leader: a transaction that adds
    a partition the brokers do not know yet fails."""
    deadline = time.monotonic() + timeout
    for topic in sorted(topics):
        while True:
            found = admin.list_topics(topic, timeout=10).topics.get(topic)
            if (
                found is not None
                and found.error is None
                and found.partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                break
            if time.monotonic() > deadline:
                raise RelayError(
                    f"Topic {topic} has partitions without a leader",
                    hint="check that the brokers are up (`cdc-studio stack status`)",
                )
            time.sleep(0.1)
