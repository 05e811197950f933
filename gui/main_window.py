"""The main window: dockable panels, menus, and the messages the user must see."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QWidget,
)

from gui.messages import Message
from gui.panels import PANELS, PanelContext

log = logging.getLogger(__name__)

AREAS = {
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "top": Qt.DockWidgetArea.TopDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
}


class MainWindow(QMainWindow):
    """Holds every panel as a dock; later features add theirs through `PANELS`."""

    def __init__(self, context: PanelContext, panels: list[str] | None = None) -> None:
        super().__init__()
        self.context = context
        self.panels: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._first_dock: dict[str, QDockWidget] = {}
        self.setWindowTitle("Kafka CDC Studio")
        self.setDockNestingEnabled(True)
        self.resize(1400, 860)
        if context.dashboard:
            self.menuBar().setVisible(False)

        self.messages_list = QListWidget()
        self.messages_list.setWordWrap(True)
        self._view_menu = self._build_menus()
        self._messages_dock = self.add_panel("Messages", self.messages_list, "bottom")
        for name in PANELS if panels is None else panels:
            self._open_panel(name)
        self._sized = False

        self.stack_label = QLabel("stack: unknown")
        self.statusBar().addPermanentWidget(self.stack_label)
        context.stack.changed.connect(self._on_stack_changed)
        context.stack.progressed.connect(self._on_progressed)
        context.messages.attach(self.show_message)

    def _build_menus(self) -> object:
        file_menu = self.menuBar().addMenu("&File")
        if not (self.context.dashboard or self.context.read_only):
            start = QAction("Start the embedded stack", self)
            start.triggered.connect(lambda: self.context.stack.start(complete=True))
            file_menu.addAction(start)
        quit_action = QAction("&Quit (the stack keeps running)", self)
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        return self.menuBar().addMenu("&View")

    def add_panel(
        self, title: str, widget: QWidget, area: str = "right"
    ) -> QDockWidget:
        """Put ``widget`` in a dock titled ``title``, listed in the View menu.

        Docks of one area share it as tabs, in the order they were added; on a
        dashboard they sit side by side instead, all visible at once.
        """
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        if self.context.dashboard:
            dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        first = self._first_dock.setdefault(area, dock)
        if first is dock or self.context.dashboard:
            self.addDockWidget(AREAS.get(area, AREAS["right"]), dock)
        else:
            self.tabifyDockWidget(first, dock)
            first.raise_()
        self._view_menu.addAction(dock.toggleViewAction())  # type: ignore[attr-defined]
        self.panels[title] = widget
        self.docks[title] = dock
        return dock

    def _open_panel(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
            if self.context.dashboard and not getattr(module, "DASHBOARD", False):
                return  # the wall shows only panels made for it
            widget = module.create_panel(self.context)
        except Exception as exc:  # noqa: BLE001 - one broken panel must not stop the rest
            self.context.messages.error(exc, f"opening panel {name}")
            return
        # Feature panels share the main tab area; the left side is the Stack's
        # and the bottom holds the messages.
        area = "left" if getattr(module, "AREA", "right") == "left" else "right"
        self.add_panel(module.TITLE, widget, area)

    def save_screenshot(self, path: Path) -> Path:
        """Render the window to a PNG file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        log.info("screenshot saved to %s", path)
        return path

    def show_message(self, message: Message) -> None:
        prefix = {logging.ERROR: "error", logging.WARNING: "warning"}.get(
            message.level, "info"
        )
        item = QListWidgetItem(f"{prefix}: {message.full_text()}")
        if message.level >= logging.ERROR:
            item.setForeground(Qt.GlobalColor.red)
        self.messages_list.addItem(item)
        self.messages_list.scrollToBottom()
        self.statusBar().showMessage(message.text, 10_000)

    @Slot(object)
    def _on_stack_changed(self, status: object) -> None:
        nodes = getattr(status, "nodes", [])
        brokers = [n for n in nodes if n.role == "broker"]
        up = sum(1 for n in brokers if n.up)
        self.stack_label.setText(
            f"stack: {up}/{len(brokers)} brokers up" if nodes else "stack: not started"
        )

    @Slot(str)
    def _on_progressed(self, message: str) -> None:
        self.statusBar().showMessage(message, 5_000)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._sized:  # docks have their sizes only once the window is shown
            self._sized = True
            self.resizeDocks([self._messages_dock], [110], Qt.Orientation.Vertical)
            left = self._first_dock.get("left")
            if left is not None and not self.context.dashboard:
                self.resizeDocks([left], [440], Qt.Orientation.Horizontal)
            if self.context.dashboard:
                self._size_wall()

    def _size_wall(self) -> None:
        """On the wall, panels stacked on the right share the height by their
        ``DASHBOARD_WEIGHT`` (the cluster grid needs rows more than the lag
        plots do), and the side panel keeps only the width it needs."""
        right = [
            (dock, weight)
            for title, dock in self.docks.items()
            if (weight := getattr(self.panels[title], "DASHBOARD_WEIGHT", 0))
        ]
        if len(right) > 1:
            height = max(self.height() - 160, 200)
            total = sum(weight for _, weight in right)
            self.resizeDocks(
                [dock for dock, _ in right],
                [height * weight // total for _, weight in right],
                Qt.Orientation.Vertical,
            )
        left = self._first_dock.get("left")
        if left is not None:
            self.resizeDocks([left], [360], Qt.Orientation.Horizontal)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.context.stack.stop_polling()
        for title, panel in self.panels.items():
            shutdown = getattr(panel, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:
                    log.exception("panel %s did not shut down cleanly", title)
        log.info(
            "window closed; the embedded stack keeps running "
            "(stop it with `cdc-studio stack down`)"
        )
        super().closeEvent(event)
