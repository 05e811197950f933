"""The Demos panel: pick a crash-and-recover scenario, run or step it, watch it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

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
from gui.demo_timeline import TimelinePlot
from gui.panels import PanelContext

log = logging.getLogger(__name__)

TITLE = "Demos"
AREA = "right"
REDRAW_MS = 50
MAX_EVENTS = 5000
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
        self.results: list[RunResult] = []
        self.last_result: RunResult | None = None

        self._relay = _Events(self)
        self._relay.arrived.connect(self._on_event)

        self.scenario_list = QListWidget()
        self.scenario_list.setWordWrap(True)
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

        self.plot = TimelinePlot(max_events=MAX_EVENTS)

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
        right.setMinimumWidth(360)
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(self._counters_layout())
        right_layout.addWidget(self.plot, 3)
        right_layout.addWidget(self.isolation_box)
        right_layout.addWidget(self.results_table, 1)

        splitter = QSplitter()
        for widget in (left, middle, right):
            splitter.addWidget(widget)
        splitter.setStretchFactor(2, 2)
        splitter.setSizes([320, 320, 640])
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
        if not self.running:
            self.status.setText("set the knobs, then Run (or Step through)")
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
        self.plot.clear_run()
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
        self.plot.add(event)
        if event.kind == "step":
            number = int(event.text.split(".", 1)[0]) - 1
            if 0 <= number < self.narration.count():
                self.narration.setCurrentRow(number)
            self._update_buttons()

    @Slot()
    def _on_redraw(self) -> None:
        self.plot.redraw()
        totals = self.plot.events[-1].totals if self.plot.events else {}
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
            value = result.figure(name)
            if value is not None:
                self.counters[name].setText(value)
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
            result.figure("lost"),
            result.figure("duplicated"),
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
        if not self.plot.save_png(path):
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


def _words(name: str) -> str:
    """A count's name as words that can wrap in a narrow pane."""
    return name.replace("_", " ")


def create_panel(context: PanelContext) -> QWidget:
    return DemosPanel(context)
