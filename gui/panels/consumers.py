"""The Consumers view: groups of member processes, isolation side by side, live tail."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.kafka.consumers import ConsumerGroup, GroupEvent
from core.kafka.member import ISOLATION_LEVELS, SEMANTICS, MemberSpec
from core.kafka.tail import IsolationPair, PairUpdate, PaneRow, Tail, TailRecord
from core.kafka.txn_producer import TrainerProducer
from core.settings import Settings
from gui.bridge import Bridge
from gui.messages import Messages
from gui.panels import PanelContext
from gui.streams import BoundedTableModel, Pump

log = logging.getLogger(__name__)

TITLE = "Consumers"
AREA = "bottom"
TIMELINE_ROWS = 500
PANE_ROWS = 1000
STATUS_COLOURS = {"aborted": "#f4b6b6", "open": "#f7e7a1", "gap": "#d9d9d9"}
TAIL_COLUMNS = ["partition", "offset", "timestamp", "key", "value", "headers"]
# The groups this view runs, by id: the Lag view takes their isolation level
# and reset policy from here (Kafka itself cannot tell them).
RUNNING_GROUPS: dict[str, ConsumerGroup] = {}


class GroupEvents(QObject):
    """Carries group events from member reader threads to the GUI thread."""

    happened = Signal(object)  # GroupEvent


def _tail_cells(record: TailRecord) -> list[Any]:
    data = record.to_json()
    stamp = (
        (
            time.strftime("%H:%M:%S", time.localtime(record.timestamp_ms / 1000))
            + f".{record.timestamp_ms % 1000:03d}"
        )
        if record.timestamp_ms
        else None
    )
    headers = ", ".join(f"{k}={v}" for k, v in data["headers"])
    return [record.partition, record.offset, stamp, data["key"], data["value"], headers]


class GroupsTab(QWidget):
    """Start groups; watch members, assignment and the timeline; switch isolation."""

    def __init__(
        self,
        client: dict[str, Any],
        settings: Settings,
        bridge: Bridge,
        messages: Messages | None,
    ) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.bridge = bridge
        self.messages = messages
        self.groups: dict[str, ConsumerGroup] = {}
        self.events = GroupEvents()
        self.events.happened.connect(self._on_event)

        self.group_id = QLineEdit("studio-group")
        self.topics = QLineEdit()
        self.topics.setPlaceholderText("topic[, topic ...]")
        self.members = QSpinBox()
        self.members.setRange(1, 16)
        self.members.setValue(2)
        self.semantics = QComboBox()
        self.semantics.addItems(SEMANTICS)
        self.isolation = QComboBox()
        self.isolation.addItems(ISOLATION_LEVELS)
        self.output_topic = QLineEdit()
        self.output_topic.setPlaceholderText("exactly-once-kafka: output topic")
        start = QPushButton("Start group")
        start.clicked.connect(self.start_group)
        form = QFormLayout()
        for label, widget in (
            ("Group", self.group_id),
            ("Topics", self.topics),
            ("Members", self.members),
            ("Semantics", self.semantics),
            ("Isolation", self.isolation),
            ("Output topic", self.output_topic),
        ):
            form.addRow(label, widget)
        form.addRow(start)
        self.group_list = QListWidget()
        self.group_list.currentTextChanged.connect(lambda _: self.refresh_members())
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addLayout(form)
        left_layout.addWidget(QLabel("Running groups"))
        left_layout.addWidget(self.group_list, 1)

        self.member_table = QTableWidget(0, 6)
        self.member_table.setHorizontalHeaderLabels(
            ["member", "pid", "state", "isolation", "partitions", "processed"]
        )
        self.member_table.verticalHeader().setVisible(False)
        buttons = QHBoxLayout()
        for text, action in (
            ("Add member", self._add),
            ("Stop member", self._stop),
            ("Kill member", self._kill),
            ("Stop group", self._stop_group),
        ):
            button = QPushButton(text)
            button.clicked.connect(action)
            buttons.addWidget(button)
        self.switch_to = QComboBox()
        self.switch_to.addItems(ISOLATION_LEVELS)
        switch = QPushButton("Switch isolation (members restart)")
        switch.clicked.connect(self._switch)
        buttons.addWidget(self.switch_to)
        buttons.addWidget(switch)
        self.timeline = QListWidget()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.member_table, 2)
        right_layout.addLayout(buttons)
        right_layout.addWidget(QLabel("Timeline (rebalances, crashes, isolation)"))
        right_layout.addWidget(self.timeline, 3)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([350, 900])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    def current(self) -> ConsumerGroup | None:
        item = self.group_list.currentItem()
        return self.groups.get(item.text()) if item else None

    @Slot()
    def start_group(self) -> None:
        name = self.group_id.text().strip()
        topics = [t.strip() for t in self.topics.text().split(",") if t.strip()]
        try:
            spec = MemberSpec(
                client=self.client,
                group_id=name,
                topics=topics,
                semantics=self.semantics.currentText(),
                isolation=self.isolation.currentText(),
                output_topic=self.output_topic.text().strip() or None,
                settings=dataclasses.asdict(self.settings),
            )
            group = ConsumerGroup(
                spec, log_dir=self.settings.data_path / "logs" / "members"
            )
        except Exception as exc:  # noqa: BLE001 - a user's input error, shown
            self._error(exc, "Starting the group")
            return
        group.subscribe(self.events.happened.emit)
        self.groups[name] = group
        RUNNING_GROUPS[name] = group
        self.group_list.addItem(name)
        self.group_list.setCurrentRow(self.group_list.count() - 1)
        self.bridge.run(
            group.start,
            self.members.value(),
            on_error=lambda e: self._error(e, "Starting members"),
        )

    def _selected_member(self) -> str | None:
        row = self.member_table.currentRow()
        item = self.member_table.item(row, 0) if row >= 0 else None
        return item.text() if item else None

    def _act(self, doing: str, fn: Any, *args: Any) -> None:
        self.bridge.run(
            fn,
            *args,
            on_done=lambda _: self.refresh_members(),
            on_error=lambda e: self._error(e, doing),
        )

    @Slot()
    def _add(self) -> None:
        if (group := self.current()) is not None:
            self._act("Adding a member", group.add_member)

    @Slot()
    def _stop(self) -> None:
        if (group := self.current()) and (name := self._selected_member()):
            self._act(f"Stopping {name}", group.stop_member, name)

    @Slot()
    def _kill(self) -> None:
        if (group := self.current()) and (name := self._selected_member()):
            self._act(f"Killing {name}", group.kill_member, name)

    @Slot()
    def _stop_group(self) -> None:
        if (group := self.current()) is not None:
            self._act(f"Stopping {group.group_id}", group.stop)

    @Slot()
    def _switch(self) -> None:
        if (group := self.current()) is not None:
            self._act(
                "Switching isolation", group.set_isolation, self.switch_to.currentText()
            )

    @Slot(object)
    def _on_event(self, event: GroupEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        item = QListWidgetItem(f"{stamp} {event.group} {event.kind}: {event.message}")
        if event.kind in ("member-crashed", "fatal", "aborted", "failed"):
            item.setBackground(QBrush(QColor(STATUS_COLOURS["aborted"])))
        elif event.kind in ("rebalance", "isolation-changed"):
            item.setBackground(QBrush(QColor(STATUS_COLOURS["open"])))
        self.timeline.addItem(item)
        while self.timeline.count() > TIMELINE_ROWS:
            self.timeline.takeItem(0)
        self.timeline.scrollToBottom()
        self.refresh_members()

    def refresh_members(self) -> None:
        group = self.current()
        members = group.members() if group else []
        self.member_table.setRowCount(len(members))
        for row, m in enumerate(members):
            state = "up" if m.alive else ("crashed" if m.exit_code == -9 else "stopped")
            parts = ", ".join(f"{t}-{p}" for t, p in m.partitions)
            for col, value in enumerate(
                [m.name, m.pid, state, m.isolation, parts, m.processed]
            ):
                self.member_table.setItem(row, col, QTableWidgetItem(str(value)))

    def _error(self, error: BaseException, doing: str) -> None:
        if self.messages is not None:
            self.messages.error(error, doing)
        else:
            log.warning("%s failed: %s", doing, error)

    def close_all(self) -> None:
        for name, group in self.groups.items():
            group.close()
            if RUNNING_GROUPS.get(name) is group:
                del RUNNING_GROUPS[name]


class IsolationTab(QWidget):
    """One topic in two panes; a transaction a trainer commits or aborts."""

    def __init__(
        self, client: dict[str, Any], bridge: Bridge, messages: Messages | None
    ) -> None:
        super().__init__()
        self.client = client
        self.bridge = bridge
        self.messages = messages
        self.pump: Pump | None = None
        self.producer: TrainerProducer | None = None
        self._open_items: dict[tuple[int, int], QListWidgetItem] = {}

        self.topic = QLineEdit()
        self.topic.setPlaceholderText("topic")
        watch = QPushButton("Watch")
        watch.clicked.connect(self.watch)
        self.trainer_status = QLabel("no transaction")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Topic"))
        bar.addWidget(self.topic)
        bar.addWidget(watch)
        for text, action in (
            ("Send 5 in a transaction", self._send),
            ("Commit", self._commit),
            ("Abort", self._abort),
        ):
            button = QPushButton(text)
            button.clicked.connect(action)
            bar.addWidget(button)
        bar.addWidget(self.trainer_status)
        self.committed = QListWidget()
        self.uncommitted = QListWidget()
        panes = QSplitter()
        for title, pane in (
            ("read_committed", self.committed),
            ("read_uncommitted", self.uncommitted),
        ):
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.addWidget(QLabel(title))
            box_layout.addWidget(pane)
            panes.addWidget(box)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(panes, 1)

    @Slot()
    def watch(self) -> None:
        self.stop()
        topic = self.topic.text().strip()
        self.committed.clear()
        self.uncommitted.clear()
        self._open_items.clear()
        try:
            pair = IsolationPair(self.client, topic)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(exc, f"Watching {topic}")
            return
        self.pump = Pump(lambda: [pair.poll(0.1)], pair.close, f"isolation-{topic}")
        self.pump.batch.connect(self._on_updates)
        self.pump.start()

    @Slot(object)
    def _on_updates(self, updates: list[PairUpdate]) -> None:
        for update in updates:
            for row in update.committed:
                self._add(self.committed, row)
            for row in update.uncommitted:
                self._add(self.uncommitted, row)
            for row in update.settled:
                item = self._open_items.pop((row.partition, row.offset), None)
                if item is not None:
                    self._style(item, row)

    def _add(self, pane: QListWidget, row: PaneRow) -> None:
        item = QListWidgetItem()
        self._style(item, row)
        pane.addItem(item)
        if row.status == "open":
            self._open_items[(row.partition, row.offset)] = item
        while pane.count() > PANE_ROWS:
            pane.takeItem(0)

    @staticmethod
    def _style(item: QListWidgetItem, row: PaneRow) -> None:
        if row.kind == "gap":
            item.setText(
                f"p{row.partition} offsets {row.offset}-{row.until}: "
                "transaction marker / aborted, not messages"
            )
            item.setForeground(QBrush(QColor("#666666")))
            item.setBackground(QBrush(QColor(STATUS_COLOURS["gap"])))
            return
        value = row.record.to_json()["value"] if row.record else None
        item.setText(f"p{row.partition}@{row.offset} {value}  [{row.status}]")
        colour = STATUS_COLOURS.get(row.status)
        item.setBackground(QBrush(QColor(colour)) if colour else QBrush())

    def _trainer(self) -> TrainerProducer:
        topic = self.topic.text().strip()
        if self.producer is None or self.producer.topic != topic:
            if self.producer is not None:
                self.producer.close()
            self.producer = TrainerProducer(self.client, topic)
        return self.producer

    @Slot()
    def _send(self) -> None:
        self.bridge.run(
            lambda: self._trainer().send(5),
            on_done=lambda values: self.trainer_status.setText(
                f"open transaction: {', '.join(values)}"
            ),
            on_error=lambda e: self._error(e, "Sending in a transaction"),
        )

    @Slot()
    def _commit(self) -> None:
        self.bridge.run(
            lambda: self._trainer().commit(),
            on_done=lambda _: self.trainer_status.setText("committed"),
            on_error=lambda e: self._error(e, "Committing"),
        )

    @Slot()
    def _abort(self) -> None:
        self.bridge.run(
            lambda: self._trainer().abort(),
            on_done=lambda _: self.trainer_status.setText("aborted"),
            on_error=lambda e: self._error(e, "Aborting"),
        )

    def _error(self, error: BaseException, doing: str) -> None:
        if self.messages is not None:
            self.messages.error(error, doing)

    def stop(self) -> None:
        if self.pump is not None:
            self.pump.stop()
            self.pump = None

    def close_all(self) -> None:
        self.stop()
        if self.producer is not None:
            self.producer.close()
            self.producer = None


class TailTab(QWidget):
    """Every record of a topic as it arrives, the newest few thousand kept."""

    def __init__(self, client: dict[str, Any], messages: Messages | None) -> None:
        super().__init__()
        self.client = client
        self.messages = messages
        self.pump: Pump | None = None
        self.model = BoundedTableModel(TAIL_COLUMNS, _tail_cells)
        self.topic = QLineEdit()
        self.topic.setPlaceholderText("topic")
        self.group = QLineEdit()
        self.group.setPlaceholderText("group (empty: no group)")
        self.isolation = QComboBox()
        self.isolation.addItems(ISOLATION_LEVELS)
        start = QPushButton("Tail")
        start.clicked.connect(self.tail)
        stop = QPushButton("Stop")
        stop.clicked.connect(self.stop)
        self.count = QLabel("0 records")
        bar = QHBoxLayout()
        for widget in (self.topic, self.group, self.isolation, start, stop, self.count):
            bar.addWidget(widget)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().setVisible(False)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self._follow = QTimer(self)
        self._follow.setInterval(200)
        self._follow.timeout.connect(self.view.scrollToBottom)

    @Slot()
    def tail(self) -> None:
        self.stop()
        self.model.clear()
        try:
            tail = Tail(
                self.client,
                [self.topic.text().strip()],
                isolation=self.isolation.currentText(),
                group_id=self.group.text().strip() or None,
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user
            if self.messages is not None:
                self.messages.error(exc, "Starting the tail")
            return
        self.pump = Pump(lambda: tail.poll(2000, 0.05), tail.close, "tail")
        self.pump.batch.connect(self._on_batch)
        self.pump.start()
        self._follow.start()

    @Slot(object)
    def _on_batch(self, records: list[TailRecord]) -> None:
        self.model.extend(records)
        self.count.setText(f"{self.model.total} records")

    @Slot()
    def stop(self) -> None:
        self._follow.stop()
        if self.pump is not None:
            self.pump.stop()
            self.pump = None


class ConsumersPanel(QTabWidget):
    """Groups, isolation side by side and the live tail, as tabs."""

    def __init__(
        self,
        client: dict[str, Any],
        settings: Settings,
        bridge: Bridge,
        messages: Messages | None = None,
    ) -> None:
        super().__init__()
        self.groups = GroupsTab(client, settings, bridge, messages)
        self.isolation = IsolationTab(client, bridge, messages)
        self.tail = TailTab(client, messages)
        self.addTab(self.groups, "Groups")
        self.addTab(self.isolation, "Isolation side by side")
        self.addTab(self.tail, "Live tail")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)

    def shutdown(self) -> None:
        """Stop readers and member processes (blocking; call when closing)."""
        self.tail.stop()
        self.isolation.close_all()
        self.groups.close_all()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.window().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Stop the readers and the member processes when the window closes."""
        if event.type() == QEvent.Type.Close and watched is self.window():
            self.shutdown()
        return False


def create_panel(context: PanelContext) -> QWidget:
    client = {"bootstrap.servers": context.settings.bootstrap_servers}
    return ConsumersPanel(client, context.settings, context.bridge, context.messages)
