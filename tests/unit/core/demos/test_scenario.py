"""Knobs, bounds, run control and the timeline of the demo framework."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.demos import catalog
from core.demos.runner import CancelledError, RunContext, RunControl
from core.demos.scenario import Bound, Knob
from core.demos.timeline import Timeline
from core.errors import DemoError, UnknownScenarioError
from core.settings import Settings


def test_bound_against_number_and_other_count() -> None:
    counts = {"lost": 0, "duplicated": 3, "written": 5, "visible": 5}

    assert Bound("lost", "==", 0).check(counts)
    assert Bound("duplicated", ">=", 1).check(counts)
    assert not Bound("duplicated", "==", 0).check(counts)
    assert Bound("visible", "==", "written").check(counts)
    assert not Bound("missing", "==", 0).check(counts)
    assert str(Bound("visible", "==", "written")) == "visible == written"


def test_knob_parsing() -> None:
    number = Knob("records", 30, "records")
    choice = Knob("acks", "1", "acks", choices=("1", "all"))

    assert number.parse("12") == 12
    assert choice.parse("all") == "all"
    with pytest.raises(UnknownScenarioError):
        number.parse("many")
    with pytest.raises(UnknownScenarioError):
        number.parse(0)
    with pytest.raises(UnknownScenarioError):
        choice.parse("2")


def test_every_scenario_describes_itself() -> None:
    found = catalog.scenarios()

    assert [s.number for s in found] == sorted({s.number for s in found})
    for scenario in found:
        described = scenario.describe()
        assert described["narration"], scenario.name
        assert described["bounds"], scenario.name
        assert catalog.find(str(scenario.number)) is not None
    with pytest.raises(UnknownScenarioError):
        catalog.find("no-such-demo")
    with pytest.raises(UnknownScenarioError):
        found[0].resolve_knobs({"no_such_knob": 1})


def test_timeline_keeps_running_totals() -> None:
    seen = []
    timeline = Timeline(seen.append)

    timeline.add("produced", "p", "batch", 10)
    timeline.add("crash", "p", "killed", 1)
    timeline.add("produced", "p", "batch", 5)

    assert [e.totals.get("produced") for e in timeline.events] == [10, 10, 15]
    assert timeline.totals() == {"produced": 15, "crash": 1}
    assert len(seen) == 3
    with pytest.raises(ValueError):
        timeline.add("exploded", "p", "?")


def test_control_steps_and_pauses() -> None:
    control = RunControl()
    control.checkpoint()  # running: passes at once
    control.pause()
    passed = threading.Event()
    stopped = threading.Event()

    def runner() -> None:
        control.checkpoint()
        passed.set()
        try:
            control.checkpoint()  # budget used up: waits again
        except CancelledError:
            stopped.set()

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    assert not passed.wait(0.3)
    control.step()
    assert passed.wait(5)
    assert control.paused
    control.cancel()
    thread.join(5)
    assert stopped.is_set()
    with pytest.raises(CancelledError):
        control.checkpoint()


@pytest.mark.expect_warnings
def test_a_failed_clean_up_is_a_note_of_the_run(tmp_path: Path) -> None:
    scenario = catalog.find("webhook-vs-outbox")
    settings = Settings(data_dir=str(tmp_path))
    ctx = RunContext(scenario, settings, {}, 1, tmp_path, Timeline(), RunControl())

    def fail() -> None:
        raise DemoError("Removing the demo schema D failed", hint="drop it by hand")

    ctx.cleanups.append(fail)
    ctx.close()

    assert ctx.notes == [
        "clean-up failed: Removing the demo schema D failed\n  -> drop it by hand"
    ]
