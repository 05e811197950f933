"""Idempotent producer under lost acknowledgements, through our dropping proxy."""

from __future__ import annotations

from core.demos.ledger import Ledger
from core.demos.proxy import KafkaProxy
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
from core.errors import DemoError

_IDEMPOTENCE = Knob(
    "idempotence",
    "both",
    "enable.idempotence of the producer: off, on, or both one after the other",
    choices=("both", "off", "on"),
)
_DROPS = Knob("drops", 3, "produce responses the proxy drops", maximum=20)
_BATCH = 5


def _modes(knobs: dict[str, KnobValue]) -> list[str]:
    chosen = str(knobs["idempotence"])
    return [m for m in ("off", "on") if chosen in (m, "both")]


class IdempotentProducer(Scenario):
    number = 5
    name = "idempotent-producer"
    title = "Idempotent producer under lost acknowledgements"
    summary = (
        "A proxy of ours between the producer and the brokers drops some produce "
        "responses after the brokers wrote the records. The producer retries. "
        "Without idempotence the topic holds duplicates; with it, none."
    )
    crash_point = "a produce response dropped and the connection cut by the proxy"
    knobs = (RECORDS, PARTITIONS, KEYS, _IDEMPOTENCE, _DROPS)
    pair_titles = ("idempotence off", "idempotence on")
    pairs = (
        ("off_dropped", "on_dropped"),
        ("off_duplicated", "on_duplicated"),
        ("off_lost", "on_lost"),
    )
    narration = (
        Step(
            "A topic and a proxy",
            "We create a topic and start a loopback proxy with one port per "
            "broker. The producer only knows the proxy: the proxy rewrites the "
            "broker addresses in every metadata response.",
        ),
        Step(
            "Produce with idempotence off",
            "The producer writes its records. Now and then the proxy throws away "
            "the broker's answer to a produce request and cuts the connection. "
            "The records are written, but the producer cannot know: it sends "
            "them again, and the broker writes them again.",
        ),
        Step(
            "Produce with idempotence on",
            "Same records, same lost answers, enable.idempotence=true. The "
            "producer numbers every batch; the broker recognises a batch it "
            "already has and answers with its first offset instead of writing "
            "it twice.",
        ),
        Step(
            "Count",
            "Every acknowledged record is in the topic in both runs. Without "
            "idempotence some are there twice (at least one per dropped "
            "response); with it, each exactly once.",
        ),
    )

    def bounds(self, knobs: dict[str, KnobValue]) -> list[Bound]:
        bounds: list[Bound] = []
        for mode in _modes(knobs):
            bounds += [
                Bound(f"{mode}_dropped", ">=", 1),
                Bound(f"{mode}_lost", "==", 0),
            ]
            if mode == "off":
                bounds.append(Bound("off_duplicated", ">=", "off_dropped"))
            else:
                bounds.append(Bound("on_duplicated", "==", 0))
        return bounds

    def run(self, ctx: RunContext) -> None:
        records = int(ctx.knobs["records"])
        partitions = int(ctx.knobs["partitions"])
        keys = int(ctx.knobs["keys"])
        drops = int(ctx.knobs["drops"])
        brokers = {b: ctx.settings.broker_port(b) for b in ctx.stack.broker_ids()}

        ctx.step(0)
        topics = {
            mode: ctx.topic(f"idempotence-{mode}", partitions)
            for mode in _modes(ctx.knobs)
        }
        # Produce request numbers whose response is dropped: among the first
        # requests, which every run makes (one batch at least per request).
        batches = max(1, records // _BATCH)
        chosen = sorted(ctx.rng.sample(range(1, batches + 1), min(drops, batches)))
        ctx.note(f"dropping the responses of produce requests {chosen}")
        reached = True

        for mode, topic in topics.items():
            ctx.step(1 if mode == "off" else 2)

            def dropped(number: int, mode: str = mode) -> None:
                ctx.event(
                    "dropped",
                    f"proxy dropped produce response #{number} (idempotence {mode})",
                    1,
                    "proxy",
                )

            proxy = KafkaProxy(
                brokers,
                lambda n: n in chosen,
                ctx.settings.demos.proxy_base_port,
                dropped,
            )
            planned = ctx.records(records, keys, f"idem-{mode}")
            with proxy:
                worker = ctx.worker(
                    f"producer-{mode}",
                    "producer",
                    topic=topic,
                    records=planned,
                    batch=_BATCH,
                    bootstrap=proxy.bootstrap,
                    config={
                        "enable.idempotence": mode == "on",
                        "acks": "all",
                        "retry.backoff.ms": 50,
                        "reconnect.backoff.ms": 50,
                    },
                )
                if worker.wait_exit(120) != 0:
                    raise DemoError(
                        f"{worker.name} failed; see its log in {ctx.run_dir}"
                    )
            ctx.measure(f"{mode}_dropped", proxy.stats.dropped)
            ctx.measure(f"{mode}_produce_requests", proxy.stats.produce_requests)
            reached = reached and proxy.stats.dropped > 0

            acked = set(worker.ids("produced"))
            ctx.measure(f"{mode}_acked", len(acked))
            ledger = Ledger()
            ledger.expect_all(r for r in planned if r[0] in acked)
            ctx.ledger(mode, ledger.count(ctx.read(topic)), prefix=f"{mode}_")
        ctx.crash_reached(reached)
        ctx.step(3)
