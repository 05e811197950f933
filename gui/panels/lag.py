"""The Lag view: lag per group and partition over time, rates and time lag, export."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import numpy as np

from core.cdc.pipeline import FEED_GROUP_PREFIX
from core.errors import StudioError
from core.kafka import profiles
from core.kafka.lag import CELL_NAMES, GroupTarget, LagReader, LagSample
from gui.bridge import Bridge
from gui.messages import Messages
from gui.panels import PanelContext
from gui.panels.consumers import RUNNING_GROUPS

log = logging.getLogger(__name__)

TITLE = "Lag"
AREA = "bottom"
DASHBOARD = True
SAMPLE_MS = 1000
REDRAW_MS = 50
HISTORY = 600
DISCOVER_S = 10.0
EMBEDDED = "embedded stack"
# Records read per partition and second to count lag exactly; beyond, lag is
# counted in offsets from the next record (shown with ~), which costs nothing.
COUNT_UP_TO = 200
HIDDEN_EVERY = 5  # while the panel is hidden, sample on every 5th tick
COLUMNS = CELL_NAMES


class RingBuffer:
    """A fixed number of samples of named series; the arrays never grow."""

    def __init__(self, capacity: int = HISTORY) -> None:
        self.capacity = capacity
        self.times = np.full(capacity, np.nan)
        self.series: dict[str, np.ndarray] = {}
        self._head = 0
        self.count = 0

    def append(self, at: float, values: dict[str, float]) -> None:
        for name in values.keys() - self.series.keys():
            self.series[name] = np.full(self.capacity, np.nan)
        self.times[self._head] = at
        for name, array in self.series.items():
            array[self._head] = values.get(name, np.nan)
        self._head = (self._head + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def ordered(self, array: np.ndarray) -> np.ndarray:
        """``array`` oldest first (a copy, as long as the history)."""
        if self.count < self.capacity:
            return array[: self.count]
        return np.concatenate((array[self._head :], array[: self._head]))

    def column(self, name: str) -> np.ndarray:
        return self.ordered(self.series.get(name, np.full(self.capacity, np.nan)))


class LagModel(QObject):
    """Samples lag off the GUI thread every second into a ring buffer."""

    sampled = Signal(object)  # LagSample

    def __init__(
        self,
        reader: LagReader,
        bridge: Bridge,
        messages: Messages | None,
        interval_ms: int = SAMPLE_MS,
    ) -> None:
        super().__init__()
        self.reader = reader
        self.buffer = RingBuffer()
        self.isolation: dict[str, str] = {}
        self.latest: LagSample | None = None
        self._bridge = bridge
        self._messages = messages
        self._groups: list[str] = []
        self._discovered = 0.0
        self._in_flight = False
        self._failing = False
        self._previous: dict[str, tuple[float, int, int]] = {}
        self._closing = False
        self._retired: list[LagReader] = []
        self._ticks = 0
        self.visible = True
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.refresh)

    def start(self) -> None:
        self.refresh()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def run_off_thread(self, fn: Any, done: Any, doing: str) -> None:
        """``fn()`` on a pool thread, then ``done(result)`` here; errors shown."""
        self._bridge.run(fn, on_done=done, on_error=lambda e: self._report(e, doing))

    def _report(self, error: BaseException, doing: str) -> None:
        if self._messages is not None:
            self._messages.error(error, doing)
        else:
            log.warning("%s failed: %s", doing, error)

    def shutdown(self) -> None:
        """Stop sampling and close the reader's clients, off the GUI thread."""
        self._timer.stop()
        self._closing = True
        if not self._in_flight:
            self._bridge.run(self.reader.close)

    def set_isolation(self, group: str, isolation: str) -> None:
        """Say a group's isolation level (groups of the Consumers view say theirs)."""
        self.isolation[group] = isolation

    def use_reader(self, reader: LagReader) -> None:
        """Sample another cluster from now on; the history starts again."""
        self._retired.append(self.reader)
        self.reader = reader
        self.buffer = RingBuffer()
        self.latest = None
        self._groups = []
        self._discovered = 0.0
        self._previous.clear()
        self._close_retired()

    def _close_retired(self) -> None:
        if not self._in_flight:
            while self._retired:
                self._bridge.run(self._retired.pop().close)

    @Slot()
    def refresh(self) -> None:
        self._ticks += 1
        if self._in_flight or self._closing:
            return
        if not self.visible and self._ticks % HIDDEN_EVERY:
            return  # out of sight: a sample every few seconds keeps the history
        self._in_flight = True
        self._bridge.run(
            self._sample,
            dict(self.isolation),
            on_done=self._on_done,
            on_error=self._on_error,
        )

    def _sample(self, isolation: dict[str, str]) -> tuple[LagReader, LagSample]:
        """Off the GUI thread: find the groups now and then, sample them."""
        reader = self.reader
        if time.monotonic() - self._discovered > DISCOVER_S:
            users = {g for g in reader.groups() if not g.startswith(FEED_GROUP_PREFIX)}
            self._groups = sorted(users | set(isolation) | set(RUNNING_GROUPS))
            self._discovered = time.monotonic()
        running = {g.group_id: g.lag_target() for g in list(RUNNING_GROUPS.values())}
        targets = [_target(g, isolation, running) for g in self._groups]
        sample = reader.sample(targets)
        if self._closing:  # shut down meanwhile: close here, on this thread
            reader.close()
        return reader, sample

    @Slot(object)
    def _on_done(self, answer: tuple[LagReader, LagSample]) -> None:
        self._in_flight = False
        self._failing = False
        self._close_retired()
        reader, sample = answer
        if reader is not self.reader:
            return  # a sample of the cluster we just left
        self.latest = sample
        values: dict[str, float] = {}
        for group in sample.groups:
            values[f"{group.group}|lag"] = group.lag
            values[f"{group.group}|time"] = group.time_lag_s
            for p in group.partitions:
                values[f"{group.group}|p|{p.topic}-{p.partition}"] = p.lag
            committed = sum(p.committed or 0 for p in group.partitions)
            ends = sum(p.high_watermark for p in group.partitions)
            before = self._previous.get(group.group)
            if before is not None and sample.at > before[0]:
                span = sample.at - before[0]
                values[f"{group.group}|consumed"] = max(0, committed - before[1]) / span
                values[f"{group.group}|produced"] = max(0, ends - before[2]) / span
            self._previous[group.group] = (sample.at, committed, ends)
        self.buffer.append(sample.at, values)
        self.sampled.emit(sample)

    @Slot(object)
    def _on_error(self, error: BaseException) -> None:
        self._in_flight = False
        self._close_retired()
        if not self._failing and self._messages is not None:
            self._messages.error(error, "Sampling lag")
        self._failing = True


def _target(
    group: str, isolation: dict[str, str], running: dict[str, GroupTarget]
) -> GroupTarget:
    """The user's choice first, then what the Consumers view knows, then Kafka's
    default (read_uncommitted)."""
    known = running.get(group, GroupTarget(group))
    chosen = isolation.get(group, known.isolation)
    return GroupTarget(group, None, chosen, known.reset_policy)


class LagPanel(QWidget):
    """Lag per partition stacked, rates, time lag and the latest numbers."""

    DASHBOARD_WEIGHT = 2  # share of the wall's height (main_window)

    def __init__(
        self, model: LagModel, parent: QWidget | None = None, dashboard: bool = False
    ) -> None:
        super().__init__(parent)
        self.model = model
        # On the wall the view is wide and short: plots side by side keep
        # their height instead of three slivers stacked.
        self._side_by_side = dashboard
        self._dirty = False
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._clients: Any = None

        self.group = QComboBox()
        self.group.setMinimumContentsLength(24)
        self.group.currentTextChanged.connect(self._on_group_changed)
        self.isolation = QComboBox()
        self.isolation.addItems(["read_uncommitted", "read_committed"])
        self.isolation.setToolTip(
            "Kafka cannot tell a group's isolation level: read_committed lag is "
            "counted to the last stable offset, read_uncommitted to the high watermark"
        )
        self.isolation.currentTextChanged.connect(self._on_isolation_changed)
        self.status = QLabel("waiting for the first sample")
        png = QPushButton("Export PNG")
        png.clicked.connect(lambda: self._export("png"))
        export_csv = QPushButton("Export CSV")
        export_csv.clicked.connect(lambda: self._export("csv"))
        self.cluster = QComboBox()
        self.cluster.addItem(EMBEDDED)
        self.cluster.setToolTip("the embedded stack, or a connection profile")
        self.cluster.currentTextChanged.connect(self._on_cluster_changed)
        bar = QHBoxLayout()
        for widget in (
            QLabel("Cluster"),
            self.cluster,
            QLabel("Group"),
            self.group,
            QLabel("Isolation"),
            self.isolation,
            self.status,
        ):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(png)
        bar.addWidget(export_csv)

        self.plots = pg.GraphicsLayoutWidget()
        self.lag_plot = self._plot("lag per partition (records, stacked)", 0)
        self.rate_plot = self._plot("rates (records/s)", 1)
        self.time_plot = self._plot("time lag (s)", 2)
        self.rate_plot.addLegend(offset=(5, 5))
        self._consumed = self.rate_plot.plot(
            name="consumed", pen=pg.mkPen("c", width=2)
        )
        self._produced = self.rate_plot.plot(
            name="produced", pen=pg.mkPen("y", width=2)
        )
        self._time = self.time_plot.plot(pen=pg.mkPen("m", width=2))

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        split = QSplitter()
        split.addWidget(self.plots)
        split.addWidget(self.table)
        # Side by side, the plots need most of the width; the table less.
        split.setSizes([1000, 300] if self._side_by_side else [700, 500])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

        model.sampled.connect(self._on_sampled)
        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._on_redraw)
        self._redraw.start()

    def _plot(self, title: str, index: int) -> pg.PlotItem:
        row, col = (0, index) if self._side_by_side else (index, 0)
        plot = self.plots.addPlot(
            row=row, col=col, title=title, axisItems={"bottom": pg.DateAxisItem()}
        )
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        plot.showGrid(x=True, y=True, alpha=0.3)
        return plot

    @Slot(object)
    def _on_sampled(self, sample: LagSample) -> None:
        names = [g.group for g in sample.groups]
        if names != [self.group.itemText(i) for i in range(self.group.count())]:
            current = self.group.currentText()
            self.group.blockSignals(True)
            self.group.clear()
            self.group.addItems(names)
            if current in names:
                self.group.setCurrentText(current)
            self.group.blockSignals(False)
            self._on_group_changed(self.group.currentText())
        self.status.setText(
            f"{len(names)} groups, sampled in {sample.took_s * 1000:.0f} ms"
        )
        self._fill_table(sample)
        self._dirty = True

    def _fill_table(self, sample: LagSample) -> None:
        chosen = [g for g in sample.groups if g.group == self.group.currentText()]
        parts = chosen[0].partitions if chosen else []
        self.table.setRowCount(len(parts))
        for row, p in enumerate(parts):
            cells = p.cells()
            for col, value in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(str(value)))

    def offer_profiles(self, names: list[str], clients: Any) -> None:
        """List connection profiles; ``clients(name)`` gives one's client config."""
        self._clients = clients
        self.cluster.addItems(names)

    @Slot(str)
    def _on_cluster_changed(self, name: str) -> None:
        def connect() -> LagReader:
            return LagReader(self._clients(name), timeout=5, count_up_to=COUNT_UP_TO)

        def done(reader: LagReader) -> None:
            self.model.use_reader(reader)
            self.group.clear()
            self.table.setRowCount(0)
            self.status.setText(f"sampling {name}")

        self.model.run_off_thread(connect, done, f"Connecting to {name}")

    @Slot(str)
    def _on_group_changed(self, group: str) -> None:
        self.isolation.blockSignals(True)
        running = RUNNING_GROUPS.get(group)
        known = running.isolation if running is not None else "read_uncommitted"
        self.isolation.setCurrentText(self.model.isolation.get(group, known))
        self.isolation.blockSignals(False)
        for curve in self._curves.values():
            self.lag_plot.removeItem(curve)
        self._curves.clear()
        if self.model.latest is not None:
            self._fill_table(self.model.latest)
        self._dirty = True

    @Slot(str)
    def _on_isolation_changed(self, isolation: str) -> None:
        group = self.group.currentText()
        if group:
            self.model.set_isolation(group, isolation)

    @Slot()
    def _on_redraw(self) -> None:
        """The one redraw timer: whole arrays from the ring buffer, only when new."""
        if not self._dirty:
            return
        self._dirty = False
        group = self.group.currentText()
        buffer = self.model.buffer
        x = buffer.ordered(buffer.times)
        prefix = f"{group}|p|"
        names = sorted(n for n in buffer.series if n.startswith(prefix))
        total = np.zeros(len(x))
        stacked = []
        for name in names:
            total = total + np.nan_to_num(buffer.column(name))
            stacked.append((name, total.copy()))
        for index, (name, y) in enumerate(reversed(stacked)):
            curve = self._curves.get(name)
            if curve is None:
                color = pg.intColor(len(stacked) - 1 - index, hues=max(8, len(stacked)))
                curve = self.lag_plot.plot(
                    pen=pg.mkPen(color, width=1),
                    brush=pg.mkBrush(color.darker(150)),
                    fillLevel=0,
                    name=name[len(prefix) :],
                )
                self._curves[name] = curve
            curve.setZValue(index)
            curve.setData(x, y)
        self._consumed.setData(x, buffer.column(f"{group}|consumed"))
        self._produced.setData(x, buffer.column(f"{group}|produced"))
        self._time.setData(x, buffer.column(f"{group}|time"))

    def export_png(self, path: Path) -> None:
        self.plots.grab().save(str(path))

    def export_csv(self, path: Path) -> None:
        """Every series of the chosen group, one row per sample."""
        group = self.group.currentText()
        buffer = self.model.buffer
        names = sorted(n for n in buffer.series if n.startswith(f"{group}|"))
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["time", *[n.split("|", 1)[1] for n in names]])
            columns = [buffer.ordered(buffer.times), *[buffer.column(n) for n in names]]
            for row in zip(*columns, strict=True):
                writer.writerow(["" if np.isnan(v) else f"{v:g}" for v in row])

    def _export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {kind.upper()}", f"lag.{kind}", f"*.{kind}"
        )
        if path:
            (self.export_png if kind == "png" else self.export_csv)(Path(path))

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.model.visible = True
        self.window().installEventFilter(self)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        self.model.visible = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Stop sampling when the window closes."""
        if event.type() == QEvent.Type.Close and watched is self.window():
            self._redraw.stop()
            self.model.shutdown()
        return False


def create_panel(context: PanelContext) -> QWidget:
    embedded = {"bootstrap.servers": context.settings.bootstrap_servers}
    reader = LagReader(embedded, timeout=5, count_up_to=COUNT_UP_TO)
    model = LagModel(reader, context.bridge, context.messages)
    panel = LagPanel(model, dashboard=context.dashboard)
    model.setParent(panel)
    try:
        names = sorted(profiles.load(profiles.profiles_path()))
    except StudioError as exc:
        context.messages.error(exc, "Reading connection profiles")
        names = []

    def clients(name: str) -> dict[str, Any]:
        """Off the GUI thread: the password may come from the keyring."""
        if name == EMBEDDED:
            return embedded
        profile = profiles.get(profiles.profiles_path(), name)
        return profile.client_config(profiles.password_for(profile, None))

    panel.offer_profiles(names, clients)
    model.start()
    return panel
