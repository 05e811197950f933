"""The Stack panel: every Kafka node and the H2 server, with stop, kill and start."""

from __future__ import annotations

import logging

from PySide6.QtCore import Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.stack.stack import NodeStatus, StackStatus
from gui.panels import PanelContext
from gui.stack_model import StackModel

log = logging.getLogger(__name__)

TITLE = "Stack"
AREA = "left"
DASHBOARD = True  # shown on the wall display, read-only
# The node names say the role (controller, broker-N, h2): no column for it, so
# the rack still fits the dock's default width.
COLUMNS = ("Node", "ID", "State", "PID", "Port", "Rack")
UP_COLOUR = QColor("#2e7d32")
DOWN_COLOUR = QColor("#c62828")


class StackPanel(QWidget):
    """A table of nodes (id, state, pid, port, rack) and per-broker actions."""

    def __init__(
        self, stack: StackModel, read_only: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._stack = stack
        self._read_only = read_only
        self._nodes: list[NodeStatus] = []

        self.summary = QLabel("no stack status yet")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("stop the selected broker cleanly (SIGTERM)")
        self.kill_button = QPushButton("Kill")
        self.kill_button.setToolTip("kill the selected broker at once (SIGKILL)")
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("start the selected broker again")
        self.stop_button.clicked.connect(self._on_stop)
        self.kill_button.clicked.connect(self._on_kill)
        self.start_button.clicked.connect(self._on_start)
        buttons = QHBoxLayout()
        for button in (self.stop_button, self.kill_button, self.start_button):
            buttons.addWidget(button)
            button.setVisible(not read_only)
        buttons.addStretch(1)

        self.progress_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 0)  # busy indicator
        self.progress_bar.setVisible(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)

        stack.changed.connect(self._on_changed)
        stack.progressed.connect(self._on_progressed)
        stack.busy_changed.connect(self._on_busy_changed)
        if stack.status is not None:
            self._on_changed(stack.status)
        self._on_busy_changed(stack.busy)
        self._update_buttons()

    def row_of(self, name: str) -> int:
        """The table row showing node ``name``, or -1."""
        return next((i for i, n in enumerate(self._nodes) if n.name == name), -1)

    def state_of(self, name: str) -> str | None:
        row = self.row_of(name)
        if row < 0:
            return None
        item = self.table.item(row, COLUMNS.index("State"))
        return item.text() if item else None

    def select_node(self, name: str) -> None:
        self.table.selectRow(self.row_of(name))

    @Slot(object)
    def _on_changed(self, status: object) -> None:
        assert isinstance(status, StackStatus)
        selected = self._selected()
        self._nodes = list(status.nodes)
        self.table.setRowCount(len(self._nodes))
        for row, node in enumerate(self._nodes):
            values = (
                node.name,
                "" if node.node_id is None else str(node.node_id),
                "up" if node.up else "down",
                str(node.pid) if node.up and node.pid else "-",
                str(node.port),
                node.rack or "-",
            )
            for column, value in enumerate(values):
                item = self.table.item(row, column)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, column, item)
                item.setText(value)
                if column == 0:
                    item.setToolTip(f"role: {node.role}")
                if column == COLUMNS.index("State"):
                    item.setForeground(QBrush(UP_COLOUR if node.up else DOWN_COLOUR))
                    item.setText(("\u25b2 " if node.up else "\u25bc ") + value)
        if selected is not None:
            self.select_node(selected.name)

        brokers = [n for n in status.nodes if n.role == "broker"]
        up = sum(1 for n in brokers if n.up)
        if status.nodes:
            self.summary.setText(
                f"{up} of {len(brokers)} brokers up \u2014 bootstrap "
                f"{status.bootstrap_servers} \u2014 data {status.data_dir}"
            )
        else:
            self.summary.setText("no embedded stack yet")
        self._update_buttons()

    def _selected(self) -> NodeStatus | None:
        rows = {index.row() for index in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self._nodes[row] if row < len(self._nodes) else None

    @Slot()
    def _update_buttons(self) -> None:
        node = self._selected()
        is_broker = node is not None and node.role == "broker"
        self.stop_button.setEnabled(is_broker and node is not None and node.up)
        self.kill_button.setEnabled(is_broker and node is not None and node.up)
        self.start_button.setEnabled(is_broker and node is not None and not node.up)
        if node is not None and not is_broker:
            tip = (
                "only brokers are stopped and started here; the stack needs its "
                "controller and H2 (use `cdc-studio stack down` to stop them all)"
            )
            for button in (self.stop_button, self.kill_button, self.start_button):
                button.setToolTip(tip)

    def _broker_id(self) -> int | None:
        node = self._selected()
        return node.node_id if node is not None and node.role == "broker" else None

    @Slot()
    def _on_stop(self) -> None:
        broker = self._broker_id()
        if broker is not None:
            self._stack.stop_broker(broker)

    @Slot()
    def _on_kill(self) -> None:
        broker = self._broker_id()
        if broker is not None:
            self._stack.kill_broker(broker)

    @Slot()
    def _on_start(self) -> None:
        broker = self._broker_id()
        if broker is not None:
            self._stack.start_broker(broker)

    @Slot(str)
    def _on_progressed(self, message: str) -> None:
        self.progress_label.setText(message)

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)


def create_panel(context: PanelContext) -> QWidget:
    return StackPanel(context.stack, read_only=context.read_only or context.dashboard)
