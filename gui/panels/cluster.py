"""The Cluster view: brokers x partitions per topic, leader balance, event timeline."""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QEvent, QItemSelection, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.kafka.cluster import ClusterSnapshot, counted
from core.kafka.inspector import ClusterInspector
from core.kafka.timeline import ClusterEvent, readable_batch
from gui.bridge import Bridge
from gui.cluster_connection import ConnectionChooser
from gui.cluster_grid import LEGEND, PartitionGridModel, TopicListModel
from gui.messages import Messages
from gui.panels import PanelContext

log = logging.getLogger(__name__)

TITLE = "Cluster"
AREA = "right"
DASHBOARD = True
REFRESH_MS = 1000
TIMELINE_ROWS = 500
# More partition events than this in one refresh are summarised (see readable_batch).
DETAIL_LIMIT = 100


class ClusterRefresher(QObject):
    """Refreshes an inspector off the GUI thread, one refresh at a time."""

    refreshed = Signal(object, object)  # ClusterSnapshot, list[ClusterEvent]
    failed = Signal(str)

    def __init__(
        self, inspector: ClusterInspector, bridge: Bridge, interval_ms: int = REFRESH_MS
    ) -> None:
        super().__init__()
        self.inspector = inspector
        self._bridge = bridge
        self._in_flight = False
        self._generation = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.refresh)

    def start(self) -> None:
        self.refresh()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def set_inspector(self, inspector: ClusterInspector) -> None:
        """Watch another cluster; an answer still coming from the old one is dropped."""
        old, self.inspector = self.inspector, inspector
        self._generation += 1
        self._in_flight = False
        self._bridge.run(old.close)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        if self._in_flight:
            return  # the cluster is slower than the timer: skip a beat
        self._in_flight = True
        generation = self._generation
        self._bridge.run(
            self._refresh,
            self.inspector,
            on_done=lambda result: self._on_done(generation, result),
            on_error=lambda error: self._on_error(generation, error),
        )

    @staticmethod
    def _refresh(
        inspector: ClusterInspector,
    ) -> tuple[ClusterSnapshot, list[ClusterEvent]]:
        """On the worker thread: refresh, and count the flags there too."""
        snapshot, events = inspector.refresh()
        snapshot.summary()
        return snapshot, events

    def _on_done(self, generation: int, result: Any) -> None:
        if generation != self._generation:
            return
        self._in_flight = False
        snapshot, events = result
        self.refreshed.emit(snapshot, events)

    def _on_error(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._in_flight = False
        self.failed.emit(str(error.args[0]) if error.args else str(error))


class ClusterPanel(QWidget):
    """Topic list with filters, the replica grid, leader counts and the timeline."""

    DASHBOARD_WEIGHT = 3  # share of the wall's height (main_window)

    def __init__(
        self,
        refresher: ClusterRefresher,
        bridge: Bridge,
        messages: Messages | None = None,
        *,
        read_only: bool = False,
        dashboard: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.refresher = refresher
        self._bridge = bridge
        self._messages = messages
        self._editable = not (read_only or dashboard)
        self._locked = read_only or dashboard  # whatever the connection allows
        self.snapshot: ClusterSnapshot | None = None
        self.refreshes = 0

        self.summary = QLabel("reading the cluster...")
        self.balance = QLabel("")
        self.legend = QLabel(LEGEND)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter topics")
        self.problems_only = QCheckBox("only topics with problems")
        self.topics = TopicListModel()
        self.topic_view = QListView()
        self.topic_view.setModel(self.topics)
        self.topic_view.setUniformItemSizes(True)
        self.topic_view.setSelectionMode(
            QAbstractItemView.SelectionMode.SingleSelection
        )

        self.grid = PartitionGridModel()
        self.grid_view = QTableView()
        self.grid_view.setModel(self.grid)
        self.grid_view.verticalHeader().setVisible(False)
        self.grid_view.verticalHeader().setDefaultSectionSize(22)
        self.grid_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.grid_view.setSelectionBehavior(
            QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.grid_view.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.Interactive
        )

        self.timeline = QListWidget()
        self.timeline.setUniformItemSizes(True)

        self.elect_button = QPushButton("Elect preferred leaders")
        self.elect_button.setToolTip("move every leader back to its preferred replica")
        self.create_button = QPushButton("Create topic...")
        self.create_button.setToolTip("a new topic with partitions and replication")
        self.config_button = QPushButton("Set config...")
        self.config_button.setToolTip("change a config of the selected topic")
        self.delete_button = QPushButton("Delete topic...")
        self.delete_button.setToolTip("delete the selected topic, after confirmation")
        self._layout()

        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.problems_only.toggled.connect(self._on_filter_changed)
        self.topic_view.selectionModel().selectionChanged.connect(
            self._on_topic_selected
        )
        self.elect_button.clicked.connect(self._on_elect)
        self.delete_button.clicked.connect(self._on_delete)
        self.create_button.clicked.connect(self._on_create)
        self.config_button.clicked.connect(self._on_set_config)
        refresher.refreshed.connect(self._on_refreshed)
        refresher.failed.connect(self._on_failed)

    def _layout(self) -> None:
        left = QWidget()
        left_box = QVBoxLayout(left)
        left_box.setContentsMargins(0, 0, 0, 0)
        left_box.addWidget(self.filter_edit)
        left_box.addWidget(self.problems_only)
        left_box.addWidget(self.topic_view)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.grid_view)
        right.addWidget(self.timeline)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)

        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setStretchFactor(1, 4)

        box = QVBoxLayout(self)
        self.header = QHBoxLayout()  # create_panel puts the connection chooser here
        box.addLayout(self.header)
        box.addWidget(self.summary)
        box.addWidget(self.balance)
        box.addWidget(self.legend)
        box.addWidget(body, 1)
        buttons = QHBoxLayout()
        for button in self._buttons():
            buttons.addWidget(button)
        buttons.addStretch(1)
        box.addLayout(buttons)
        self._show_buttons()

    def _buttons(self) -> tuple[QPushButton, ...]:
        return (
            self.elect_button,
            self.create_button,
            self.config_button,
            self.delete_button,
        )

    def _show_buttons(self) -> None:
        for button in self._buttons():
            button.setVisible(self._editable)

    def shutdown(self) -> None:
        """Stop refreshing (the window is closing); the client goes off-thread."""
        self.refresher.stop()
        self._bridge.run(self.refresher.inspector.close)

    @Slot(object, bool)
    def set_connection(self, inspector: ClusterInspector, read_only: bool) -> None:
        """Show another cluster (a connection profile); read-only hides writes."""
        self._editable = not (read_only or self._locked)
        self._show_buttons()
        self.snapshot = None
        self.timeline.clear()
        self.summary.setText(f"connecting to {inspector.bootstrap}...")
        self.refresher.set_inspector(inspector)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        """Rows follow the font (the dashboard's large type)."""
        if event.type() == QEvent.Type.FontChange:
            height = self.fontMetrics().height() + 8
            self.grid_view.verticalHeader().setDefaultSectionSize(height)
        super().changeEvent(event)

    # -- refresh ---------------------------------------------------------

    def selected_topic(self) -> str | None:
        rows = self.topic_view.selectionModel().selectedRows()
        return str(rows[0].data(Qt.ItemDataRole.UserRole)) if rows else None

    @Slot(object, object)
    def _on_refreshed(
        self, snapshot: ClusterSnapshot, events: list[ClusterEvent]
    ) -> None:
        self.snapshot = snapshot
        self.refreshes += 1
        selected = self.selected_topic()
        self.topics.set_snapshot(snapshot)
        if selected in self.topics.names():
            row = self.topics.names().index(selected)
            self.topic_view.setCurrentIndex(self.topics.index(row))
        self._show_grid()
        self._show_summary(snapshot)
        if events:
            stamp = time.strftime("%H:%M:%S", time.localtime(events[-1].at))
            lines = readable_batch(events, self.filter_edit.text(), DETAIL_LIMIT)
            for line in lines[-TIMELINE_ROWS:]:
                self.timeline.insertItem(0, f"{stamp}  {line}")
        while self.timeline.count() > TIMELINE_ROWS:
            self.timeline.takeItem(self.timeline.count() - 1)

    def _show_summary(self, snapshot: ClusterSnapshot) -> None:
        s = snapshot.summary()
        self.summary.setText(
            f"{counted(s['brokers'], 'broker')}, {counted(s['topics'], 'topic')}, "
            f"{counted(s['partitions'], 'partition')}: {s['offline']} offline, "
            f"{s['under_replicated']} under-replicated, "
            f"{s['under_min_isr']} under min ISR, "
            f"{s['leader_not_preferred']} not on their preferred leader"
        )
        counts = "   ".join(
            f"broker {b}: {n}" for b, n in snapshot.leader_counts().items()
        )
        self.balance.setText(
            f"leaders per broker: {counts}   skew {snapshot.leader_skew():.0%}"
        )

    def _show_grid(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        selected = self.selected_topic()
        names = [selected] if selected else self.topics.names()
        partitions = [p for name in names for p in snapshot.topics[name].partitions]
        brokers = set(snapshot.broker_ids)
        for p in partitions:
            brokers.update(p.replicas)
        self.grid.set_partitions(partitions, sorted(brokers))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.summary.setText(f"cluster unreachable: {message}")

    @Slot(str)
    def on_connection_refused(self, message: str) -> None:
        self.summary.setText(f"not connected: {message}")

    @Slot()
    def _on_filter_changed(self) -> None:
        self.topics.set_filter(self.filter_edit.text(), self.problems_only.isChecked())
        self._show_grid()

    @Slot(QItemSelection, QItemSelection)
    def _on_topic_selected(self, *_: object) -> None:
        self._show_grid()

    # -- actions ---------------------------------------------------------

    def _report(self, doing: str) -> Any:
        def failed(error: BaseException) -> None:
            if self._messages is not None:
                self._messages.error(error, doing)
            else:
                log.warning("%s failed: %s", doing, error)

        return failed

    @Slot()
    def _on_elect(self) -> None:
        self._bridge.run(
            self.refresher.inspector.elect_preferred_leaders,
            on_done=lambda _: self.refresher.refresh(),
            on_error=self._report("preferred leader election"),
        )

    @Slot()
    def _on_delete(self) -> None:
        topic = self.selected_topic()
        if topic is None:
            return
        answer = QMessageBox.question(
            self, "Delete topic", f"Delete topic {topic} and all its records?"
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._bridge.run(
            self.refresher.inspector.delete_topic,
            topic,
            on_done=lambda _: self.refresher.refresh(),
            on_error=self._report(f"deleting topic {topic}"),
        )

    def create_topic(self, name: str, partitions: int, replication_factor: int) -> None:
        """Create a topic off the GUI thread; the next refresh shows it."""
        self._bridge.run(
            self.refresher.inspector.create_topic,
            name,
            partitions,
            replication_factor,
            on_done=lambda _: self.refresher.refresh(),
            on_error=self._report(f"creating topic {name}"),
        )

    def set_config(self, topic: str, key: str, value: str | None) -> None:
        """Set (None: reset) one config of ``topic`` off the GUI thread."""
        self._bridge.run(
            self.refresher.inspector.alter_topic_config,
            topic,
            {key: value},
            on_done=lambda _: self.refresher.refresh(),
            on_error=self._report(f"changing {key} of {topic}"),
        )

    @Slot()
    def _on_create(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Create topic")
        name = QLineEdit()
        partitions = QSpinBox()
        partitions.setRange(1, 10_000)
        partitions.setValue(3)
        replication = QSpinBox()
        brokers = len(self.snapshot.brokers) if self.snapshot else 1
        replication.setRange(1, max(1, brokers))
        replication.setValue(min(3, max(1, brokers)))
        form = QFormLayout(dialog)
        form.addRow("Name", name)
        form.addRow("Partitions", partitions)
        form.addRow("Replication factor", replication)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        form.addRow(buttons)
        if dialog.exec() == QDialog.DialogCode.Accepted and name.text().strip():
            self.create_topic(
                name.text().strip(), partitions.value(), replication.value()
            )

    @Slot()
    def _on_set_config(self) -> None:
        topic = self.selected_topic()
        if topic is None:
            return
        text, ok = QInputDialog.getText(
            self, "Set config", f"KEY=VALUE for {topic} (KEY= resets it):"
        )
        key, sep, value = text.partition("=")
        if ok and sep and key.strip():
            self.set_config(topic, key.strip(), value.strip() or None)


def create_panel(context: PanelContext) -> QWidget:
    inspector = ClusterInspector.for_settings(
        context.settings, read_only=context.read_only, timeout=5
    )
    refresher = ClusterRefresher(inspector, context.bridge)
    panel = ClusterPanel(
        refresher,
        context.bridge,
        context.messages,
        read_only=context.read_only,
        dashboard=context.dashboard,
    )
    refresher.setParent(panel)
    chooser = ConnectionChooser(context.settings)
    chooser.chosen.connect(panel.set_connection)
    chooser.refused.connect(panel.on_connection_refused)
    panel.header.addWidget(chooser)
    refresher.start()
    return panel
