"""The registry of panels the main window opens, and what each one is given."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from gui.bridge import Bridge
from gui.messages import Messages
from gui.stack_model import StackModel


@dataclass
class PanelContext:
    """What a panel gets: settings, the bridge, the stack and the message path.

    A panel module has `TITLE` and `create_panel(context) -> QWidget`, and may
    set `AREA` ("left" for the side, otherwise the main tab area) and
    `DASHBOARD = True` to be shown on the wall display. A panel widget with a
    `shutdown()` method has it called when the window closes: stop timers,
    threads and processes there.
    """

    settings: Settings
    bridge: Bridge
    messages: Messages
    stack: StackModel
    dashboard: bool = False
    read_only: bool = False
    start_flow: bool = False  # start the relay and the sample workload once up


# Module names, in the order their docks open. Later features append here.
PANELS: list[str] = [
    "gui.panels.stack_panel",
    "gui.panels.pipeline",
    "gui.panels.cluster",
    "gui.panels.consumers",
    "gui.panels.lag",
    "gui.panels.demos",
]
