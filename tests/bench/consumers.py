"""Benchmarks of consumers and lag against a running stack: lag sampling, GUI tail.

1. Lag: 10 groups over 10 topics of 100 partitions (1,000 partitions), each
   group 10 records behind on every partition; the time of one sample
   (goal: <= 1 s).
2. GUI: the live tail under 10,000 records/s from a producer process, for
   ``--seconds``: event-loop stall (p99 goal <= 50 ms), memory at start and
   end, and the frame rate of a pyqtgraph plot at load versus idle (goal:
   ratio >= 0.8).

Run: `.venv/bin/python -m tests.bench.consumers --bootstrap 127.0.0.1:19092`
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid

import numpy as np
import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.kafka.lag import GroupTarget, LagReader

PRODUCER = """
import sys, time
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
rate, seconds = int(sys.argv[3]), float(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
start = time.monotonic(); sent = 0
while time.monotonic() - start < seconds:
    due = int((time.monotonic() - start) * rate)
    while sent < due:
        try:
            p.produce(topic, key=b"k%d" % sent, value=b"value-%d" % sent)
            sent += 1
        except BufferError:
            p.poll(0.01)
    p.poll(0.001)
p.flush(30)
"""


def bench_lag(bootstrap: str) -> None:
    client = {"bootstrap.servers": bootstrap}
    admin = AdminClient(client)
    tag = uuid.uuid4().hex[:6]
    topics = [f"lagbench-{tag}-{n}" for n in range(10)]
    for future in admin.create_topics([NewTopic(t, 100, 1) for t in topics]).values():
        future.result(120)
    time.sleep(2)
    producer = Producer({**client, "linger.ms": 50})
    for topic in topics:
        for partition in range(100):
            for i in range(20):
                producer.produce(topic, value=b"x%d" % i, partition=partition)
        producer.poll(0)
    producer.flush(120)
    targets = []
    for n, topic in enumerate(topics):
        group = f"lagbench-{tag}-g{n}"
        consumer = Consumer({**client, "group.id": group})
        consumer.commit(
            offsets=[TopicPartition(topic, p, 10) for p in range(100)],
            asynchronous=False,
        )
        consumer.close()
        targets.append(GroupTarget(group, (topic,), "read_committed"))

    reader = LagReader(client)
    try:
        times = []
        for _ in range(6):
            sample = reader.sample(targets)
            times.append(sample.took_s)
        lags = {g.lag for g in sample.groups}
        exact = all(p.exact for g in sample.groups for p in g.partitions)
    finally:
        reader.close()
        for future in admin.delete_topics(topics).values():
            future.result(120)
    print(
        f"lag sample of 1000 partitions / 10 groups: first {times[0]:.3f} s, "
        f"median of next 5 {statistics.median(times[1:]):.3f} s "
        f"(goal <= 1 s); lag per group {lags}, counted exactly: {exact}"
    )


def bench_gui(bootstrap: str, seconds: float, rate: int) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui.panels.consumers import TailTab
    from gui.workarounds import GuiThreadCollector

    app = QApplication.instance() or QApplication([])
    collector = GuiThreadCollector()  # garbage collected as in the application
    collector.start()
    client = {"bootstrap.servers": bootstrap}
    topic = f"tailbench-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(client)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(60)
    time.sleep(1)

    plot = pg.PlotWidget()
    curve = plot.plot()
    plot.getPlotItem().setDownsampling(auto=True, mode="peak")
    plot.getPlotItem().setClipToView(True)
    data = np.random.default_rng(1).normal(size=600)
    frames: list[float] = []

    def redraw() -> None:
        data[:-1] = data[1:]
        data[-1] = np.random.default_rng().normal()
        curve.setData(data)
        plot.repaint()
        frames.append(time.monotonic())

    tab = TailTab(client, None)
    tab.resize(1200, 600)
    tab.show()
    plot.show()
    ticks: list[float] = []
    tick = QTimer()
    tick.timeout.connect(lambda: ticks.append(time.monotonic()))
    frame = QTimer()
    frame.timeout.connect(redraw)

    def run_for(duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.001)

    tick.start(10)
    frame.start(50)
    run_for(5)
    idle_fps = (len(frames) - 1) / (frames[-1] - frames[0])
    frames.clear()

    tab.topic.setText(topic)
    tab.tail()
    run_for(2)
    rss_start = psutil.Process().memory_info().rss
    ticks.clear()
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, bootstrap, topic, str(rate), str(seconds)]
    )
    run_for(seconds)
    producer.wait(120)
    run_for(2)
    load_fps = (len(frames) - 1) / (frames[-1] - frames[0])
    rss_end = psutil.Process().memory_info().rss
    gaps = np.diff(np.array(ticks)) * 1000 - 10
    tab.stop()
    collector.stop()
    admin.delete_topics([topic])[topic].result(60)
    print(
        f"tail: {tab.model.total} records in {seconds:.0f} s at {rate}/s asked; "
        f"event-loop stall p50 {np.percentile(gaps, 50):.1f} ms, "
        f"p99 {np.percentile(gaps, 99):.1f} ms, max {gaps.max():.1f} ms "
        f"(goal p99 <= 50 ms); memory {rss_start / 1e6:.0f} MB -> "
        f"{rss_end / 1e6:.0f} MB; plot fps idle {idle_fps:.1f}, load "
        f"{load_fps:.1f}, ratio {load_fps / idle_fps:.2f} (goal >= 0.8)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--only", choices=("lag", "gui"))
    args = parser.parse_args()
    if args.only in (None, "lag"):
        bench_lag(args.bootstrap)
    if args.only in (None, "gui"):
        bench_gui(args.bootstrap, args.seconds, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
