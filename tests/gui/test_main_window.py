"""The main window on the real stack: the Stack panel kills and starts a broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QTimer

import pytest
from confluent_kafka.admin import AdminClient
from pytestqt.qtbot import QtBot

from core.settings import Settings
from core.stack import Stack
from gui.app import build_window
from gui.main_window import MainWindow
from gui.panels.lag import LagPanel
from gui.panels.stack_panel import StackPanel

WAIT_MS = 60_000


@pytest.fixture
def window(
    qtbot: QtBot, stack: Stack, stack_settings: Settings
) -> Iterator[MainWindow]:
    window = build_window(stack_settings, panels=["gui.panels.stack_panel"])
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()
    window.context.bridge.wait_idle(WAIT_MS)


def _panel(window: MainWindow) -> StackPanel:
    panel = window.panels["Stack"]
    assert isinstance(panel, StackPanel)
    return panel


def _full_isr(bootstrap: str, brokers: int) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=5).topics
    return all(
        len(p.isrs) == min(brokers, len(p.replicas))
        for t in topics.values()
        for p in t.partitions.values()
    )


def test_stack_panel_kill_and_start_a_broker(
    qtbot: QtBot, window: MainWindow, stack: Stack, bootstrap: str, tmp_path: Path
) -> None:
    panel = _panel(window)
    model = window.context.stack

    # Opening reuses the session's stack; the panel lists every node as up.
    with qtbot.waitSignal(model.started, timeout=WAIT_MS):
        model.start()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 5, timeout=WAIT_MS)
    for name in ("controller", "broker-1", "broker-2", "broker-3", "h2"):
        assert panel.state_of(name) == "\u25b2 up"
    assert panel.summary.text().startswith("3 of 3 brokers up")
    window.save_screenshot(tmp_path / "stack-up.png")

    # Kill broker 3 from the panel, watching that the GUI thread stays free:
    # the kill runs on another thread and the event loop keeps turning.
    threads: list[int] = []
    real_kill = stack.kill_broker

    def spy_kill(broker_id: int) -> bool:
        threads.append(threading.get_ident())
        time.sleep(0.5)  # make the call long enough to observe the loop turning
        return real_kill(broker_id)

    model.stack.kill_broker = spy_kill  # type: ignore[method-assign]
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    panel.select_node("broker-3")
    assert panel.kill_button.isEnabled()
    panel.kill_button.click()
    qtbot.waitUntil(
        lambda: panel.state_of("broker-3") == "\u25bc down", timeout=WAIT_MS
    )
    timer.stop()

    assert threads and all(t != window.context.bridge.gui_thread for t in threads)
    assert len(ticks) >= 10  # the loop kept running while the kill was under way
    assert panel.summary.text().startswith("2 of 3 brokers up")
    down = {n.name: n.up for n in stack.status().nodes}
    assert down == {
        "controller": True,
        "broker-1": True,
        "broker-2": True,
        "broker-3": False,
        "h2": True,
    }
    assert panel.start_button.isEnabled() and not panel.kill_button.isEnabled()
    window.save_screenshot(tmp_path / "broker-3-killed.png")

    # Start it again from the panel; it comes back up and rejoins every ISR.
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.state_of("broker-3") == "\u25b2 up", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: _full_isr(bootstrap, 3), timeout=WAIT_MS)
    assert {n.name: n.up for n in stack.status().nodes}["broker-3"]


@pytest.mark.expect_warnings
def test_messages_are_held_until_the_window_exists(
    qtbot: QtBot, stack_settings: Settings
) -> None:
    from gui.messages import Messages

    messages = Messages()
    messages.say(30, "early warning", "what to do")
    shown: list[str] = []
    messages.attach(lambda m: shown.append(m.full_text()))
    messages.say(40, "later error")
    assert shown == ["early warning\nwhat to do", "later error"]


@pytest.mark.expect_warnings
def test_a_failing_stack_action_is_shown_with_its_hint(
    qtbot: QtBot, window: MainWindow
) -> None:
    window.context.stack.start_broker(99)

    def shown() -> list[str]:
        items = [
            window.messages_list.item(i) for i in range(window.messages_list.count())
        ]
        return [i.text() for i in items if "broker 99" in i.text()]

    qtbot.waitUntil(lambda: len(shown()) == 1, timeout=WAIT_MS)
    text = shown()[0]
    assert text.startswith("error: starting broker 99 failed:")
    assert "There is no broker 99" in text
    assert "brokers are: 1, 2, 3" in text


def test_every_panel_opens_without_an_error(
    qtbot: QtBot, stack: Stack, stack_settings: Settings, tmp_path: Path
) -> None:
    import importlib

    from gui.panels import PANELS

    window = build_window(stack_settings)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(
            lambda: window.context.stack.status is not None, timeout=WAIT_MS
        )
        titles = [importlib.import_module(name).TITLE for name in PANELS]
        assert sorted(window.panels) == sorted([*titles, "Messages"])
        errors = [
            window.messages_list.item(i).text()
            for i in range(window.messages_list.count())
            if window.messages_list.item(i).text().startswith("error")
        ]
        assert errors == []
        window.save_screenshot(tmp_path / "every-panel.png")
    finally:
        window.close()
        window.context.bridge.wait_idle(WAIT_MS)


def test_opening_on_a_partly_stopped_stack_leaves_it_so(
    qtbot: QtBot, window: MainWindow, stack: Stack, bootstrap: str
) -> None:
    panel = _panel(window)
    model = window.context.stack
    assert stack.stop_broker(2)
    try:
        with qtbot.waitSignal(model.started, timeout=WAIT_MS):
            model.start()
        assert panel.state_of("broker-2") == "\u25bc down"
        assert panel.progress_label.text().startswith(
            "the stack is partly down (broker-2): left as it is"
        )
        assert not {n.name: n.up for n in stack.status().nodes}["broker-2"]

        # File > Start the embedded stack completes it.
        with qtbot.waitSignal(model.started, timeout=WAIT_MS):
            model.start(complete=True)
        assert {n.name: n.up for n in stack.status().nodes}["broker-2"]
        assert panel.progress_label.text() == "stack ready"
    finally:
        stack.start_broker(2)
        qtbot.waitUntil(lambda: _full_isr(bootstrap, 3), timeout=WAIT_MS)


def test_dashboard_shows_only_wall_panels_without_controls(
    qtbot: QtBot, stack: Stack, stack_settings: Settings, tmp_path: Path
) -> None:
    import importlib

    from gui.panels import PANELS

    window = build_window(stack_settings, dashboard=True)
    qtbot.addWidget(window)
    window.show()
    try:
        wall = [
            importlib.import_module(n).TITLE
            for n in PANELS
            if getattr(importlib.import_module(n), "DASHBOARD", False)
        ]
        assert "Stack" in wall
        assert sorted(window.panels) == sorted([*wall, "Messages"])
        assert not window.menuBar().isVisible()
        panel = _panel(window)
        assert not any(
            b.isVisible()
            for b in (panel.stop_button, panel.kill_button, panel.start_button)
        )
        qtbot.waitUntil(lambda: panel.table.rowCount() == 5, timeout=WAIT_MS)
        # The wall shares the height 3:2 between the cluster grid and lag.
        cluster, lag = window.docks["Cluster"].height(), window.docks["Lag"].height()
        assert 1.3 < cluster / lag < 1.7
        # Wide and short: the lag plots stand side by side, not in slivers.
        lag_panel = window.panels["Lag"]
        assert isinstance(lag_panel, LagPanel)
        plots = lag_panel.plots
        assert [plots.getItem(0, c) for c in range(3)] == [
            lag_panel.lag_plot,
            lag_panel.rate_plot,
            lag_panel.time_plot,
        ]
        window.save_screenshot(tmp_path / "dashboard.png")
    finally:
        window.close()
        window.context.bridge.wait_idle(WAIT_MS)
