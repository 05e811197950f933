"""Runs one demo scenario: context for its steps, verdict, export per run."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.demos import kafka_io
from core.demos.ledger import LedgerCounts, OutputRecord
from core.demos.scenario import Bound, KnobValue, Scenario
from core.demos.timeline import Event, Timeline
from core.demos.workers import WorkerEvent, WorkerProcess
from core.errors import DemoError, StudioError
from core.settings import Settings
from core.stack import Stack

log = logging.getLogger(__name__)

# Verdicts. Only PASS makes `demo run` exit 0.
PASS = "pass"
FAIL = "fail"
NOT_REACHED = "crash point not reached"
ERROR = "error"
CANCELLED = "cancelled"

# Worker report kinds that become timeline events as they are.
_TIMELINE_KINDS = {
    "produced",
    "refused",
    "consumed",
    "committed",
    "aborted",
    "crash",
    "fenced",
    "rebalance",
    "recovered",
}


class CancelledError(DemoError):
    """The run was stopped from outside (GUI stop button)."""


class RunControl:
    """Run, pause and step a scenario between its narration steps (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._budget: int | None = None
        self._cancelled = False

    def pause(self) -> None:
        with self._cond:
            self._budget = 0

    def resume(self) -> None:
        with self._cond:
            self._budget = None
            self._cond.notify_all()

    def step(self) -> None:
        """Let the run go on to its next narration step, then pause again."""
        with self._cond:
            self._budget = (self._budget or 0) + 1
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        with self._cond:
            return self._budget == 0

    def checkpoint(self) -> None:
        with self._cond:
            while not self._cancelled and self._budget == 0:
                self._cond.wait(0.5)
            if self._cancelled:
                raise CancelledError("The demo run was stopped")
            if self._budget is not None:
                self._budget -= 1


@dataclass
class RunResult:
    """Everything a run measured and decided; exported as result.json."""

    scenario: str
    number: int
    title: str
    seed: int
    knobs: dict[str, KnobValue]
    verdict: str
    counts: dict[str, int]
    bounds: list[dict[str, Any]]
    crash_point: str
    crash_reached: bool
    ledgers: dict[str, dict[str, Any]]
    timeline: list[dict[str, Any]]
    run_dir: str
    started: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def figure(self, name: str) -> str | None:
        """A count for tables: ``lost`` itself, or its variants side by side
        (``acks1 4 / acksall 0`` from ``acks1_lost`` and ``acksall_lost``)."""
        if name in self.counts:
            return str(self.counts[name])
        variants = [
            f"{key[: -len(name) - 1]} {value}"
            for key, value in self.counts.items()
            if key.endswith(f"_{name}") and not key.startswith("uncommitted_")
        ]
        return " / ".join(variants) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "number": self.number,
            "title": self.title,
            "seed": self.seed,
            "knobs": self.knobs,
            "verdict": self.verdict,
            "passed": self.passed,
            "counts": self.counts,
            "bounds": self.bounds,
            "crash_point": self.crash_point,
            "crash_reached": self.crash_reached,
            "ledgers": self.ledgers,
            "timeline": self.timeline,
            "run_dir": self.run_dir,
            "started": self.started,
            "seconds": round(self.seconds, 2),
            "notes": self.notes,
            "error": self.error,
        }


class RunContext:
    """What a scenario's ``run`` works with: the stack, workers, topics, counts."""

    def __init__(
        self,
        scenario: Scenario,
        settings: Settings,
        knobs: dict[str, KnobValue],
        seed: int,
        run_dir: Path,
        timeline: Timeline,
        control: RunControl,
    ) -> None:
        self.scenario = scenario
        self.settings = settings
        self.knobs = knobs
        self.seed = seed
        self.rng = random.Random(seed)
        self.run_dir = run_dir
        self.timeline = timeline
        self.control = control
        self.stack = Stack(settings)
        self.bootstrap = self.stack.status().bootstrap_servers
        self.run_id = f"{scenario.name}-{seed}-{uuid.uuid4().hex[:6]}"
        self.counts: dict[str, int] = {}
        self.ledgers: dict[str, LedgerCounts] = {}
        self.notes: list[str] = []
        self.reached: bool | None = None
        self.cleanups: list[Callable[[], None]] = []
        self._topics: list[str] = []
        self._workers: list[WorkerProcess] = []

    # -- narration and measures ----------------------------------------

    def step(self, index: int) -> None:
        """Announce narration step ``index``; wait here while paused."""
        self.control.checkpoint()
        step = self.scenario.narration[index]
        self.timeline.add("step", "demo", f"{index + 1}. {step.title}")
        log.info("%s step %d: %s", self.scenario.name, index + 1, step.title)

    def event(self, kind: str, text: str, count: int = 0, source: str = "demo") -> None:
        self.timeline.add(kind, source, text, count)

    def measure(self, name: str, value: int) -> None:
        self.counts[name] = int(value)

    def ledger(self, name: str, counts: LedgerCounts, prefix: str = "") -> None:
        """Keep a ledger's counts; its main figures become measured counts."""
        self.ledgers[name] = counts
        for field_name in (
            "expected",
            "delivered",
            "lost",
            "duplicated",
            "phantom",
            "out_of_order",
        ):
            self.measure(prefix + field_name, getattr(counts, field_name))

    def crash_reached(self, reached: bool) -> None:
        self.reached = bool(reached) and self.reached is not False

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- Kafka -----------------------------------------------------------

    def topic(
        self,
        label: str,
        partitions: int,
        replication: int = 3,
        config: dict[str, str] | None = None,
        replica_assignment: list[list[int]] | None = None,
    ) -> str:
        name = f"demo.{self.run_id}.{label}"
        kafka_io.create_topic(
            self.bootstrap, name, partitions, replication, config, replica_assignment
        )
        self._topics.append(name)
        return name

    def records(self, count: int, keys: int, tag: str) -> list[tuple[str, str, int]]:
        """``count`` records (id, key, seq per key) spread over ``keys`` keys."""
        key_names = [f"k{n:03d}" for n in range(max(1, keys))]
        seqs: dict[str, int] = {}
        out = []
        for n in range(count):
            key = key_names[self.rng.randrange(len(key_names))]
            seqs[key] = seqs.get(key, 0) + 1
            out.append((f"{tag}-{n:06d}", key, seqs[key]))
        return out

    def read(self, topic: str, isolation: str = "read_committed") -> list[OutputRecord]:
        return kafka_io.read_topic(self.bootstrap, topic, isolation)

    # -- workers ---------------------------------------------------------

    def worker(
        self, name: str, role: str, command: list[str] | None = None, **spec: Any
    ) -> WorkerProcess:
        """Start a worker process (or ``command``); its reports go to the timeline."""
        full = {"role": role, "bootstrap": self.bootstrap} | spec
        worker = WorkerProcess(name, full, self.run_dir, self._on_worker_event, command)
        self._workers.append(worker)
        worker.start()
        return worker

    def _on_worker_event(self, worker: WorkerProcess, event: WorkerEvent) -> None:
        kind = str(event.get("kind", ""))
        text = str(event.get("text", ""))
        if kind in _TIMELINE_KINDS:
            count = int(event.get("count", 1 if kind in ("crash", "fenced") else 0))
            self.timeline.add(kind, worker.name, text, count)

    def settings_file(self) -> Path:
        """These settings as a file, for processes started with ``--config``."""
        from core import settings as settings_module

        path = self.run_dir / "settings.toml"
        if not path.exists():
            settings_module.save(self.settings, path)
        return path

    def forget_topic(self, name: str) -> None:
        """Delete ``name`` with the run's own topics at the end."""
        self._topics.append(name)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except StudioError as exc:
                log.warning("demo clean-up failed: %s", exc)
                self.note(f"clean-up failed: {exc}")
        kafka_io.delete_topics(self.bootstrap, self._topics)


def runs_dir(settings: Settings) -> Path:
    return settings.data_path / "demos" / "runs"


def run_scenario(
    scenario: Scenario,
    settings: Settings,
    knobs: dict[str, object] | None = None,
    seed: int = 1,
    control: RunControl | None = None,
    listener: Callable[[Event], None] | None = None,
) -> RunResult:
    """Run ``scenario`` on the embedded stack and judge it by its bounds.

    Results, the timeline and every worker's log go to one folder per run
    under ``<data dir>/demos/runs``.
    """
    reason = scenario.unavailable()
    if reason:
        raise DemoError(f"Scenario {scenario.name} cannot run: {reason}")
    values = scenario.resolve_knobs(knobs or {})
    if not Stack(settings).status().running:
        raise DemoError(
            "The embedded stack is not running",
            hint="start it with `cdc-studio stack up`",
        )
    started = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (
        runs_dir(settings)
        / f"{started}-{scenario.name}-seed{seed}-{uuid.uuid4().hex[:4]}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)

    timeline = Timeline(listener)
    ctx = RunContext(
        scenario, settings, values, seed, run_dir, timeline, control or RunControl()
    )
    began = time.monotonic()
    error: str | None = None
    cancelled = False
    log.info(
        "demo %s starts (seed %s, knobs %s) in %s", scenario.name, seed, values, run_dir
    )
    try:
        scenario.run(ctx)
    except CancelledError:
        cancelled = True
    except StudioError as exc:
        error = str(exc)
        log.warning("demo %s failed: %s", scenario.name, exc)
    finally:
        try:
            ctx.close()
        except StudioError as exc:
            log.warning("demo clean-up failed: %s", exc)

    bounds = scenario.bounds(values)
    checked = [{"bound": str(b), "ok": b.check(ctx.counts)} for b in bounds]
    verdict = _verdict(error, cancelled, ctx.reached, bounds, ctx.counts)
    timeline.add("verified", "demo", f"verdict: {verdict}")
    result = RunResult(
        scenario=scenario.name,
        number=scenario.number,
        title=scenario.title,
        seed=seed,
        knobs=values,
        verdict=verdict,
        counts=dict(ctx.counts),
        bounds=checked,
        crash_point=scenario.crash_point,
        crash_reached=bool(ctx.reached),
        ledgers={name: c.to_json() for name, c in ctx.ledgers.items()},
        timeline=timeline.to_json(),
        run_dir=str(run_dir),
        started=started,
        seconds=time.monotonic() - began,
        notes=ctx.notes,
        error=error,
    )
    (run_dir / "result.json").write_text(
        json.dumps(result.to_json(), indent=1), encoding="utf-8"
    )
    log.info("demo %s: %s %s", scenario.name, verdict, ctx.counts)
    return result


def _verdict(
    error: str | None,
    cancelled: bool,
    reached: bool | None,
    bounds: list[Bound],
    counts: dict[str, int],
) -> str:
    if cancelled:
        return CANCELLED
    if error is not None:
        return ERROR
    if not reached:
        return NOT_REACHED
    return PASS if all(b.check(counts) for b in bounds) else FAIL
