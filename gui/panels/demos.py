"""The Demos panel: pick a crash-and-recover scenario, run or step it, watch it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.demos import catalog
from core.demos.runner import PASS, RunControl, RunResult, run_scenario
from core.demos.scenario import Scenario
from core.demos.timeline import Event
from gui.panels import PanelContext

log = logging.getLogger(__name__)

TITLE = "Demos"
AREA = "right"
REDRAW_MS = 50
MAX_EVENTS = 5000
# Running totals drawn as curves, and their colours.
CURVES = {
    "produced": "#1565c0",
    "consumed": "#6a1b9a",
    "committed": "#2e7d32",
    "aborted": "#ef6c00",
    "refused": "#795548",
    "dropped": "#c2185b",
}
# Events drawn as vertical markers.
MARKERS = {
    "crash": "#c62828",
    "paused": "#9e9e9e",
    "resumed": "#9e9e9e",
    "restart": "#00838f",
    "fenced": "#ad1457",
    "recovered": "#2e7d32",
    "broker": "#5d4037",
}
COUNTERS = ("produced", "delivered", "lost", "duplicated")
RESULT_COLUMNS = (
    "#",
    "Scenario",
    "Seed",
    "Knobs",
    "Verdict",
    "Lost",
    "Duplicated",
    "Time",
)


class _Events(QObject):
    """Carries timeline events from the run's threads to the GUI thread."""

    arrived = Signal(object)


class DemosPanel(QWidget):
    """Scenario list, narration, knobs, run/step/pause, live timeline, results."""

    def __init__(self, context: PanelContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._context = context
        self._scenarios = catalog.scenarios()
        self._scenario: Scenario | None = None
        self._knob_widgets: dict[str, QSpinBox | QComboBox] = {}
        self._control: RunControl | None = None
        self._events: list[Event] = []
        self._dirty = False
        self.results: list[RunResult] = []
        self.last_result: RunResult | None = None

        self._relay = _Events(self)
        self._relay.arrived.connect(self._on_event)

        self.scenario_list = QListWidget()
        for scenario in self._scenarios:
            item = QListWidgetItem(f"{scenario.number}. {scenario.title}")
            item.setData(Qt.ItemDataRole.UserRole, scenario.name)
            reason = scenario.unavailable()
            if reason:
                item.setForeground(QColor("#9e9e9e"))
                item.setToolTip(reason)
            self.scenario_list.addItem(item)
        self.scenario_list.currentRowChanged.connect(self._on_scenario_chosen)

        self.title = QLabel()
        font = QFont(self.title.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.narration = QListWidget()
        self.narration.setWordWrap(True)
        self.narration.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)

        self.knobs_box = QGroupBox("Knobs")
        self.knobs_form = QFormLayout(self.knobs_box)
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.seed.setValue(1)

        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("go on to the next narration step, then pause")
        self.step_button.clicked.connect(self._on_step_clicked)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.export_button = QPushButton("Export PNG + JSON")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.status = QLabel("choose a scenario")
        self.status.setWordWrap(True)

        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "seconds since the run started")
        self.plot.setLabel("left", "records")
        self.plot.addLegend(offset=(10, 10))
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        # One curve per kind, made when the kind first shows up.
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._markers: list[pg.InfiniteLine] = []

        self.counters: dict[str, QLabel] = {}
        for name in COUNTERS:
            value = QLabel("-")
            value.setAlignment(Qt.AlignmentFlag.AlignCenter)
            big = QFont(value.font())
            big.setPointSizeF(big.pointSizeF() * 1.8)
            big.setBold(True)
            value.setFont(big)
            self.counters[name] = value

        self.committed_pane = QLabel("-")
        self.uncommitted_pane = QLabel("-")
        isolation = QHBoxLayout()
        self._pane_boxes: list[QGroupBox] = []
        for title, pane in (
            ("read_committed", self.committed_pane),
            ("read_uncommitted", self.uncommitted_pane),
        ):
            box = QGroupBox(title)
            pane.setWordWrap(True)
            pane.setMinimumHeight(pane.fontMetrics().lineSpacing() * 5)
            pane.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            pane.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            QVBoxLayout(box).addWidget(pane)
            isolation.addWidget(box)
            self._pane_boxes.append(box)
        self.isolation_box = QWidget()
        self.isolation_box.setLayout(isolation)

        self.results_table = QTableWidget(0, len(RESULT_COLUMNS))
        self.results_table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.results_table.verticalHeader().setVisible(False)
        self.results_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results_table.setSelectionBehavior(
            QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.results_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )

        self._layout()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._on_redraw)
        self._timer.start()
        self.scenario_list.setCurrentRow(0)
        self._update_buttons()

    def _layout(self) -> None:
        buttons = QHBoxLayout()
        for button in (
            self.run_button,
            self.step_button,
            self.pause_button,
            self.stop_button,
            self.export_button,
        ):
            buttons.addWidget(button)
        seed_row = QFormLayout()
        seed_row.addRow("seed", self.seed)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.scenario_list, 2)
        left_layout.addWidget(self.knobs_box)
        left_layout.addLayout(seed_row)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.status)

        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.addWidget(self.title)
        middle_layout.addWidget(self.summary)
        middle_layout.addWidget(self.narration, 1)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(self._counters_layout())
        right_layout.addWidget(self.plot, 3)
        right_layout.addWidget(self.isolation_box)
        right_layout.addWidget(self.results_table, 1)

        splitter = QSplitter()
        for widget in (left, middle, right):
            splitter.addWidget(widget)
        splitter.setStretchFactor(2, 2)
        outer = QVBoxLayout(self)
        outer.addWidget(splitter)

    def _counters_layout(self) -> QGridLayout:
        grid = QGridLayout()
        for column, name in enumerate(COUNTERS):
            grid.addWidget(self.counters[name], 0, column)
            caption = QLabel(name)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(caption, 1, column)
        return grid

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.window().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """Stop a running demo when the window closes (its clean-up still runs)."""
        if event.type() == QEvent.Type.Close and self._control is not None:
            self._control.cancel()
        return False

    # -- choosing ------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._control is not None

    def select(self, name: str) -> None:
        """Choose the scenario called ``name`` (as the list would)."""
        for row, scenario in enumerate(self._scenarios):
            if scenario.name == name:
                self.scenario_list.setCurrentRow(row)
                return
        raise KeyError(name)

    def set_knob(self, name: str, value: int | str) -> None:
        widget = self._knob_widgets[name]
        if isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        else:
            widget.setCurrentText(str(value))

    @Slot(int)
    def _on_scenario_chosen(self, row: int) -> None:
        if row < 0:
            return
        scenario = self._scenarios[row]
        self._scenario = scenario
        self.title.setText(f"{scenario.number}. {scenario.title}")
        self.summary.setText(
            f"{scenario.summary}\n\nCrash point: {scenario.crash_point}\n"
            "Expected: "
            + ", ".join(str(b) for b in scenario.bounds(scenario.resolve_knobs({})))
        )
        self.narration.clear()
        for number, step in enumerate(scenario.narration, 1):
            self.narration.addItem(f"{number}. {step.title}\n{step.text}")
        self._build_knobs(scenario)
        self.isolation_box.setVisible(bool(scenario.pairs))
        for box, title in zip(self._pane_boxes, scenario.pair_titles, strict=True):
            box.setTitle(title)
        self._update_buttons()

    def _build_knobs(self, scenario: Scenario) -> None:
        while self.knobs_form.rowCount():
            self.knobs_form.removeRow(0)
        self._knob_widgets = {}
        for knob in scenario.knobs:
            widget: QSpinBox | QComboBox
            if knob.choices:
                widget = QComboBox()
                widget.addItems(list(knob.choices))
                widget.setCurrentText(str(knob.default))
            else:
                widget = QSpinBox()
                widget.setRange(knob.minimum, knob.maximum)
                widget.setValue(int(knob.default))
            widget.setToolTip(knob.help)
            self.knobs_form.addRow(knob.name, widget)
            self._knob_widgets[knob.name] = widget

    def _knob_values(self) -> dict[str, object]:
        return {
            name: w.value() if isinstance(w, QSpinBox) else w.currentText()
            for name, w in self._knob_widgets.items()
        }

    # -- running -------------------------------------------------------

    def start(self, paused: bool = False) -> None:
        """Run the chosen scenario with the knobs shown, off the GUI thread."""
        scenario = self._scenario
        if scenario is None or self.running:
            return
        reason = scenario.unavailable()
        if reason:
            self.status.setText(f"{scenario.name} cannot run: {reason}")
            return
        self._control = RunControl()
        if paused:
            self._control.pause()
            self._control.step()
        self._clear_run()
        self.status.setText(f"running {scenario.name} (seed {self.seed.value()})")
        self._context.bridge.run(
            run_scenario,
            scenario,
            self._context.settings,
            self._knob_values(),
            self.seed.value(),
            self._control,
            self._relay.arrived.emit,
            on_done=self._on_finished,
            on_error=self._on_failed,
        )
        self._update_buttons()

    def _clear_run(self) -> None:
        self._events = []
        self._dirty = True
        for item in [*self._markers, *self._curves.values()]:
            self.plot.removeItem(item)
        self._markers = []
        self._curves = {}
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.clear()
        for label in self.counters.values():
            label.setText("-")
        self.committed_pane.setText("-")
        self.uncommitted_pane.setText("-")
        self.narration.clearSelection()

    @Slot()
    def _on_run_clicked(self) -> None:
        if self._control is not None:
            self._control.resume()
            self.status.setText("running")
        else:
            self.start()
        self._update_buttons()

    @Slot()
    def _on_step_clicked(self) -> None:
        if self._control is None:
            self.start(paused=True)
        else:
            self._control.step()
        self.status.setText("stepping: paused after the next step")
        self._update_buttons()

    @Slot()
    def _on_pause_clicked(self) -> None:
        if self._control is not None:
            self._control.pause()
            self.status.setText("paused before the next step")
        self._update_buttons()

    @Slot()
    def _on_stop_clicked(self) -> None:
        if self._control is not None:
            self._control.cancel()
            self.status.setText("stopping: cleaning up the run")

    @Slot(object)
    def _on_event(self, event: Event) -> None:
        if len(self._events) < MAX_EVENTS:
            self._events.append(event)
            self._dirty = True
        if event.kind == "step":
            number = int(event.text.split(".", 1)[0]) - 1
            if 0 <= number < self.narration.count():
                self.narration.setCurrentRow(number)
            self._update_buttons()
        elif event.kind in MARKERS:
            self._add_marker(event)

    def _add_marker(self, event: Event) -> None:
        marker = pg.InfiniteLine(
            pos=event.t,
            angle=90,
            pen=pg.mkPen(MARKERS[event.kind], width=2, style=Qt.PenStyle.DashLine),
            label=event.kind,
            labelOpts={
                "position": 0.9,
                "color": MARKERS[event.kind],
                "rotateAxis": (1, 0),
            },
        )
        self.plot.addItem(marker)
        self._markers.append(marker)

    @Slot()
    def _on_redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for kind, colour in CURVES.items():
            xs, ys = _steps(self._events, kind)
            curve = self._curves.get(kind)
            if curve is None and len(xs) > 1:
                curve = self.plot.plot(name=kind, pen=pg.mkPen(colour, width=2))
                self._curves[kind] = curve
            if curve is not None:
                curve.setData(xs, ys)
        totals = self._events[-1].totals if self._events else {}
        if "produced" in totals:
            self.counters["produced"].setText(str(totals["produced"]))

    @Slot(object)
    def _on_finished(self, result: RunResult) -> None:
        self._control = None
        self.last_result = result
        self.results.append(result)
        self._show_counts(result)
        self._add_result_row(result)
        self._export_png(result)
        colour = "#2e7d32" if result.verdict == PASS else "#c62828"
        self.status.setText(
            f"<b style='color:{colour}'>{result.verdict.upper()}</b> "
            f"in {result.seconds:.1f} s: {result.run_dir}"
            + (f"<br>{result.error}" if result.error else "")
        )
        self._update_buttons()

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        self._control = None
        self.status.setText(f"failed: {error}")
        self._context.messages.error(error, "running a demo")
        self._update_buttons()

    def _show_counts(self, result: RunResult) -> None:
        counts = result.counts
        for name in COUNTERS:
            value = _figure(counts, name)
            if value is not None:
                self.counters[name].setText(str(value))
        scenario = catalog.find(result.scenario)
        committed = []
        uncommitted = []
        for left, right in scenario.pairs:
            committed.append(f"{_words(left)}: {counts.get(left, '-')}")
            uncommitted.append(f"{_words(right)}: {counts.get(right, '-')}")
        self.committed_pane.setText("\n".join(committed) or "-")
        self.uncommitted_pane.setText("\n".join(uncommitted) or "-")

    def _add_result_row(self, result: RunResult) -> None:
        row = self.results_table.rowCount()
        self.results_table.insertRow(row)
        knobs = ", ".join(f"{k}={v}" for k, v in result.knobs.items())
        cells = [
            result.number,
            result.scenario,
            result.seed,
            knobs,
            result.verdict,
            _figure(result.counts, "lost"),
            _figure(result.counts, "duplicated"),
            f"{result.seconds:.1f} s",
        ]
        for column, value in enumerate(cells):
            item = QTableWidgetItem("-" if value is None else str(value))
            if column == 4:
                item.setForeground(QColor("#2e7d32" if result.passed else "#c62828"))
            self.results_table.setItem(row, column, item)
        self.results_table.scrollToBottom()

    # -- export --------------------------------------------------------

    @Slot()
    def _on_export_clicked(self) -> None:
        if self.last_result is not None:
            path = self._export_png(self.last_result)
            (Path(self.last_result.run_dir) / "result.json").write_text(
                json.dumps(self.last_result.to_json(), indent=1), encoding="utf-8"
            )
            self.status.setText(f"exported {path} and result.json")

    def _export_png(self, result: RunResult) -> Path:
        """The timeline as timeline.png in the run's folder."""
        path = Path(result.run_dir) / "timeline.png"
        self._on_redraw()
        if not self.plot.grab().save(str(path)):
            log.warning("could not write %s", path)
        return path

    def _update_buttons(self) -> None:
        available = self._scenario is not None and self._scenario.unavailable() is None
        paused = self._control is not None and self._control.paused
        self.run_button.setText("Resume" if paused else "Run")
        self.run_button.setEnabled(available and (not self.running or paused))
        self.step_button.setEnabled(available)
        self.pause_button.setEnabled(self.running and not paused)
        self.stop_button.setEnabled(self.running)
        self.export_button.setEnabled(self.last_result is not None)
        self.scenario_list.setEnabled(not self.running)
        self.knobs_box.setEnabled(not self.running)


def _figure(counts: dict[str, Any], name: str) -> int | None:
    """A counter's value: the count itself, or summed over prefixed variants
    (``off_lost`` and ``on_lost`` for ``lost``)."""
    if name in counts:
        return int(counts[name])
    if name == "produced":
        found = [
            v
            for k, v in counts.items()
            if k.endswith(("_acked", "written_in_crashed_txn"))
        ]
    else:
        found = [
            v
            for k, v in counts.items()
            if k.endswith(f"_{name}") and not k.startswith("uncommitted_")
        ]
    return sum(found) if found else None


def _steps(events: list[Event], kind: str) -> tuple[list[float], list[float]]:
    """The running total of ``kind`` as a step curve (x, y) from zero."""
    xs, ys = [0.0], [0.0]
    for event in events:
        if event.kind == kind and event.count:
            xs += [event.t, event.t]
            ys += [ys[-1], float(event.totals[kind])]
    if len(xs) > 1 and events:
        xs.append(events[-1].t)
        ys.append(ys[-1])
    return xs, ys


def _words(name: str) -> str:
    """A count's name as words that can wrap in a narrow pane."""
    return name.replace("_", " ")


def create_panel(context: PanelContext) -> QWidget:
    return DemosPanel(context)
