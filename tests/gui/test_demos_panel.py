"""The Demos panel runs a scenario end to end offscreen, as the CLI does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core import settings as settings_module
from core.settings import Settings
from core.stack import Stack
from gui.bridge import Bridge
from gui.demo_timeline import write_png
from gui.messages import Messages
from gui.panels import PanelContext
from gui.panels.demos import DemosPanel
from gui.stack_model import StackModel

WAIT_MS = 120_000


@pytest.fixture
def panel(qtbot: QtBot, stack: Stack, stack_settings: Settings) -> Iterator[DemosPanel]:
    """The Demos panel alone (the other panels are not part of this test)."""
    bridge = Bridge()
    messages = Messages()
    context = PanelContext(
        stack_settings, bridge, messages, StackModel(stack_settings, bridge, messages)
    )
    panel = DemosPanel(context)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    yield panel
    panel.close()
    bridge.wait_idle(WAIT_MS)


def _cli_counts(settings: Settings, tmp_path: Path, *args: str) -> dict[str, int]:
    config = settings_module.save(settings, tmp_path / "settings.toml")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(config),
            "demo",
            "run",
            *args,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    result = json.loads(done.stdout)
    assert result["verdict"] == "pass", result
    counts: dict[str, int] = result["counts"]
    return counts


def test_step_then_run_shows_the_cli_counts(
    qtbot: QtBot, panel: DemosPanel, stack_settings: Settings, tmp_path: Path
) -> None:
    panel.select("zombie-fencing")
    panel.set_knob("records", 8)
    panel.seed.setValue(3)

    # Step: the run starts, announces its first narration step and pauses.
    panel.step_button.click()
    qtbot.waitUntil(lambda: panel.narration.currentRow() == 0, timeout=WAIT_MS)
    assert panel.running
    assert panel.run_button.text() == "Resume"
    assert panel.last_result is None

    # Run: it goes on to the end, off the GUI thread.
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.last_result is not None, timeout=WAIT_MS)
    result = panel.last_result
    assert result is not None
    assert result.verdict == "pass", result.to_json()
    assert panel.results_table.rowCount() == 1
    assert panel.results_table.item(0, 4).text() == "pass"
    assert panel.counters["lost"].text() == "0"
    assert panel.counters["duplicated"].text() == "0"
    assert panel.committed_pane.text() == "zombie visible read committed: 0"
    assert panel.uncommitted_pane.text() == "zombie visible read uncommitted: 8"
    png = Path(result.run_dir) / "timeline.png"
    assert png.stat().st_size > 0
    png.unlink()
    assert write_png(Path(result.run_dir)) == png  # as for a run from the CLI
    assert png.stat().st_size > 0
    panel.grab().save(str(Path(result.run_dir) / "panel.png"))

    # The CLI measures the same counts for the same scenario, knobs and seed.
    cli = _cli_counts(
        stack_settings, tmp_path, "zombie-fencing", "--seed", "3", "--records", "8"
    )
    assert cli == result.counts
