"""Benchmark: the Cluster view with 500 topics x 12 partitions (offscreen).

Run with `python -m tests.bench.cluster_view`. Measures, over several runs,
the timeline diff of a broker loss and the GUI thread's time to show a new
snapshot (grid model, topic list, summary, timeline), and compares the
latter with a budget of a tenth of the 1 s refresh interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from core.kafka.inspector import ClusterInspector
from core.kafka.timeline import diff
from gui.bridge import Bridge
from gui.panels.cluster import ClusterPanel, ClusterRefresher
from tests.gui.test_cluster_panel import big_snapshot

GUI_BUDGET_S = 0.1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--topics", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication([])
    bridge = Bridge()
    # Never refreshed: snapshots are handed over directly. Port 9 is closed.
    inspector = ClusterInspector({"bootstrap.servers": "127.0.0.1:9"})
    panel = ClusterPanel(ClusterRefresher(inspector, bridge), bridge)
    panel.resize(1400, 800)
    panel.show()

    healthy = big_snapshot(args.topics, args.partitions)
    dead = big_snapshot(args.topics, args.partitions, dead=1)
    diffs: list[float] = []
    shows: list[float] = []
    for run in range(args.runs):
        started = time.perf_counter()
        events = diff(healthy, dead)
        diffs.append(time.perf_counter() - started)

        shown = big_snapshot(args.topics, args.partitions, dead=1 if run % 2 else None)
        started = time.perf_counter()
        shown.summary()  # the refresher does this on its worker thread
        worker = time.perf_counter() - started
        started = time.perf_counter()
        panel.refresher.refreshed.emit(shown, events)
        app.processEvents()
        shows.append(time.perf_counter() - started)
        print(
            f"run {run + 1}: diff {diffs[-1] * 1000:.1f} ms ({len(events)} events), "
            f"flags {worker * 1000:.1f} ms, show {shows[-1] * 1000:.1f} ms",
            flush=True,
        )

    show = statistics.median(shows)
    print()
    print(f"cluster view, {args.topics} topics x {args.partitions} partitions")
    print(f"  diff median:  {statistics.median(diffs) * 1000:.1f} ms")
    print(f"  show median:  {show * 1000:.1f} ms")
    print(f"  show / budget ({GUI_BUDGET_S * 1000:.0f} ms): {show / GUI_BUDGET_S:.2f}")
    panel.close()
    panel.deleteLater()
    bridge.deleteLater()
    app.processEvents()
    inspector.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
