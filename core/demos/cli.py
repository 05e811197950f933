"""The `cdc-studio demo` commands: list, show and run crash-and-recover demos."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from core import settings
from core.demos import catalog
from core.demos.runner import RunResult, run_scenario
from core.demos.scenario import Scenario
from core.errors import UnknownScenarioError

log = logging.getLogger(__name__)

EXIT_OUT_OF_BOUNDS = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", help="crash-and-recover demos that measure loss and duplicates"
    )
    demo_sub = demo.add_subparsers(dest="action", required=True)

    listing = demo_sub.add_parser("list", help="the scenarios and their bounds")
    listing.add_argument("--json", action="store_true")

    show = demo_sub.add_parser("show", help="a scenario's narration, knobs, bounds")
    show.add_argument("name", help="scenario name or number")
    show.add_argument("--json", action="store_true")

    run = demo_sub.add_parser(
        "run",
        help="run a scenario (or `all`); exit 0 when the measured counts "
        "fall within its expected bounds",
    )
    run.add_argument("name", help="scenario name or number, or `all`")
    run.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    run.add_argument("--records", type=int, help="records to write")
    run.add_argument("--partitions", type=int, help="partitions of the demo topic")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="set any knob (repeatable), e.g. --set acks=all",
    )
    run.add_argument(
        "--png",
        action="store_true",
        help="also draw the timeline as timeline.png in the run folder (uses Qt)",
    )
    run.add_argument("--json", action="store_true")
    demo.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, conf: settings.Settings) -> int:
    from core.cli import emit

    if args.action == "list":
        found = catalog.scenarios()
        emit(
            args.json,
            {"scenarios": [s.describe() for s in found]},
            lambda: _list_text(found),
        )
        return 0
    if args.action == "show":
        scenario = catalog.find(args.name)
        emit(args.json, scenario.describe(), lambda: _show_text(scenario))
        return 0
    knobs = _knobs(args)
    if args.name == "all":
        return _run_all(args, conf, knobs)
    scenario = catalog.find(args.name)
    result = run_scenario(scenario, conf, _known(scenario, knobs), seed=args.seed)
    if args.png:
        _draw_png(result)
    emit(args.json, result.to_json(), lambda: _result_text(result))
    return 0 if result.passed else EXIT_OUT_OF_BOUNDS


def _knobs(args: argparse.Namespace) -> dict[str, object]:
    knobs: dict[str, object] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise UnknownScenarioError(
                f"--set {item!r} is not KNOB=VALUE", hint="e.g. --set acks=all"
            )
        knobs[name.strip()] = value.strip()
    if args.records is not None:
        knobs["records"] = args.records
    if args.partitions is not None:
        knobs["partitions"] = args.partitions
    return knobs


def _known(scenario: Scenario, knobs: dict[str, object]) -> dict[str, object]:
    """Knobs the scenario has; --records and --partitions apply where they can."""
    names = {k.name for k in scenario.knobs}
    for name in knobs:
        if name not in names and name not in ("records", "partitions"):
            scenario.knob(name)  # raises, naming the knobs it has
    return {k: v for k, v in knobs.items() if k in names}


def _run_all(
    args: argparse.Namespace, conf: settings.Settings, knobs: dict[str, object]
) -> int:
    from core.cli import emit, table

    results: list[RunResult] = []
    skipped: list[dict[str, Any]] = []
    for scenario in catalog.scenarios():
        reason = scenario.unavailable()
        if reason:
            skipped.append(
                {"scenario": scenario.name, "number": scenario.number, "reason": reason}
            )
            continue
        results.append(
            run_scenario(scenario, conf, _known(scenario, knobs), seed=args.seed)
        )
        if args.png:
            _draw_png(results[-1])

    def text() -> str:
        rows: list[list[Any]] = []
        for r in results:
            rows.append(
                [
                    r.number,
                    r.scenario,
                    r.verdict,
                    r.figure("lost") or "-",
                    r.figure("duplicated") or "-",
                    f"{r.seconds:.1f}s",
                    r.run_dir,
                ]
            )
        for s in skipped:
            rows.append(
                [s["number"], s["scenario"], "unavailable", "-", "-", "-", s["reason"]]
            )
        return table(
            ["#", "SCENARIO", "VERDICT", "LOST", "DUPLICATED", "TIME", "RUN FOLDER"],
            rows,
        )

    emit(
        args.json, {"results": [r.to_json() for r in results], "skipped": skipped}, text
    )
    return 0 if all(r.passed for r in results) else EXIT_OUT_OF_BOUNDS


def _draw_png(result: RunResult) -> None:
    """Have the GUI package draw the timeline (a process of its own: core does
    not import Qt); a failure to draw is noted, not fatal."""
    done = subprocess.run(
        [sys.executable, "-m", "gui.demo_timeline", result.run_dir],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env=os.environ | {"QT_QPA_PLATFORM": "offscreen"},
    )
    if done.returncode != 0:
        log.warning("could not draw the timeline: %s", done.stderr.strip()[-500:])
        result.notes.append("timeline.png could not be drawn (see the log)")


def _list_text(found: list[Scenario]) -> str:
    from core.cli import table

    rows = [
        [
            s.number,
            s.name,
            s.title,
            "yes" if s.unavailable() is None else f"no: {s.unavailable()}",
        ]
        for s in found
    ]
    return table(["#", "NAME", "TITLE", "AVAILABLE"], rows)


def _show_text(scenario: Scenario) -> str:
    lines = [
        f"{scenario.number}. {scenario.title} ({scenario.name})",
        "",
        textwrap.fill(scenario.summary, 78),
        "",
        f"Crash point: {scenario.crash_point}",
        "",
    ]
    for n, step in enumerate(scenario.narration, 1):
        lines.append(f"Step {n}: {step.title}")
        lines += ["    " + line for line in textwrap.wrap(step.text, 74)]
    lines += ["", "Knobs:"]
    for knob in scenario.knobs:
        choices = f" ({'|'.join(knob.choices)})" if knob.choices else ""
        lines.append(f"  {knob.name} = {knob.default}{choices}: {knob.help}")
    lines += ["", "Expected bounds:"]
    lines += [f"  {b}" for b in scenario.bounds(scenario.resolve_knobs({}))]
    return "\n".join(lines)


def _result_text(result: RunResult) -> str:
    lines = [
        f"{result.number}. {result.title}",
        f"verdict:     {result.verdict.upper()}",
        f"crash point: {result.crash_point} "
        f"({'reached' if result.crash_reached else 'NOT reached'})",
        f"seed {result.seed}, knobs "
        + ", ".join(f"{k}={v}" for k, v in result.knobs.items()),
        "",
        "counts:",
    ]
    width = max((len(k) for k in result.counts), default=0)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in result.counts.items()]
    lines += ["", "bounds:"]
    lines += [f"  [{'ok' if b['ok'] else 'OUT'}] {b['bound']}" for b in result.bounds]
    if result.error:
        lines += ["", f"error: {result.error}"]
    lines += [f"  note: {n}" for n in result.notes]
    lines += ["", f"run folder: {result.run_dir} ({result.seconds:.1f} s)"]
    return "\n".join(lines)
