"""Transactional producer demos: a crash before the commit, and zombie fencing."""

from __future__ import annotations

from core.demos import kafka_io
from core.demos.ledger import Ledger, OutputRecord
from core.demos.runner import RunContext
from core.demos.scenario import (
    KEYS,
    PARTITIONS,
    RECORDS,
    Bound,
    Knob,
    KnobValue,
    Scenario,
    Step,
)
from core.demos.worker import Record
from core.demos.workers import WorkerProcess
from core.errors import DemoError

_ABORT_BY = Knob(
    "abort_by",
    "new-producer",
    "what aborts the crashed transaction: a new producer with the same "
    "transactional id, or the coordinator's transaction timeout",
    choices=("new-producer", "timeout"),
)
_TIMEOUT_MS = 6000


def _count_ids(records: list[OutputRecord], ids: set[str]) -> int:
    return sum(1 for r in records if r.id in ids)


class TransactionCrash(Scenario):
    number = 6
    name = "txn-crash"
    title = "Transactional producer killed before the commit"
    summary = (
        "A transaction spanning several partitions is written and the producer is "
        "killed before it commits: read_committed readers never see it, "
        "read_uncommitted readers see all of it, and it is aborted."
    )
    crash_point = "before_commit: after every record of the transaction is written"
    knobs = (RECORDS, PARTITIONS, KEYS, _ABORT_BY)
    pairs = (
        ("committed_visible_before_abort", "uncommitted_visible_before_abort"),
        ("aborted_visible_read_committed", "aborted_visible_read_uncommitted"),
    )
    narration = (
        Step(
            "A topic with several partitions",
            "We create a fresh topic. The transaction will write to all of its "
            "partitions, so the commit has to be atomic across them.",
        ),
        Step(
            "Write a transaction, then crash",
            "A producer process opens a transaction, writes every record and waits "
            "until the brokers have them. Then, just before commit_transaction, it "
            "is killed with SIGKILL. Watch the crash on the timeline.",
        ),
        Step(
            "Look with both isolation levels",
            "Two readers read the topic from the start. The read_committed reader "
            "stops at the last stable offset and sees nothing. The "
            "read_uncommitted reader reads to the high watermark and sees every "
            "record of the open transaction.",
        ),
        Step(
            "Abort the orphaned transaction",
            "Nobody will ever commit it. Either a new producer starts with the "
            "same transactional.id (init_transactions makes the coordinator abort "
            "the old transaction and fences the old producer) or the coordinator "
            "aborts it when transaction.timeout.ms runs out. The new producer "
            "then commits a transaction of its own.",
        ),
        Step(
            "Count",
            "read_committed holds exactly the new producer's records: none lost, "
            "none twice, none of the aborted ones. read_uncommitted still shows "
            "the aborted records: they stay in the log, hidden by an abort "
            "marker.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("written_in_crashed_txn", ">=", 1),
            Bound("committed_visible_before_abort", "==", 0),
            Bound("uncommitted_visible_before_abort", "==", "written_in_crashed_txn"),
            Bound("aborted_visible_read_committed", "==", 0),
            Bound("aborted_visible_read_uncommitted", "==", "written_in_crashed_txn"),
            Bound("lost", "==", 0),
            Bound("duplicated", "==", 0),
        ]

    def run(self, ctx: RunContext) -> None:
        records = int(ctx.knobs["records"])
        partitions = int(ctx.knobs["partitions"])
        keys = int(ctx.knobs["keys"])
        by_timeout = ctx.knobs["abort_by"] == "timeout"
        txn_id = f"{ctx.run_id}-txn"

        ctx.step(0)
        topic = ctx.topic("orders", partitions)

        ctx.step(1)
        config = {"transaction.timeout.ms": _TIMEOUT_MS} if by_timeout else {}
        first = ctx.worker(
            "producer-1",
            "txn-producer",
            topic=topic,
            transactional_id=txn_id,
            records=ctx.records(records, keys, "crashed"),
            crash_at="before_commit",
            config=config | {"message.timeout.ms": 5000},
        )
        code = first.wait_exit(90)
        written = set(first.ids("produced"))
        ctx.crash_reached(bool(first.reported("crash")) and code == -9)
        ctx.measure("written_in_crashed_txn", len(written))

        ctx.step(2)
        ctx.measure(
            "committed_visible_before_abort",
            _count_ids(ctx.read(topic, "read_committed"), written),
        )
        ctx.measure(
            "uncommitted_visible_before_abort",
            _count_ids(ctx.read(topic, "read_uncommitted"), written),
        )

        ctx.step(3)
        if by_timeout:
            _wait_stable(ctx, topic, partitions)
            ctx.event(
                "aborted",
                "the coordinator aborted the timed-out transaction",
                len(written),
            )
        fresh = ctx.records(records, keys, "recovered")
        second = ctx.worker(
            "producer-2",
            "txn-producer",
            topic=topic,
            transactional_id=txn_id,
            records=fresh,
        )
        if second.wait_kind("ready", 90) and not by_timeout:
            ctx.event(
                "aborted",
                "init_transactions aborted the orphaned transaction",
                len(written),
            )
        ctx.event(
            "restart", "new producer with the same transactional.id", 1, "producer-2"
        )
        if second.wait_exit(90) != 0:
            raise DemoError("The recovering producer failed; see producer-2.jsonl")
        ctx.event("recovered", "new transaction committed", 1, "producer-2")

        ctx.step(4)
        committed, uncommitted = _read_both(ctx, topic, fresh, second)
        ctx.measure("aborted_visible_read_committed", _count_ids(committed, written))
        ctx.measure(
            "aborted_visible_read_uncommitted", _count_ids(uncommitted, written)
        )
        ctx.measure("read_committed_total", len(committed))
        ctx.measure("read_uncommitted_total", len(uncommitted))


def _read_both(
    ctx: RunContext, topic: str, fresh: list[Record], producer: WorkerProcess
) -> tuple[list[OutputRecord], list[OutputRecord]]:
    """Read ``topic`` with both isolation levels; judge read_committed against
    the ``fresh`` records whose transaction ``producer`` committed."""
    done = set(producer.ids("committed"))
    ledger = Ledger()
    ledger.expect_all(r for r in fresh if r[0] in done)
    committed = ctx.read(topic, "read_committed")
    uncommitted = ctx.read(topic, "read_uncommitted")
    ctx.ledger("read_committed", ledger.count(committed))
    return committed, uncommitted


def _wait_stable(
    ctx: RunContext, topic: str, partitions: int, timeout: float = 60
) -> None:
    """Wait until the last stable offset reaches the high watermark everywhere."""
    import time

    deadline = time.monotonic() + timeout
    ids = list(range(partitions))
    while time.monotonic() < deadline:
        stable = kafka_io.end_offsets(ctx.bootstrap, topic, ids, committed=True)
        high = kafka_io.end_offsets(ctx.bootstrap, topic, ids, committed=False)
        if stable == high:
            return
        time.sleep(0.5)
    raise DemoError(
        f"The open transaction on {topic} was not aborted within {timeout:.0f} s"
    )


class ZombieFencing(Scenario):
    number = 7
    name = "zombie-fencing"
    title = "Zombie fencing: a paused producer is fenced by its successor"
    summary = (
        "A transactional producer is frozen with SIGSTOP in the middle of a "
        "transaction; a new producer with the same transactional id takes over. "
        "Resumed, the old one is fenced and none of its writes become visible."
    )
    crash_point = (
        "before_commit: the first producer is frozen (SIGSTOP) mid-transaction"
    )
    knobs = (RECORDS, PARTITIONS, KEYS)
    pairs = (("zombie_visible_read_committed", "zombie_visible_read_uncommitted"),)
    narration = (
        Step("A topic", "We create a fresh topic for the demo."),
        Step(
            "The first producer writes, then freezes",
            "Producer 1 opens a transaction and writes its records. Before it can "
            "commit, we freeze it with SIGSTOP, as a long garbage-collection pause "
            "or a hung virtual machine would. It does not know it is frozen.",
        ),
        Step(
            "A successor takes over",
            "Producer 2 starts with the same transactional.id. init_transactions "
            "bumps the producer epoch: the coordinator aborts producer 1's open "
            "transaction and fences every older epoch. Producer 2 writes and "
            "commits its own records.",
        ),
        Step(
            "The zombie wakes up",
            "We resume producer 1 with SIGCONT. It writes a few more records and "
            "tries to commit. The brokers refuse its old epoch: it is fenced and "
            "must shut down.",
        ),
        Step(
            "Count",
            "read_committed holds producer 2's records exactly once and nothing of "
            "producer 1. read_uncommitted shows producer 1's first records, aborted; "
            "its late records were never written at all.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("fenced", "==", 1),
            Bound("zombie_written_before_pause", ">=", 1),
            Bound("zombie_visible_read_committed", "==", 0),
            Bound(
                "zombie_visible_read_uncommitted", "==", "zombie_written_before_pause"
            ),
            Bound("zombie_late_records_in_log", "==", 0),
            Bound("lost", "==", 0),
            Bound("duplicated", "==", 0),
        ]

    def run(self, ctx: RunContext) -> None:
        records = int(ctx.knobs["records"])
        partitions = int(ctx.knobs["partitions"])
        keys = int(ctx.knobs["keys"])
        txn_id = f"{ctx.run_id}-txn"

        ctx.step(0)
        topic = ctx.topic("payments", partitions)

        ctx.step(1)
        late = ctx.records(max(1, records // 5), keys, "zombie-late")
        zombie = ctx.worker(
            "producer-1",
            "txn-producer",
            topic=topic,
            transactional_id=txn_id,
            records=ctx.records(records, keys, "zombie"),
            hold_at="before_commit",
            late_records=late,
        )
        held = zombie.wait_kind("hold", 90)
        if held is None:
            ctx.crash_reached(False)
            return
        ctx.measure("zombie_written_before_pause", len(zombie.ids("produced")))
        _freeze(ctx, zombie)

        ctx.step(2)
        fresh = ctx.records(records, keys, "successor")
        successor = ctx.worker(
            "producer-2",
            "txn-producer",
            topic=topic,
            transactional_id=txn_id,
            records=fresh,
        )
        if successor.wait_kind("ready", 90):
            ctx.event(
                "aborted",
                "init_transactions aborted the frozen producer's transaction",
                len(zombie.ids("produced")),
            )
        if successor.wait_exit(90) != 0:
            raise DemoError("The successor producer failed; see producer-2.jsonl")

        ctx.step(3)
        _thaw(ctx, zombie)
        zombie.go()
        code = zombie.wait_exit(90)
        ctx.measure("fenced", 1 if zombie.reported("fenced") else 0)
        ctx.note(f"producer-1 exit status {code}")

        ctx.step(4)
        written = set(zombie.ids("produced")) | {r[0] for r in late}
        committed, uncommitted = _read_both(ctx, topic, fresh, successor)
        ctx.measure("zombie_visible_read_committed", _count_ids(committed, written))
        ctx.measure("zombie_visible_read_uncommitted", _count_ids(uncommitted, written))
        ctx.measure(
            "zombie_late_records_in_log", _count_ids(uncommitted, {r[0] for r in late})
        )


def _freeze(ctx: RunContext, worker: WorkerProcess) -> None:
    import signal

    frozen = worker.signal(signal.SIGSTOP)
    ctx.crash_reached(frozen)
    ctx.event("paused", "SIGSTOP: producer frozen mid-transaction", 1, worker.name)


def _thaw(ctx: RunContext, worker: WorkerProcess) -> None:
    import signal

    worker.signal(signal.SIGCONT)
    ctx.event("resumed", "SIGCONT: the zombie wakes up", 1, worker.name)
