"""Capture demos: the relay killed at random points while a workload runs."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from core import workload
from core.cdc import events
from core.cdc.relay import MODES
from core.demos import kafka_io
from core.demos.ledger import Ledger, OutputRecord
from core.demos.runner import RunContext
from core.demos.scenario import Bound, Knob, KnobValue, Scenario, Step
from core.demos.workers import WorkerProcess
from core.errors import DemoError

log = logging.getLogger(__name__)

_TRANSACTIONS = Knob(
    "records",
    60,
    "workload transactions (each changes several rows)",
    minimum=5,
    maximum=5000,
)
_KILLS = Knob(
    "kills", 2, "times the relay is killed with SIGKILL", minimum=1, maximum=20
)
_MODE = Knob("mode", "exactly-once", "the relay's delivery mode", choices=MODES)
_BATCH = 10


class RelayCrash(Scenario):
    number = 9
    name = "relay-crash"
    title = "The relay killed at random points during a workload"
    summary = (
        "A shop workload commits transactions into captured H2 tables while the "
        "relay moving their changes from the outbox to Kafka is killed with "
        "SIGKILL again and again. In exactly-once mode no change is lost or "
        "published twice."
    )
    crash_point = (
        "the relay killed (SIGKILL) after publishing a seeded number of changes"
    )
    knobs = (_TRANSACTIONS, _KILLS, _MODE)
    narration = (
        Step(
            "A captured schema",
            "A workload process creates a shop schema (customers, products, "
            "inventory, orders, order lines) and puts capture triggers on its "
            "tables: every change goes into the outbox inside its own transaction.",
        ),
        Step(
            "Workload and relay",
            "The workload runs seeded transactions, some rolled back. For each "
            "committed one it notes the outbox sequence numbers of its changes: "
            "the ledger. The relay process publishes the outbox to one topic per "
            "table.",
        ),
        Step(
            "Kill the relay, again and again",
            "Each time the relay has published a few more changes (a number drawn "
            "from the seed), it is killed with SIGKILL, at whatever instant that "
            "falls, and a new relay process with the same relay id starts.",
        ),
        Step("Drain", "When the workload is done, the last relay publishes the rest."),
        Step(
            "Count",
            "Every change in the ledger is looked up in the topics (read_committed). "
            "In exactly-once mode the relay's position is committed in the same "
            "Kafka transaction as the events: none lost, none twice. The other "
            "modes may publish a batch twice after a crash.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        bounds = [
            Bound("kills", ">=", 1),
            Bound("lost", "==", 0),
            Bound("phantom", "==", 0),
        ]
        if knobs["mode"] == "exactly-once":
            bounds.append(Bound("duplicated", "==", 0))
        return bounds

    def run(self, ctx: RunContext) -> None:
        kills = int(ctx.knobs["kills"])
        mode = str(ctx.knobs["mode"])
        schema = f"DEMO_{uuid.uuid4().hex[:8].upper()}"
        prefix = f"demo{uuid.uuid4().hex[:6]}"
        relay_id = f"demo-relay-{ctx.run_id}"
        settings_file = ctx.settings_file()
        stop_file = ctx.run_dir / "stop-workload"
        ctx.note(f"schema {schema}, topic prefix {prefix}, relay id {relay_id}")

        ctx.step(0)
        shop = ctx.worker(
            "workload",
            "workload",
            schema=schema,
            settings_file=str(settings_file),
            transactions=int(ctx.knobs["records"]),
            seed=ctx.seed,
            rate=20,
            hold_at="before_workload",
            stop_file=str(stop_file),
        )
        ctx.cleanups.append(lambda: _cleanup(ctx, schema, settings_file))
        for table in workload.TABLES:
            ctx.forget_topic(events.topic_for(prefix, schema, table))
        if shop.wait_kind("hold", 120) is None:
            raise DemoError(
                "The workload could not set up its schema; see workload.stderr.log"
            )

        ctx.step(1)
        relay = _RelayRunner(ctx, relay_id, prefix, schema, mode)
        relay.start()
        shop.go()

        ctx.step(2)
        done = 0
        for _ in range(kills):
            target = ctx.rng.randint(1, 3 * _BATCH)
            if not relay.wait_published(target, shop):
                break
            relay.kill()
            done += 1
            relay.start()
        ctx.measure("kills", done)
        ctx.crash_reached(done >= 1)

        ctx.step(3)
        stop_file.touch()
        if shop.wait_exit(300) != 0:
            raise DemoError("The workload failed; see workload.stderr.log")
        expected = shop.ids("committed")
        ctx.measure(
            "transactions_committed",
            len(
                [
                    e
                    for e in shop.reported("committed")
                    if e.get("text") != "seed rows captured"
                ]
            ),
        )
        ctx.measure("transactions_rolled_back", len(shop.reported("aborted")))
        topics = [events.topic_for(prefix, schema, t) for t in workload.TABLES]
        output = _wait_published(ctx, topics, set(expected), relay)
        relay.stop()
        ctx.measure("relay_failures", relay.failures)
        ctx.event("recovered", "the relay drained the outbox", 1, relay.name)

        ctx.step(4)
        ledger = Ledger()
        ledger.expect_all((i, "", int(i)) for i in expected)
        ctx.ledger("topics", ledger.count(output))


class _RelayRunner:
    """`cdc-studio relay run` as a child process, restarted under one relay id."""

    def __init__(
        self, ctx: RunContext, relay_id: str, prefix: str, schema: str, mode: str
    ) -> None:
        self.ctx = ctx
        self.relay_id = relay_id
        self.lives = 0
        self.failures = 0
        self.worker: WorkerProcess | None = None
        self.command = [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(ctx.settings_file()),
            "relay",
            "run",
            "--relay-id",
            relay_id,
            "--prefix",
            prefix,
            "--schema",
            schema,
            "--mode",
            mode,
            "--batch-size",
            str(_BATCH),
        ]
        self.status_file = ctx.settings.data_path / "relay" / f"{relay_id}.json"

    @property
    def name(self) -> str:
        return f"relay-{self.lives}"

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        self.lives += 1
        self.worker = self.ctx.worker(self.name, "relay", command=self.command)
        if self.lives > 1:
            self.ctx.event("restart", "new relay process, same relay id", 1, self.name)

    def published(self) -> int:
        try:
            return int(json.loads(self.status_file.read_text())["published"])
        except (OSError, ValueError, KeyError):
            return 0

    def wait_published(
        self, target: int, shop: WorkerProcess, timeout: float = 120
    ) -> bool:
        """Wait until this life published ``target`` changes; False if the
        workload stopped before that."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout
        while self.published() < target:
            if not shop.running:
                return False
            if self.ensure_running():
                deadline = time.monotonic() + timeout
            if time.monotonic() > deadline:
                raise DemoError(f"The relay published nothing within {timeout:.0f} s")
            time.sleep(0.02)
        self.ctx.event(
            "produced", "changes published by this relay", self.published(), self.name
        )
        return True

    def ensure_running(self) -> bool:
        """Start a new relay if this one stopped by itself; whether it had to.

        The relay stops on a fatal Kafka error (it says which in its log); in
        exactly-once mode a new one under the same relay id resumes safely, as
        a supervisor would restart it.
        """
        if self.worker is None or self.worker.running:
            return False
        code = self.worker.wait_exit(10)
        self.failures += 1
        self.ctx.note(f"{self.name} exited by itself (status {code}); restarted")
        self.ctx.event("crash", f"relay exited by itself (status {code})", 1, self.name)
        self.start()
        return True

    def kill(self) -> None:
        assert self.worker is not None
        self.worker.kill()
        self.ctx.event("crash", "SIGKILL: relay", 1, self.name)

    def stop(self) -> None:
        import signal

        assert self.worker is not None
        self.worker.signal(signal.SIGTERM)
        try:
            code = self.worker.wait_exit(30)
        except DemoError:
            # Killed by wait_exit: harmless once drained, as demo 9 shows.
            self.ctx.note(f"{self.name} did not stop within 30 s of SIGTERM; killed")
            return
        if code != 0:
            raise DemoError(
                f"The relay did not stop cleanly; see {self.name}.stderr.log"
            )


def _wait_published(
    ctx: RunContext,
    topics: list[str],
    expected: set[str],
    relay: _RelayRunner,
    timeout: float = 120,
    by_change_id: bool = False,
) -> list[OutputRecord]:
    """Read the topics until every expected change is there (or time runs out);
    a relay that stopped on its own meanwhile is started again."""
    deadline = time.monotonic() + timeout
    while True:
        relay.ensure_running()
        output = _read_events(ctx, topics, by_change_id)
        if expected <= {r.id for r in output} or time.monotonic() > deadline:
            return output
        time.sleep(0.5)


def _read_events(
    ctx: RunContext, topics: list[str], by_change_id: bool = False
) -> list[OutputRecord]:
    """Change events of ``topics`` (read_committed), identified by their outbox
    sequence number, or by the row's CHANGE_ID column."""
    existing = [t for t in topics if kafka_io.partition_state(ctx.bootstrap, t)]
    config: dict[str, Any] = {
        "bootstrap.servers": ctx.bootstrap,
        "group.id": f"cdc-studio-demo-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    }
    consumer = Consumer(config)
    out: list[OutputRecord] = []
    try:
        parts = [
            TopicPartition(t, p, 0)
            for t in existing
            for p in kafka_io.partition_state(ctx.bootstrap, t)
        ]
        if not parts:
            return []
        consumer.assign(parts)
        pending = {(tp.topic, tp.partition) for tp in parts}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                continue
            if message.value() is None:
                continue
            event = json.loads(message.value() or b"{}")
            seq = int(event["source"].get("seq") or 0)
            ident = str(event["after"]["CHANGE_ID"]) if by_change_id else str(seq)
            key = f"{message.topic()}:{(message.key() or b'').decode()}"
            out.append(
                OutputRecord(
                    ident, key, seq, message.partition() or 0, message.offset() or 0
                )
            )
    finally:
        consumer.close()
    return out


def _cleanup(
    ctx: RunContext,
    schema: str,
    settings_file: object,
    tables: list[str] | None = None,
) -> None:
    cleaner = ctx.worker(
        "cleanup",
        "workload-cleanup",
        schema=schema,
        settings_file=str(settings_file),
        tables=tables or list(workload.TABLES),
    )
    cleaner.wait_exit(120)


class WebhookVersusOutbox(Scenario):
    number = 10
    name = "webhook-vs-outbox"
    title = "Webhook path versus outbox: rollbacks and a receiver outage"
    summary = (
        "The same changes are captured twice: by a trigger that posts them to a "
        "webhook receiver, and by a trigger that writes them to the outbox. Some "
        "transactions roll back, and the receiver goes down for a while. The "
        "webhook path publishes phantom changes and loses changes; the outbox "
        "neither."
    )
    crash_point = "the webhook receiver stopped while transactions commit"
    knobs = (
        Knob(
            "records",
            8,
            "transactions in each of the three phases",
            minimum=2,
            maximum=1000,
        ),
        Knob(
            "rollback_percent",
            25,
            "share of transactions rolled back",
            minimum=0,
            maximum=90,
        ),
    )
    pair_titles = ("webhook path", "outbox")
    pairs = (
        ("webhook_phantom", "outbox_phantom"),
        ("webhook_lost", "outbox_lost"),
    )
    narration = (
        Step(
            "Two capture paths on the same changes",
            "Two tables get the same rows in the same transactions. HOOKED has a "
            "webhook trigger: it posts each change over HTTP to our receiver the "
            "moment the row changes. BOXED has an outbox trigger: it writes the "
            "change into the outbox inside the transaction; the relay publishes "
            "it after the commit.",
        ),
        Step(
            "Phase 1: receiver up",
            "Transactions commit or roll back. The webhook trigger has already "
            "posted the changes of a transaction that then rolls back: they reach "
            "Kafka anyway, phantom changes. The outbox rows of a rolled-back "
            "transaction vanish with it.",
        ),
        Step(
            "Phase 2: receiver down",
            "We stop the receiver. The webhook trigger cannot post; the database "
            "does not wait, and the changes are lost. The outbox keeps them.",
        ),
        Step(
            "Phase 3: receiver back",
            "The receiver listens again on the same address. Nothing of phase 2 "
            "comes back. The first change after the restart can be lost too: the "
            "trigger's HTTP client may still hold a connection to the old "
            "receiver.",
        ),
        Step(
            "Count both paths",
            "The ledger is what committed. Webhook path: lost are the committed "
            "changes of phase 2, phantoms the rolled-back changes of phases 1 and "
            "3. Outbox: none lost, none phantom, none twice.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        return [
            Bound("committed_while_down", ">=", 1),
            Bound("webhook_lost", ">=", "committed_while_down"),
            Bound("webhook_phantom", ">=", 1),
            Bound("webhook_phantom", "<=", "rolled_back_while_up"),
            Bound("outbox_lost", "==", 0),
            Bound("outbox_phantom", "==", 0),
            Bound("outbox_duplicated", "==", 0),
        ]

    def run(self, ctx: RunContext) -> None:
        from core.cdc.webhook import WebhookReceiver

        per_phase = int(ctx.knobs["records"])
        schema = f"DEMO_{uuid.uuid4().hex[:8].upper()}"
        prefix = f"demo{uuid.uuid4().hex[:6]}"
        settings_file = ctx.settings_file()
        hooked = events.topic_for(prefix, schema, "HOOKED")
        boxed = events.topic_for(prefix, schema, "BOXED")
        for topic in (hooked, boxed):
            ctx.forget_topic(topic)

        ctx.step(0)
        receiver = WebhookReceiver(
            ctx.settings, prefix=prefix, bootstrap_servers=ctx.bootstrap
        )
        url = receiver.start()
        receivers = [receiver]
        ctx.cleanups.append(lambda: receivers[-1].stop())
        writer = ctx.worker(
            "workload",
            "dual-capture",
            schema=schema,
            url=url,
            token=receiver.token,
            settings_file=str(settings_file),
            seed=ctx.seed,
            phases=[per_phase] * 3,
            hold_at="phase",
            rollback_ratio=int(ctx.knobs["rollback_percent"]) / 100,
        )
        ctx.cleanups.append(
            lambda: _cleanup(ctx, schema, settings_file, ["HOOKED", "BOXED"])
        )
        if writer.wait_kind("hold", 120) is None:
            raise DemoError(
                "The workload could not set up its tables; see workload.stderr.log"
            )
        relay = _RelayRunner(
            ctx, f"demo-relay-{ctx.run_id}", prefix, schema, "exactly-once"
        )
        relay.start()

        ctx.step(1)
        writer.go()
        _wait_holds(writer, 2)

        ctx.step(2)
        receiver.flush()
        receiver.stop()
        ctx.event("crash", "webhook receiver stopped", 1, "receiver")
        ctx.crash_reached(True)
        writer.go()
        _wait_holds(writer, 3)

        ctx.step(3)
        receiver = WebhookReceiver(
            ctx.settings,
            port=receiver.port,
            prefix=prefix,
            token=receiver.token,
            bootstrap_servers=ctx.bootstrap,
        )
        receiver.start()
        receivers.append(receiver)
        ctx.event("recovered", "webhook receiver listening again", 1, "receiver")
        writer.go()
        if writer.wait_exit(120) != 0:
            raise DemoError("The workload failed; see workload.stderr.log")
        receiver.flush()

        ctx.step(4)
        committed = writer.reported("committed")
        rolled_back = writer.reported("aborted")
        expected = {i for e in committed for i in e["ids"]}
        ctx.measure("changes_committed", len(expected))
        ctx.measure("changes_rolled_back", sum(len(e["ids"]) for e in rolled_back))
        ctx.measure(
            "committed_while_down",
            sum(len(e["ids"]) for e in committed if e["phase"] == 2),
        )
        ctx.measure(
            "rolled_back_while_up",
            sum(len(e["ids"]) for e in rolled_back if e["phase"] != 2),
        )
        outbox_out = _wait_published(ctx, [boxed], expected, relay, by_change_id=True)
        relay.stop()
        webhook_out = _read_events(ctx, [hooked], by_change_id=True)
        for path, output in (("webhook", webhook_out), ("outbox", outbox_out)):
            ledger = Ledger()
            ledger.expect_all((i, "", 0) for i in sorted(expected))
            for event in rolled_back:
                for change in event["ids"]:
                    ledger.forbid(change)
            counts = ledger.count(output)
            ctx.ledger(path, counts, prefix=f"{path}_")
            if path == "webhook":
                outside = [i for i in counts.lost_ids if not i.startswith("p2-")]
                ctx.measure("webhook_lost_outside_outage", len(outside))


def _wait_holds(worker: WorkerProcess, count: int, timeout: float = 120) -> None:
    """Wait until ``worker`` reported its ``count``-th hold."""
    found = worker.wait_for(
        lambda e: e.get("kind") == "hold" and e.get("n") == count,
        timeout,
        f"hold #{count}",
    )
    if found is None:
        raise DemoError(f"{worker.name} stopped before its hold #{count}")
