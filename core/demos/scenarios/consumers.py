"""Consumer demos: at-most-once, at-least-once, exactly-once to Kafka and to H2.

The consumers are issue 5's group member processes (core.kafka.consumers):
a member SIGKILLs itself at a named crash point, and a fresh member with
the same group id (and so the same transactional id) takes over.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from core.demos import kafka_io
from core.demos.ledger import Ledger, OutputRecord
from core.demos.runner import RunContext
from core.demos.scenario import KEYS, PARTITIONS, Bound, Knob, KnobValue, Scenario, Step
from core.errors import DemoError, StudioError
from core.kafka.consumers import ConsumerGroup, GroupEvent
from core.kafka.member import MemberSpec

log = logging.getLogger(__name__)

_RECORDS = Knob("records", 40, "records written to the input topic", minimum=4)
_BATCH = Knob(
    "batch", 5, "records per batch (one commit or transaction each)", maximum=500
)
_CRASH_AFTER = Knob(
    "crash_after",
    0,
    "records the member handles before the crash point fires (0: chosen from "
    "the seed, somewhere in the middle)",
    minimum=0,
)
_ISOLATION = Knob(
    "isolation",
    "read_committed",
    "isolation level of the member",
    choices=("read_committed", "read_uncommitted"),
)
_EOS_POINT = Knob(
    "crash_point",
    "before-commit-transaction",
    "where the member dies inside its transaction",
    choices=("mid-transaction", "before-commit-transaction"),
)
_GROUP_EVENTS = {
    "member-crashed": "crash",
    "rebalance": "rebalance",
    "aborted": "aborted",
}


class ConsumerScenario(Scenario):
    """Input topic, one member that crashes, a fresh one that recovers."""

    semantics = ""
    point = ""
    knobs: tuple[Knob, ...] = (
        _RECORDS,
        PARTITIONS,
        KEYS,
        _BATCH,
        _CRASH_AFTER,
        _ISOLATION,
    )

    def crash_point_name(self, knobs: dict[str, KnobValue]) -> str:
        return self.point

    def run(self, ctx: RunContext) -> None:
        records = int(ctx.knobs["records"])
        batch = int(ctx.knobs["batch"])
        crash_after = int(ctx.knobs["crash_after"]) or ctx.rng.randrange(
            batch, max(batch + 1, records - batch)
        )
        ctx.note(f"crash after {crash_after} records handled")

        ctx.step(0)
        partitions = int(ctx.knobs["partitions"])
        source = ctx.topic("input", partitions)
        planned = ctx.records(records, int(ctx.knobs["keys"]), "rec")
        producer = ctx.worker(
            "producer",
            "producer",
            topic=source,
            records=planned,
            batch=records,
            config={"acks": "all"},
        )
        if producer.wait_exit(60) != 0:
            raise DemoError("The input producer failed; see producer.jsonl")
        written = kafka_io.read_topic(ctx.bootstrap, source, "read_uncommitted")

        ctx.step(1)
        run = _GroupRun(ctx, self, source, batch)
        try:
            run.group.add_member(
                "m1",
                crash_point=self.crash_point_name(ctx.knobs),
                crash_after=crash_after,
            )
            crashed = run.wait_crash_or_done(records)
            ctx.crash_reached(crashed)
            if not crashed:
                return

            ctx.step(2)
            self.at_crash(ctx, run, written)

            ctx.step(3)
            ctx.event("restart", "fresh member, same group id", 1, "m1")
            run.group.add_member("m1", crash_point=None)
            run.wait_done(source, partitions)
            ctx.event("recovered", "every offset committed", 1, "m1")
            run.group.stop()
        finally:
            run.close()

        ctx.step(4)
        ledger = Ledger()
        ledger.expect_all(planned)
        self.count(ctx, run, ledger)

    def at_crash(
        self, ctx: RunContext, run: _GroupRun, written: list[OutputRecord]
    ) -> None:
        """Measure what the crash left, before anyone recovers."""

    def count(self, ctx: RunContext, run: _GroupRun, ledger: Ledger) -> None:
        ctx.ledger("output", ledger.count(run.file_output()))


class _GroupRun:
    """One consumer group of a demo run, its output and its progress events."""

    def __init__(
        self, ctx: RunContext, scenario: ConsumerScenario, source: str, batch: int
    ) -> None:
        self.ctx = ctx
        self.group_id = f"demo-{ctx.run_id}"
        self.output_path = ctx.run_dir / "output.jsonl"
        self.output_topic: str | None = None
        if scenario.semantics == "exactly-once-kafka":
            self.output_topic = ctx.topic("output", int(ctx.knobs["partitions"]))
        settings = dataclasses.asdict(ctx.settings)
        settings.pop("demos", None)
        spec = MemberSpec(
            client={"bootstrap.servers": ctx.bootstrap},
            group_id=self.group_id,
            topics=[source],
            semantics=scenario.semantics,
            isolation=str(ctx.knobs["isolation"]),
            batch_size=batch,
            output_path=str(self.output_path),
            output_topic=self.output_topic,
            sink_table="DEMO_SINK",
            settings=settings,
        )
        self.group = ConsumerGroup(spec, log_dir=ctx.run_dir)
        self._log = open(ctx.run_dir / "group.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.group.subscribe(self._on_event)
        self._processed = 0

    def _on_event(self, event: GroupEvent) -> None:
        self._log.write(json.dumps(event.to_json(), default=str) + "\n")
        self._log.flush()
        kind = _GROUP_EVENTS.get(event.kind)
        if kind:
            count = int(event.detail.get("count", 1)) if kind == "aborted" else 1
            self.ctx.event(
                kind,
                event.message,
                count if kind != "rebalance" else 0,
                event.member or "group",
            )

    def _progress(self) -> None:
        processed = sum(m.processed for m in self.group.members())
        if processed != self._processed:
            self.ctx.event(
                "consumed", "records handled", processed - self._processed, "m1"
            )
            self._processed = processed

    def wait_crash_or_done(self, records: int, timeout: float = 90) -> bool:
        """True once the member crashed; False if it handled everything first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._progress()
            state = self.group.member("m1")
            if not state.alive and state.exit_code is not None:
                return state.crashed_at is not None and state.exit_code == -9
            if state.processed >= records:
                return False
            time.sleep(0.2)
        raise DemoError(
            f"The member neither crashed nor finished in {timeout:.0f} s",
            hint=f"see the member log in {self.ctx.run_dir}",
        )

    def committed(self, source: str, partitions: int) -> dict[int, int]:
        """The group's committed offsets in Kafka, per partition (-1: none)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.ctx.bootstrap,
            "group.id": self.group_id,
        }
        consumer = Consumer(config)
        try:
            found = consumer.committed(
                [TopicPartition(source, p) for p in range(partitions)], timeout=10
            )
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in found}

    def wait_done(self, source: str, partitions: int, timeout: float = 90) -> None:
        """Wait until the group has committed up to the end of every partition."""
        ends = kafka_io.end_offsets(
            self.ctx.bootstrap, source, list(range(partitions)), committed=False
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._progress()
            if self.committed(source, partitions) == ends:
                return
            state = self.group.member("m1")
            if not state.alive and state.exit_code is not None:
                raise DemoError(f"The recovering member exited ({state.exit_code})")
            time.sleep(0.3)
        raise DemoError(f"The group did not commit to the end within {timeout:.0f} s")

    def file_output(self) -> list[OutputRecord]:
        """What the members wrote to the output file, in the order written."""
        if not self.output_path.exists():
            return []
        out = []
        for line in self.output_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out.append(
                _record(row.get("value"), int(row["partition"]), int(row["offset"]))
            )
        return out

    def close(self) -> None:
        try:
            self.group.close()
        finally:
            self._log.close()


def _record(value: str | bytes | None, partition: int, offset: int) -> OutputRecord:
    try:
        data = json.loads(value or "{}")
        return OutputRecord(
            str(data["id"]), str(data["key"]), int(data["seq"]), partition, offset
        )
    except (ValueError, KeyError, TypeError):
        return OutputRecord(
            f"<unreadable@{partition}:{offset}>", "", 0, partition, offset
        )


def _crash_snapshot(
    run: _GroupRun, written: list[OutputRecord], source: str, partitions: int
) -> tuple[int, int]:
    """(committed but unprocessed, processed but uncommitted) right at the crash."""
    committed = run.committed(source, partitions)
    processed = {(r.partition, r.offset) for r in run.file_output()}
    unprocessed = sum(
        1
        for r in written
        if r.offset < committed.get(r.partition, -1)
        and (r.partition, r.offset) not in processed
    )
    uncommitted = sum(1 for p, o in processed if o >= committed.get(p, -1))
    return unprocessed, uncommitted


class AtMostOnce(ConsumerScenario):
    number = 1
    name = "at-most-once"
    title = "At-most-once consumer: crash after the commit, before processing"
    summary = (
        "The member commits a batch's offsets, then dies before processing "
        "it. Its successor starts after that batch: those records are lost, "
        "none is processed twice."
    )
    semantics = "at-most-once"
    point = "after-commit-before-process"
    crash_point = "after-commit-before-process: offsets committed, batch not processed"
    narration = (
        Step("Input", "A producer process writes the input records to a topic."),
        Step(
            "Consume: commit first, then process",
            "One member of a consumer group reads a batch, commits its offsets, "
            "then processes the records (appends them to an output file). Part way "
            "through, right after a commit, it is killed with SIGKILL.",
        ),
        Step(
            "At the crash",
            "Kafka now holds offsets past records that nobody processed. We count "
            "them: this is what will be lost.",
        ),
        Step(
            "Recover",
            "A fresh member joins the same group, reads the committed offsets and "
            "carries on from there, until every offset is committed.",
        ),
        Step(
            "Count",
            "Every input record is looked up in the output. The lost ones are "
            "exactly the batch committed but not processed; none is duplicated.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("committed_unprocessed_at_crash", ">=", 1),
            Bound("lost", "==", "committed_unprocessed_at_crash"),
            Bound("duplicated", "==", 0),
        ]

    def at_crash(
        self, ctx: RunContext, run: _GroupRun, written: list[OutputRecord]
    ) -> None:
        unprocessed, uncommitted = _crash_snapshot(
            run, written, _source(run), _partitions(ctx)
        )
        ctx.measure("committed_unprocessed_at_crash", unprocessed)
        ctx.measure("processed_uncommitted_at_crash", uncommitted)


class AtLeastOnce(AtMostOnce):
    number = 2
    name = "at-least-once"
    title = "At-least-once consumer: crash after processing, before the commit"
    summary = (
        "The member processes a batch, then dies before committing its "
        "offsets. Its successor reads that batch again: nothing is lost, "
        "the batch is processed twice."
    )
    semantics = "at-least-once"
    point = "after-process-before-commit"
    crash_point = "after-process-before-commit: batch processed, offsets not committed"
    narration = (
        Step("Input", "A producer process writes the input records to a topic."),
        Step(
            "Consume: process first, then commit",
            "One member processes each record (appends it to an output file), "
            "stores its offset, and commits after the batch. Part way through, "
            "after processing a batch and before committing it, it is killed.",
        ),
        Step(
            "At the crash",
            "The output holds records whose offsets Kafka does not have: they "
            "will be read again.",
        ),
        Step(
            "Recover",
            "A fresh member with the same group id starts from the last committed "
            "offsets and carries on until every offset is committed.",
        ),
        Step(
            "Count",
            "No input record is missing. The duplicates are exactly the records "
            "processed but not committed at the crash.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("processed_uncommitted_at_crash", ">=", 1),
            Bound("duplicated", "==", "processed_uncommitted_at_crash"),
            Bound("lost", "==", 0),
        ]


def _source(run: _GroupRun) -> str:
    return run.group.template.topics[0]


def _partitions(ctx: RunContext) -> int:
    return int(ctx.knobs["partitions"])


class ExactlyOnceKafka(ConsumerScenario):
    number = 3
    name = "eos-kafka"
    title = "Exactly-once consume-transform-produce: crash inside the transaction"
    summary = (
        "Output records and consumed offsets go in one transaction. The "
        "member dies inside it; its successor, with the same transactional "
        "id, aborts it and redoes the batch. A read_committed reader sees "
        "each record once; a read_uncommitted reader also sees the aborted "
        "attempt."
    )
    semantics = "exactly-once-kafka"
    crash_point = "inside a transaction (mid-transaction or before-commit-transaction)"
    knobs = (*ConsumerScenario.knobs, _EOS_POINT)
    pairs = (
        ("committed_total", "uncommitted_total"),
        ("duplicated", "uncommitted_duplicated"),
    )
    narration = (
        Step("Input", "A producer process writes the input records to a topic."),
        Step(
            "Consume, transform, produce in transactions",
            "One member reads a batch, writes the output records and the batch's "
            "offsets in one transaction, and commits. Part way through, inside a "
            "transaction, it is killed.",
        ),
        Step(
            "At the crash",
            "The open transaction is neither committed nor aborted yet. Its "
            "offsets were never committed either.",
        ),
        Step(
            "Recover",
            "A fresh member starts with the same transactional id: "
            "init_transactions aborts the open transaction. It reads from the "
            "committed offsets and redoes the batch.",
        ),
        Step(
            "Count with both isolation levels",
            "read_committed: every input record exactly once. read_uncommitted: "
            "the same, plus whatever the aborted attempt had already sent to the "
            "brokers.",
        ),
    )

    def crash_point_name(self, knobs: dict[str, KnobValue]) -> str:
        return str(knobs["crash_point"])

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("lost", "==", 0),
            Bound("duplicated", "==", 0),
            Bound("phantom", "==", 0),
            Bound("uncommitted_lost", "==", 0),
            Bound("uncommitted_duplicated", "==", "aborted_records_in_log"),
        ]

    def count(self, ctx: RunContext, run: _GroupRun, ledger: Ledger) -> None:
        assert run.output_topic is not None
        committed = ctx.read(run.output_topic, "read_committed")
        uncommitted = ctx.read(run.output_topic, "read_uncommitted")
        ctx.ledger("read_committed", ledger.count(committed))
        ctx.ledger("read_uncommitted", ledger.count(uncommitted), prefix="uncommitted_")
        ctx.measure("committed_total", len(committed))
        ctx.measure("uncommitted_total", len(uncommitted))
        ctx.measure("aborted_records_in_log", len(uncommitted) - len(committed))


class ExactlyOnceH2(ConsumerScenario):
    number = 4
    name = "eos-h2"
    title = "Exactly-once to H2: output and offsets in one database transaction"
    summary = (
        "The member writes output rows and the next offsets in one H2 "
        "transaction. It dies after writing, before the database commit: H2 "
        "rolls both back, and its successor starts from the stored offsets."
    )
    semantics = "exactly-once-h2"
    point = "after-write-before-db-commit"
    crash_point = (
        "after-write-before-db-commit: rows and offsets written, not committed"
    )
    narration = (
        Step("Input", "A producer process writes the input records to a topic."),
        Step(
            "Consume into H2",
            "One member reads a batch and, in a single H2 transaction, inserts a "
            "row per record and the batch's next offsets. Part way through, after "
            "writing and before the database commit, it is killed.",
        ),
        Step(
            "At the crash",
            "H2 sees the connection drop and rolls the open transaction back: "
            "neither the rows nor the offsets exist.",
        ),
        Step(
            "Recover",
            "A fresh member seeks to the offsets stored in H2, not Kafka's, and "
            "carries on until every offset is committed.",
        ),
        Step("Count", "The sink table holds every input record exactly once."),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("lost", "==", 0),
            Bound("duplicated", "==", 0),
            Bound("phantom", "==", 0),
        ]

    def count(self, ctx: RunContext, run: _GroupRun, ledger: Ledger) -> None:
        from core.h2.connection import H2Connection

        try:
            with H2Connection(ctx.settings) as conn:
                rows = conn.query(
                    "SELECT KAFKA_PARTITION, RECORD_OFFSET, RECORD_VALUE "
                    "FROM DEMO_SINK "
                    "WHERE GROUP_ID = ? ORDER BY KAFKA_PARTITION, RECORD_OFFSET, ID",
                    [run.group_id],
                )
                conn.run("DELETE FROM DEMO_SINK WHERE GROUP_ID = ?", [run.group_id])
                conn.run(
                    "DELETE FROM DEMO_SINK_OFFSETS WHERE GROUP_ID = ?", [run.group_id]
                )
        except StudioError as exc:
            raise DemoError(f"Cannot read the H2 sink: {exc}") from exc
        output = [_record(_text(v), int(p), int(o)) for p, o, v in rows]
        ctx.ledger("h2_sink", ledger.count(output))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
