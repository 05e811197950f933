"""Broker failure: acks=1 with unclean leader election loses acknowledged records."""

from __future__ import annotations

import logging
import os
import signal
import time

from core.demos import kafka_io
from core.demos.ledger import Ledger
from core.demos.runner import RunContext
from core.demos.scenario import KEYS, Bound, Knob, KnobValue, Scenario, Step
from core.demos.worker import Record
from core.demos.workers import WorkerProcess
from core.errors import DemoError

log = logging.getLogger(__name__)

_ACKS = Knob(
    "acks",
    "both",
    "which producer runs: acks=1 on a topic with min.insync.replicas=1, acks=all "
    "on one with min.insync.replicas=2, or both side by side",
    choices=("both", "1", "all"),
)
_RECORDS = Knob(
    "records",
    20,
    "records each producer writes (half before, half after the follower drops out)",
    minimum=2,
)
_VARIANTS = {
    "1": ("acks1", "1", "1"),
    "all": ("acksall", "all", "2"),
}


def _variants(knobs: dict[str, KnobValue]) -> list[tuple[str, str, str]]:
    chosen = str(knobs["acks"])
    return [_VARIANTS[k] for k in ("1", "all") if chosen in (k, "both")]


class BrokerFailure(Scenario):
    number = 8
    name = "broker-failure"
    title = "Broker failure: acks=1 and unclean election versus acks=all"
    summary = (
        "A follower falls out of the ISR, the leader acknowledges more records on "
        "its own and is then killed; unclean leader election makes the stale "
        "follower leader. With acks=1 the acknowledged records are gone; with "
        "acks=all and min.insync.replicas=2 they were never acknowledged."
    )
    crash_point = (
        "leader killed after acknowledging records that its only follower does not have"
    )
    knobs = (_RECORDS, KEYS, _ACKS)
    pair_titles = ("acks=1", "acks=all")
    pairs = (
        ("acks1_acked", "acksall_acked"),
        ("acks1_acked_while_alone", "acksall_acked_while_alone"),
        ("acks1_refused", "acksall_refused"),
        ("acks1_lost", "acksall_lost"),
    )
    narration = (
        Step(
            "Two topics, two replicas each",
            "Both topics have one partition on the same two brokers: a leader and "
            "a follower, with unclean.leader.election.enable=true. The acks=1 "
            "topic has min.insync.replicas=1, the acks=all topic 2.",
        ),
        Step(
            "First half, fully replicated",
            "Each producer process writes the first half of its records. Both "
            "replicas have them.",
        ),
        Step(
            "The follower falls behind",
            "We freeze the follower broker with SIGSTOP. It stops heartbeating, "
            "the controller fences it and removes it from the ISR. Watch the ISR "
            "shrink to the leader alone.",
        ),
        Step(
            "Second half, leader alone",
            "The producers write the second half. The acks=1 producer gets its "
            "acknowledgements from the leader alone. The acks=all producer is "
            "refused: NOT_ENOUGH_REPLICAS, because the ISR is smaller than "
            "min.insync.replicas.",
        ),
        Step(
            "Kill the leader, wake the follower",
            "The leader broker is killed with SIGKILL and the follower resumed. "
            "The only in-sync replica is dead, so the controller elects the stale "
            "follower: an unclean election.",
        ),
        Step(
            "Restore the cluster",
            "The old leader restarts, finds a newer leader epoch, truncates its "
            "log to match and rejoins the ISR. Everything it alone had is gone.",
        ),
        Step(
            "Count",
            "Acknowledged records missing from the topic are lost. With acks=1 "
            "that is every record acknowledged while the follower was out; with "
            "acks=all nothing acknowledged is lost: the refused records were "
            "never promised.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        bounds: list[Bound] = []
        for prefix, _, _ in _variants(knobs):
            bounds.append(Bound(f"{prefix}_duplicated", "==", 0))
            if prefix == "acks1":
                bounds += [
                    Bound("acks1_acked_while_alone", ">=", 1),
                    Bound("acks1_lost", "==", "acks1_acked_while_alone"),
                ]
            else:
                bounds += [
                    Bound("acksall_acked_while_alone", "==", 0),
                    Bound("acksall_lost", "==", 0),
                ]
        return bounds

    def run(self, ctx: RunContext) -> None:
        records = int(ctx.knobs["records"])
        keys = int(ctx.knobs["keys"])
        variants = _variants(ctx.knobs)
        brokers = ctx.stack.broker_ids()
        if len(brokers) < 3:
            raise DemoError(
                "This demo needs a stack of at least 3 brokers",
                hint="start one with `cdc-studio stack up --brokers 3`",
            )
        leader, follower = ctx.rng.sample(brokers, 2)
        ctx.note(f"leader broker {leader}, follower broker {follower}")

        ctx.step(0)
        topics = {}
        for prefix, _, min_isr in variants:
            topics[prefix] = ctx.topic(
                prefix,
                1,
                replica_assignment=[[leader, follower]],
                config={
                    "unclean.leader.election.enable": "true",
                    "min.insync.replicas": min_isr,
                },
            )
        ctx.cleanups.append(lambda: _restore(ctx, [leader, follower]))

        ctx.step(1)
        half = records // 2
        planned: dict[str, list[Record]] = {}
        workers: dict[str, WorkerProcess] = {}
        for prefix, acks, _ in variants:
            planned[prefix] = ctx.records(records, keys, prefix)
            config: dict[str, object] = {"acks": acks, "message.timeout.ms": 4000}
            if acks == "1":
                config["enable.idempotence"] = False
            workers[prefix] = ctx.worker(
                f"producer-{prefix}",
                "producer",
                topic=topics[prefix],
                records=planned[prefix],
                batch=half,
                hold_at="before_batch#2",
                config=config,
            )
        for worker in workers.values():
            if worker.wait_kind("hold", 60) is None:
                raise DemoError(f"{worker.name} stopped before its second batch")
        # acks=1 does not wait for the follower: wait until the high watermark
        # (the end every in-sync replica has reached) covers the first half.
        for prefix, worker in workers.items():
            _wait_high_watermark(ctx, topics[prefix], len(worker.ids("produced")))

        ctx.step(2)
        _signal_broker(ctx, follower, signal.SIGSTOP)
        ctx.event("broker", f"SIGSTOP: follower broker {follower} frozen", 1)
        _wait_partition(
            ctx,
            list(topics.values()),
            "isr",
            [leader],
            f"The ISR shrinking to [{leader}]",
        )
        ctx.event("broker", f"ISR shrank to [{leader}]", 1)

        ctx.step(3)
        before = {p: len(w.ids("produced")) for p, w in workers.items()}
        for worker in workers.values():
            worker.go()
        for worker in workers.values():
            if worker.wait_exit(60) != 0:
                raise DemoError(f"{worker.name} failed; see its log in {ctx.run_dir}")

        ctx.step(4)
        ctx.stack.kill_broker(leader)
        ctx.event("crash", f"SIGKILL: leader broker {leader}", 1)
        ctx.crash_reached(True)
        _signal_broker(ctx, follower, signal.SIGCONT)
        ctx.event("broker", f"SIGCONT: follower broker {follower} resumed", 1)
        _wait_partition(
            ctx,
            list(topics.values()),
            "leader",
            follower,
            f"The election of broker {follower}",
        )
        ctx.event("broker", f"unclean election: broker {follower} leads", 1)

        ctx.step(5)
        _restore(ctx, [leader, follower])
        ctx.event("recovered", f"broker {leader} back, ISR full", 1)

        ctx.step(6)
        for prefix, worker in workers.items():
            acked = worker.ids("produced")
            ctx.measure(f"{prefix}_acked", len(acked))
            ctx.measure(f"{prefix}_acked_while_alone", len(acked) - before[prefix])
            ctx.measure(f"{prefix}_refused", len(worker.ids("refused")))
            ledger = Ledger()
            done = set(acked)
            ledger.expect_all(r for r in planned[prefix] if r[0] in done)
            for record_id in worker.ids("refused"):
                ledger.forbid(record_id)
            output = ctx.read(topics[prefix], "read_uncommitted")
            counts = ledger.count(output)
            ctx.ledger(prefix, counts, prefix=f"{prefix}_")


def _signal_broker(ctx: RunContext, broker_id: int, sig: signal.Signals) -> None:
    for node in ctx.stack.status().nodes:
        if node.role == "broker" and node.node_id == broker_id and node.up and node.pid:
            os.kill(node.pid, sig)
            log.info("sent %s to broker %d (pid %d)", sig.name, broker_id, node.pid)
            return
    raise DemoError(f"Broker {broker_id} is not running")


def _wait_partition(
    ctx: RunContext,
    topics: list[str],
    field: str,
    value: object,
    what: str,
    timeout: float = 90,
) -> None:
    """Wait until partition 0 of every topic has ``field`` == ``value``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [kafka_io.partition_state(ctx.bootstrap, t).get(0) for t in topics]
        if all(s is not None and s[field] == value for s in states):
            return
        time.sleep(0.3)
    raise DemoError(f"{what} did not happen within {timeout:.0f} s")


def _wait_high_watermark(
    ctx: RunContext, topic: str, offset: int, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            kafka_io.end_offsets(ctx.bootstrap, topic, [0], committed=False)[0]
            >= offset
        ):
            return
        time.sleep(0.2)
    raise DemoError(f"The follower of {topic} did not replicate within {timeout:.0f} s")


def _restore(ctx: RunContext, brokers: list[int]) -> None:
    """Every broker running and not frozen, every ISR full (idempotent)."""
    running = {n.node_id: n for n in ctx.stack.status().nodes if n.role == "broker"}
    for broker_id in brokers:
        node = running.get(broker_id)
        if node is not None and node.up and node.pid:
            os.kill(node.pid, signal.SIGCONT)
    for broker_id in brokers:
        ctx.stack.start_broker(broker_id)
    # Every topic of the cluster, not only ours: others share these brokers.
    kafka_io.wait_for_full_isr(ctx.bootstrap, kafka_io.topic_names(ctx.bootstrap))
