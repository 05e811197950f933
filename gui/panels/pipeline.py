"""The Pipeline view: capture rules, table -> outbox -> relay -> topic, live changes."""

from __future__ import annotations

import html
import logging
import subprocess
import time
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core import workload
from core.cdc.pipeline import (
    ChangeFeed,
    FeedEvent,
    PipelineSample,
    PipelineSampler,
    start_relay_process,
    start_workload_process,
)
from core.cdc.relay import MODES
from core.h2 import triggers
from core.h2.connection import H2Connection
from core.settings import Settings
from gui.bridge import Bridge
from gui.messages import Messages
from gui.panels import PanelContext

log = logging.getLogger(__name__)

TITLE = "Pipeline"
AREA = "right"
SAMPLE_MS = 1000
FEED_MS = 250
PATH_COLUMNS = ["table", "rule", "path", "outbox backlog", "topic", "topic offsets/s"]
FEED_COLUMNS = ["time", "topic", "op", "key", "changed"]
UNRELIABLE = "webhook: UNRELIABLE (rolled-back changes sent, lost while receiver down)"
_OP_COLOURS = {"c": "#dff5e1", "u": "#fff6d5", "d": "#fbe0e0", "tombstone": "#eeeeee"}


class PipelineModel(QObject):
    """Samples the pipeline off the GUI thread; keeps rates; owns the live feed."""

    sampled = Signal(object)
    feed_changed = Signal()

    def __init__(
        self,
        settings: Settings,
        bridge: Bridge,
        messages: Messages | None,
        prefix: str = "h2",
        interval_ms: int = SAMPLE_MS,
        feed_from_beginning: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.prefix = prefix
        self.sampler = PipelineSampler(settings, prefix)
        self.feed = ChangeFeed(
            settings.bootstrap_servers, prefix, from_beginning=feed_from_beginning
        )
        self.rates: dict[str, float] = {}
        self.latest: PipelineSample | None = None
        self.events: list[FeedEvent] = []
        self.relay: subprocess.Popen[bytes] | None = None
        self.workload: subprocess.Popen[bytes] | None = None
        self._bridge = bridge
        self._messages = messages
        self._in_flight = False
        self._closing = False
        self._failing = False
        self._seen = -1
        self._previous: dict[str, tuple[float, int]] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.refresh)
        self._feed_timer = QTimer(self)
        self._feed_timer.setInterval(FEED_MS)
        self._feed_timer.timeout.connect(self._on_feed_tick)

    def start(self, load_shop: bool = True) -> None:
        if load_shop and not self.settings.h2.url:  # embedded: the shop, first run
            self._bridge.run(self._ensure_shop, on_error=self._report("Loading shop"))
        self.feed.start()
        self.refresh()
        self._timer.start()
        self._feed_timer.start()

    def shutdown(self) -> None:
        """Stop timers, the feed and the processes this view started."""
        self._timer.stop()
        self._feed_timer.stop()
        for proc in (self.relay, self.workload):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        self._closing = True
        if not self._in_flight:  # else the sample in flight closes them when done
            self._bridge.run(self._close_clients)

    def _ensure_shop(self) -> None:
        with H2Connection(self.settings) as conn:
            workload.ensure_shop(conn)

    def _close_clients(self) -> None:
        self.feed.stop()
        self.sampler.close()
        for proc in (self.relay, self.workload):
            if proc is not None:
                proc.wait(30)

    @Slot()
    def refresh(self) -> None:
        if self._in_flight or self._closing:
            return
        self._in_flight = True
        self._bridge.run(
            self.sampler.sample, on_done=self._on_done, on_error=self._on_error
        )

    @Slot(object)
    def _on_done(self, sample: PipelineSample) -> None:
        self._in_flight = False
        if self._closing:
            self._bridge.run(self._close_clients)
            return
        self._failing = False
        for path in sample.tables:
            if path.topic_records is None:
                continue
            before = self._previous.get(path.topic)
            if before is not None and sample.at > before[0]:
                rate = (path.topic_records - before[1]) / (sample.at - before[0])
                self.rates[path.topic] = max(0.0, rate)
            self._previous[path.topic] = (sample.at, path.topic_records)
        self.latest = sample
        self.sampled.emit(sample)

    @Slot(object)
    def _on_error(self, error: BaseException) -> None:
        self._in_flight = False
        if self._closing:
            self._bridge.run(self._close_clients)
            return
        if not self._failing and self._messages is not None:
            self._messages.error(error, "Sampling the pipeline")
        self._failing = True

    @Slot()
    def _on_feed_tick(self) -> None:
        if self.feed.received == self._seen:
            return
        self._seen = self.feed.received
        self.events = self.feed.snapshot()
        self.feed_changed.emit()

    # -- actions, each off the GUI thread --------------------------------------

    def save_rule(self, rule: triggers.CaptureRule, on_done: Any = None) -> None:
        def apply() -> None:
            with H2Connection(self.settings) as conn:
                triggers.add_rule(conn, rule)

        self._bridge.run(apply, on_done=on_done, on_error=self._report("Saving rule"))

    def remove_rule(self, schema: str, table: str) -> None:
        def apply() -> None:
            with H2Connection(self.settings) as conn:
                triggers.remove_rule(conn, schema, table)

        self._bridge.run(apply, on_error=self._report("Removing rule"))

    def start_relay(self, mode: str) -> None:
        if self.relay is None or self.relay.poll() is not None:
            self._bridge.run(
                start_relay_process,
                self.settings,
                mode,
                self.prefix,
                on_done=lambda p: setattr(self, "relay", p),
                on_error=self._report("Starting the relay"),
            )

    def start_workload(self) -> None:
        if self.workload is None or self.workload.poll() is not None:
            self._bridge.run(
                start_workload_process,
                self.settings,
                on_done=lambda p: setattr(self, "workload", p),
                on_error=self._report("Starting the workload"),
            )

    def stop_processes(self) -> None:
        for proc in (self.relay, self.workload):
            if proc is not None and proc.poll() is None:
                proc.terminate()

    def _report(self, doing: str) -> Any:
        def report(error: BaseException) -> None:
            if self._messages is not None:
                self._messages.error(error, doing)
            else:
                log.warning("%s failed: %s", doing, error)

        return report


class RuleDialog(QDialog):
    """Add or edit one capture rule with its conditions."""

    def __init__(
        self, rule: triggers.CaptureRule | None, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Capture rule")
        self.schema = QLineEdit(rule.schema if rule else "SHOP")
        self.table = QLineEdit(rule.table if rule else "")
        self.ops = {op: QCheckBox(op) for op in triggers.OPERATIONS}
        for op, box in self.ops.items():
            box.setChecked(rule is None or op in rule.operations)
        self.columns = QLineEdit(", ".join(rule.changed_columns) if rule else "")
        self.columns.setPlaceholderText("updates only if one of these changes")
        self.predicate = QLineEdit(rule.predicate or "" if rule else "")
        self.predicate.setPlaceholderText("e.g. STATUS = 'PAID' AND TOTAL > 100")
        self.tombstone = QCheckBox("tombstone after each delete")
        self.tombstone.setChecked(bool(rule and rule.tombstone))
        ops = QHBoxLayout()
        for box in self.ops.values():
            ops.addWidget(box)
        form = QFormLayout(self)
        form.addRow("Schema", self.schema)
        form.addRow("Table", self.table)
        form.addRow("Operations", ops)
        form.addRow("Columns changed", self.columns)
        form.addRow("Where", self.predicate)
        form.addRow("", self.tombstone)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def rule(self) -> triggers.CaptureRule:
        return triggers.CaptureRule(
            schema=self.schema.text().strip(),
            table=self.table.text().strip(),
            operations=tuple(op for op, box in self.ops.items() if box.isChecked()),
            changed_columns=tuple(
                c.strip() for c in self.columns.text().split(",") if c.strip()
            ),
            predicate=self.predicate.text().strip() or None,
            tombstone=self.tombstone.isChecked(),
        )


class PipelinePanel(QWidget):
    """Rules and their path to Kafka above, the live change feed below."""

    def __init__(
        self,
        model: PipelineModel,
        read_only: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self._rules: list[triggers.CaptureRule] = []
        self._sized_rows = -1

        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.relay_state = QLabel("relay: not running")
        start_relay = QPushButton("Start relay")
        start_relay.clicked.connect(lambda: model.start_relay(self.mode.currentText()))
        start_workload = QPushButton("Start shop workload")
        start_workload.clicked.connect(model.start_workload)
        stop = QPushButton("Stop relay and workload")
        stop.clicked.connect(model.stop_processes)
        bar = QHBoxLayout()
        for widget in (
            QLabel("Relay mode"),
            self.mode,
            start_relay,
            start_workload,
            stop,
        ):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.relay_state)

        self.paths = QTableWidget(0, len(PATH_COLUMNS))
        self.paths.setHorizontalHeaderLabels(PATH_COLUMNS)
        self.paths.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.paths.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.paths.horizontalHeader().setStretchLastSection(True)
        rule_bar = QHBoxLayout()
        for text, slot in (
            ("Add rule…", self._on_add),
            ("Edit rule…", self._on_edit),
            ("Remove rule", self._on_remove),
        ):
            button = QPushButton(text)
            button.clicked.connect(slot)
            button.setEnabled(not read_only)
            rule_bar.addWidget(button)
        rule_bar.addStretch(1)
        self.totals = QLabel("")
        rule_bar.addWidget(self.totals)

        self.feed = QTableWidget(0, len(FEED_COLUMNS))
        self.feed.setHorizontalHeaderLabels(FEED_COLUMNS)
        self.feed.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.feed.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.feed.horizontalHeader().setStretchLastSection(True)
        self.feed.itemSelectionChanged.connect(self._on_event_selected)
        self.detail = QTextBrowser()

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.paths)
        top_layout.addLayout(rule_bar)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.feed)
        bottom.addWidget(self.detail)
        bottom.setSizes([700, 400])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split)

        model.sampled.connect(self._on_sampled)
        model.feed_changed.connect(self._on_feed_changed)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.window().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Stop sampling, the feed and our processes when the window closes."""
        if event.type() == QEvent.Type.Close and watched is self.window():
            self.model.shutdown()
        return False

    @Slot(object)
    def _on_sampled(self, sample: PipelineSample) -> None:
        self._rules = [p.rule for p in sample.tables]
        self.paths.setRowCount(len(sample.tables))
        for row, path in enumerate(sample.tables):
            rule = path.rule
            parts = [",".join(rule.operations)]
            if rule.changed_columns:
                parts.append("if changed: " + ",".join(rule.changed_columns))
            if rule.predicate:
                parts.append("where " + rule.predicate)
            if rule.tombstone:
                parts.append("tombstones")
            route = UNRELIABLE if rule.mode == "webhook" else "trigger → outbox → relay"
            if not path.installed:
                route = "TRIGGER MISSING: nothing is captured"
            elif not path.has_key:
                route += " (no primary key: null keys, partition 0, no per-key order)"
            rate = self.model.rates.get(path.topic)
            cells = [
                f"{rule.schema}.{rule.table}",
                "; ".join(parts),
                route,
                str(path.backlog),
                path.topic
                if path.topic_records is not None
                else f"{path.topic} (not created yet)",
                "" if rate is None else f"{rate:.1f}",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if rule.mode == "webhook" or not path.installed:
                    item.setForeground(QColor("#b00020"))
                self.paths.setItem(row, column, item)
        if self.paths.rowCount() != self._sized_rows:
            self._sized_rows = self.paths.rowCount()
            self.paths.resizeColumnsToContents()
            self.paths.resizeRowsToContents()
        relays = [r for r in sample.relays if r.get("alive")]
        if relays:
            r = relays[0]
            self.relay_state.setText(
                f"relay {r.get('relay_id')}: {r.get('state')} ({r.get('mode')}), "
                f"{r.get('published')} published, pid {r.get('pid')}"
            )
        else:
            self.relay_state.setText("relay: not running")
        backlog = sum(p.backlog for p in sample.tables)
        self.totals.setText(
            f"outbox backlog {backlog} · rejected {sample.rejected} · "
            f"updated {time.strftime('%H:%M:%S', time.localtime(sample.at))}"
        )

    @Slot()
    def _on_feed_changed(self) -> None:
        events = list(reversed(self.model.events))
        self.feed.setRowCount(len(events))
        for row, event in enumerate(events):
            changed = (
                ", ".join(f"{c}: {old!r} → {new!r}" for c, old, new in event.changes())
                if event.op == "u"
                else ""
            )
            cells = [
                time.strftime("%H:%M:%S", time.localtime(event.seen)),
                event.topic,
                event.op or "",
                event.key or "(no key)",
                changed,
            ]
            colour = QColor(_OP_COLOURS.get(event.op or "", "#ffffff"))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(colour)
                self.feed.setItem(row, column, item)

    @Slot()
    def _on_event_selected(self) -> None:
        rows = self.feed.selectionModel().selectedRows()
        events = list(reversed(self.model.events))
        if not rows or rows[0].row() >= len(events):
            return
        self.detail.setHtml(event_html(events[rows[0].row()]))

    def _selected_rule(self) -> triggers.CaptureRule | None:
        rows = self.paths.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._rules):
            return None
        return self._rules[rows[0].row()]

    @Slot()
    def _on_add(self) -> None:
        dialog = RuleDialog(None, self)
        if dialog.exec():
            self.model.save_rule(dialog.rule(), on_done=lambda _: self.model.refresh())

    @Slot()
    def _on_edit(self) -> None:
        rule = self._selected_rule()
        if rule is None:
            return
        dialog = RuleDialog(rule, self)
        if dialog.exec():
            self.model.save_rule(dialog.rule(), on_done=lambda _: self.model.refresh())

    @Slot()
    def _on_remove(self) -> None:
        rule = self._selected_rule()
        if rule is not None:
            self.model.remove_rule(rule.schema, rule.table)


def event_html(event: FeedEvent) -> str:
    """Before and after side by side; changed columns highlighted."""
    changed = {c for c, _, _ in event.changes()}
    before, after = event.before or {}, event.after or {}
    rows = []
    for column in dict.fromkeys([*before, *after]):
        style = ' style="background:#ffe066"' if column in changed else ""
        rows.append(
            f"<tr{style}><td><b>{html.escape(column)}</b></td>"
            f"<td>{html.escape(repr(before.get(column)))}</td>"
            f"<td>{html.escape(repr(after.get(column)))}</td></tr>"
        )
    return (
        f"<p><b>{html.escape(event.topic)}</b> partition {event.partition} offset "
        f"{event.offset} · op <b>{html.escape(str(event.op))}</b> · key "
        f"{html.escape(event.key or '(none)')}</p>"
        "<table border=1 cellspacing=0 cellpadding=3>"
        "<tr><th>column</th><th>before</th><th>after</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def create_panel(context: PanelContext) -> QWidget:
    model = PipelineModel(context.settings, context.bridge, context.messages)
    panel = PipelinePanel(model, read_only=context.read_only)
    model.setParent(panel)
    if context.start_flow and not context.read_only:
        # `make run`: once the stack is up, the shop's changes flow by themselves.
        def flow(_: object) -> None:
            def go(_: object) -> None:
                model.start(load_shop=False)
                model.start_relay("exactly-once")
                model.start_workload()

            context.bridge.run(
                model._ensure_shop, on_done=go, on_error=model._report("Loading shop")
            )

        context.stack.started.connect(flow)
    else:
        model.start()
    return panel
