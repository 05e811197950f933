"""Capture demos: the relay killed at random points while a workload runs."""

from __future__ import annotations

import logging
import uuid

from core import workload
from core.cdc import events
from core.cdc.relay import MODES
from core.demos.ledger import Ledger
from core.demos.relay_process import (
    BATCH,
    RelayRunner,
    cleanup_schema,
    read_events,
    wait_published,
)
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
            claim_for=relay_id,
            settings_file=str(settings_file),
            transactions=int(ctx.knobs["records"]),
            seed=ctx.seed,
            rate=20,
            hold_at="before_workload",
            stop_file=str(stop_file),
        )
        ctx.cleanups.append(lambda: cleanup_schema(ctx, schema, settings_file))
        for table in workload.TABLES:
            ctx.forget_topic(events.topic_for(prefix, schema, table))
        if shop.wait_kind("hold", 120) is None:
            raise DemoError(
                "The workload could not set up its schema; see workload.stderr.log"
            )

        ctx.step(1)
        relay = RelayRunner(ctx, relay_id, prefix, schema, mode)
        relay.start()
        shop.go()

        ctx.step(2)
        done = 0
        for _ in range(kills):
            target = ctx.rng.randint(1, 3 * BATCH)
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
        output = wait_published(ctx, topics, set(expected), relay)
        relay.stop()
        ctx.measure("relay_failures", relay.failures)
        ctx.event("recovered", "the relay drained the outbox", 1, relay.name)

        ctx.step(4)
        ledger = Ledger()
        ledger.expect_all((i, "", int(i)) for i in expected)
        ctx.ledger("topics", ledger.count(output))


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
            "comes back: the trigger posted each change once, when the row "
            "changed, and nobody kept what it could not post.",
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
        receiver.prepare(schema, ["HOOKED"])
        receivers = [receiver]
        ctx.cleanups.append(lambda: receivers[-1].stop())
        relay_id = f"demo-relay-{ctx.run_id}"
        writer = ctx.worker(
            "workload",
            "dual-capture",
            schema=schema,
            claim_for=relay_id,
            url=url,
            token=receiver.token,
            settings_file=str(settings_file),
            seed=ctx.seed,
            phases=[per_phase] * 3,
            hold_at="phase",
            rollback_ratio=int(ctx.knobs["rollback_percent"]) / 100,
        )
        ctx.cleanups.append(
            lambda: cleanup_schema(ctx, schema, settings_file, ["HOOKED", "BOXED"])
        )
        if writer.wait_kind("hold", 120) is None:
            raise DemoError(
                "The workload could not set up its tables; see workload.stderr.log"
            )
        relay = RelayRunner(ctx, relay_id, prefix, schema, "exactly-once")
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
        receiver.prepare(schema, ["HOOKED"])
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
        outbox_out = wait_published(ctx, [boxed], expected, relay, by_change_id=True)
        relay.stop()
        webhook_out = read_events(ctx, [hooked], by_change_id=True)
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
