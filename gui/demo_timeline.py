"""The timeline of a demo run as a plot, live or from a run folder's result.json.

As a command, ``python -m gui.demo_timeline RUN_FOLDER`` writes the folder's
``timeline.png`` offscreen, for runs started from the command line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget

from core.demos.timeline import Event

# Running totals drawn as step curves, and their colours.
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


class TimelinePlot(pg.PlotWidget):
    """Running totals per event kind, crash/restart/recovery markers on top.

    Events are kept in a bounded list; ``redraw`` (driven by one timer in a
    live view) sets every curve from it with whole arrays.
    """

    def __init__(self, parent: QWidget | None = None, max_events: int = 5000) -> None:
        super().__init__(parent)
        self.max_events = max_events
        self.events: list[Event] = []
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._markers: list[pg.InfiniteLine] = []
        self._dirty = False
        self.setBackground("w")
        self.showGrid(x=True, y=True, alpha=0.3)
        self.setLabel("bottom", "seconds since the run started")
        self.setLabel("left", "records")
        self.addLegend(offset=(10, 10))
        self.setClipToView(True)
        self.setDownsampling(auto=True, mode="peak")

    def clear_run(self) -> None:
        for item in [*self._markers, *self._curves.values()]:
            self.removeItem(item)
        self._markers = []
        self._curves = {}
        legend = self.getPlotItem().legend
        if legend is not None:
            legend.clear()
        self.events = []
        self._dirty = True

    def add(self, event: Event) -> None:
        if len(self.events) < self.max_events:
            self.events.append(event)
            self._dirty = True
        if event.kind in MARKERS:
            self._markers.append(_marker(event))
            self.addItem(self._markers[-1])

    def extend(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for kind, colour in CURVES.items():
            xs, ys = steps(self.events, kind)
            curve = self._curves.get(kind)
            if curve is None and len(xs) > 1:
                curve = self.plot(name=kind, pen=pg.mkPen(colour, width=2))
                self._curves[kind] = curve
            if curve is not None:
                curve.setData(xs, ys)

    def save_png(self, path: Path) -> bool:
        self.redraw()
        return bool(self.grab().save(str(path)))


def _marker(event: Event) -> pg.InfiniteLine:
    colour = MARKERS[event.kind]
    return pg.InfiniteLine(
        pos=event.t,
        angle=90,
        pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine),
        label=event.kind,
        labelOpts={"position": 0.9, "color": colour, "rotateAxis": (1, 0)},
    )


def steps(events: list[Event], kind: str) -> tuple[list[float], list[float]]:
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


def events_from_json(items: list[dict[str, Any]]) -> list[Event]:
    return [
        Event(
            float(e["t"]),
            str(e["kind"]),
            str(e["source"]),
            str(e["text"]),
            int(e.get("count", 0)),
            dict(e.get("totals", {})),
        )
        for e in items
    ]


def write_png(run_dir: Path) -> Path:
    """Render ``run_dir``/result.json's timeline to ``run_dir``/timeline.png."""
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    plot = TimelinePlot()
    plot.resize(1000, 520)
    plot.setTitle(f"{result['number']}. {result['title']}: {result['verdict']}")
    plot.extend(events_from_json(result["timeline"]))
    path = run_dir / "timeline.png"
    if not plot.save_png(path):
        raise OSError(f"could not write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gui.demo_timeline RUN_FOLDER", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([])
    path = write_png(Path(args[0]))
    print(path)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
