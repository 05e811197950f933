"""Starts the GUI: the application object, the main window and the embedded stack."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from core.settings import Settings
from gui.bridge import Bridge
from gui.main_window import MainWindow
from gui.messages import Messages
from gui.panels import PanelContext
from gui.stack_model import StackModel
from gui.workarounds import GuiThreadCollector

log = logging.getLogger(__name__)
_qt_log = logging.getLogger(__name__ + ".qt")

DASHBOARD_SCALE = 1.6
FLOW_BEFORE_SCREENSHOT_MS = 25_000  # the relay starts and changes reach the view
# Qt's own notes that say nothing to a user of this application.
_QUIET_QT = ("This plugin does not support propagateSizeHints()",)


def _route_qt_messages() -> None:
    """Send Qt's messages to our log instead of stderr, dropping known noise."""

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        if message in _QUIET_QT:
            return
        level = logging.WARNING if kind != QtMsgType.QtDebugMsg else logging.DEBUG
        if kind == QtMsgType.QtInfoMsg:
            level = logging.INFO
        _qt_log.log(level, "%s", message)

    qInstallMessageHandler(handler)


def build_window(
    settings: Settings,
    dashboard: bool = False,
    read_only: bool = False,
    panels: list[str] | None = None,
    start_flow: bool = False,
) -> MainWindow:
    """The main window with every panel (or only ``panels``), on a QApplication."""
    bridge = Bridge()
    messages = Messages()
    stack = StackModel(settings, bridge, messages)
    context = PanelContext(
        settings, bridge, messages, stack, dashboard, read_only, start_flow
    )
    window = MainWindow(context, panels)
    bridge.setParent(window)
    stack.setParent(window)
    return window


def run_gui(
    settings: Settings,
    screenshot: Path | None = None,
    start_stack: bool = True,
    dashboard: bool = False,
    workload: bool = False,
) -> int:
    """Open the main window; start the embedded stack unless told not to.

    With ``workload`` the relay and the shop workload start once the stack is
    up, so changes flow from the first minute. With ``screenshot`` the window
    is saved to that PNG once the stack is ready (or failed; with a workload,
    once changes have flowed for a while), and the application quits: for
    headless machines and docs.
    """
    if (
        not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        # No screen: show what the window would show as a picture, then quit.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        screenshot = (
            screenshot or settings.data_path / "screenshots" / "main-window.png"
        )
        print(
            "no display found: running offscreen; the window will be saved to "
            f"{screenshot} {'once the stack is up' if start_stack else 'at once'}"
        )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Kafka CDC Studio")
    _route_qt_messages()
    collector = GuiThreadCollector()
    collector.start()
    if dashboard:
        # Large type everywhere, headers and tooltips included, for a wall.
        font = QFont(QApplication.font())
        font.setPointSizeF(font.pointSizeF() * DASHBOARD_SCALE)
        QApplication.setFont(font)
    window = build_window(settings, dashboard=dashboard, start_flow=workload)
    if dashboard:
        window.showFullScreen()
    else:
        window.show()
    log.info("GUI opened on data folder %s", settings.data_path)

    stack = window.context.stack
    if screenshot is not None:

        def shoot(*_: object) -> None:
            delay_ms = 1500
            if workload and "Pipeline" in window.docks:
                window.docks["Pipeline"].raise_()
                delay_ms = FLOW_BEFORE_SCREENSHOT_MS
            QTimer.singleShot(delay_ms, lambda: _shoot_and_quit(window, screenshot))

        if start_stack:
            stack.started.connect(shoot)
            stack.start_failed.connect(shoot)
        else:
            shoot()
    if start_stack:
        stack.start()
    code = app.exec()
    window.context.bridge.wait_idle(5_000)
    collector.stop()
    return int(code)


def _shoot_and_quit(window: MainWindow, path: Path) -> None:
    window.save_screenshot(path)
    print(f"screenshot saved to {path}")
    QApplication.quit()
