"""The Lag view on the real stack: a lagging group, its stacked plot, exports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pytestqt.qtbot import QtBot

from core.cdc.pipeline import FEED_GROUP_PREFIX
from core.kafka.lag import GroupTarget, LagReader
from gui.bridge import Bridge
from gui.panels.lag import LagModel, LagPanel, RingBuffer
from tests.integration.consumers.helpers import produce

pytestmark = pytest.mark.gui


def test_ring_buffer_keeps_the_newest_samples_in_order() -> None:
    buffer = RingBuffer(capacity=3)
    for at in range(5):
        buffer.append(float(at), {"a": at * 10.0} if at != 3 else {"b": 1.0})
    assert buffer.ordered(buffer.times).tolist() == [2.0, 3.0, 4.0]
    assert buffer.column("a")[[0, 2]].tolist() == [20.0, 40.0]
    assert buffer.column("b")[1] == 1.0


@pytest.fixture
def lagging_group(bootstrap: str) -> tuple[str, str]:
    client = {"bootstrap.servers": bootstrap}
    topic = f"lagview-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client)
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
    produce(client, topic, [f"v{i}" for i in range(30)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({**client, "group.id": group})
    consumer.commit(
        offsets=[TopicPartition(topic, p, 2 + p) for p in range(3)], asynchronous=False
    )
    consumer.close()
    return group, topic


@pytest.fixture
def panel(qtbot: QtBot, bootstrap: str) -> Iterator[LagPanel]:
    bridge = Bridge()
    reader = LagReader({"bootstrap.servers": bootstrap}, timeout=5)
    model = LagModel(reader, bridge, None, interval_ms=300)
    widget = LagPanel(model)
    qtbot.addWidget(widget)
    widget.resize(1300, 700)
    widget.show()
    yield widget
    model.stop()
    bridge.wait_idle()
    reader.close()


def test_lagging_group_is_plotted_and_exported(
    qtbot: QtBot,
    panel: LagPanel,
    lagging_group: tuple[str, str],
    bootstrap: str,
    tmp_path: Path,
) -> None:
    group, topic = lagging_group
    # The Pipeline view's feed group has offsets too; it is not the user's.
    feed = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{FEED_GROUP_PREFIX}t"}
    )
    feed.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    feed.close()
    panel.model.set_isolation(group, "read_committed")
    panel.model.start()
    qtbot.waitUntil(lambda: panel.group.findText(group) >= 0, timeout=30000)
    assert panel.group.findText(f"{FEED_GROUP_PREFIX}t") == -1
    panel.group.setCurrentText(group)
    qtbot.waitUntil(lambda: panel.model.buffer.count >= 3, timeout=30000)
    qtbot.waitUntil(lambda: len(panel._curves) == 3, timeout=5000)

    rows = {
        int(panel.table.item(r, 1).text()): panel.table.item(r, 8).text()
        for r in range(panel.table.rowCount())
    }
    assert rows == {0: "8", 1: "7", 2: "6"}  # 10 records each, committed 2, 3, 4
    top = max(panel._curves.values(), key=lambda c: c.zValue())
    assert float(top.yData[-1]) == 8.0  # the first band (partition 0) is on top
    assert max(float(c.yData[-1]) for c in panel._curves.values()) == 21.0
    assert panel.isolation.currentText() == "read_committed"

    png = tmp_path / "lag.png"
    panel.export_png(png)
    assert png.stat().st_size > 10_000
    panel.grab().save(str(tmp_path / "panel.png"))
    csv_file = tmp_path / "lag.csv"
    panel.export_csv(csv_file)
    header, *data = csv_file.read_text().splitlines()
    assert header.split(",")[:3] == ["time", "consumed", "lag"]
    assert {f"p|{topic}-{p}" for p in range(3)} <= set(header.split(","))
    assert len(data) == panel.model.buffer.count


def test_switching_cluster_starts_a_new_history(
    qtbot: QtBot, panel: LagPanel, bootstrap: str
) -> None:
    panel.model.start()
    qtbot.waitUntil(lambda: panel.model.buffer.count >= 2, timeout=30000)
    first = panel.model.reader
    second = LagReader({"bootstrap.servers": bootstrap}, timeout=5)
    panel.model.use_reader(second)
    assert panel.model.buffer.count == 0
    qtbot.waitUntil(lambda: panel.model.buffer.count >= 1, timeout=30000)
    assert panel.model.reader is second
    qtbot.waitUntil(lambda: not panel.model._retired, timeout=10000)
    panel.model.stop()
    panel.model._bridge.wait_idle()
    second.close()
    assert first is not second


def test_target_prefers_the_users_choice_then_the_running_group() -> None:
    from gui.panels.lag import _target

    running = {"g1": GroupTarget("g1", ("t",), "read_committed", "earliest")}
    assert _target("g1", {}, running) == GroupTarget(
        "g1", None, "read_committed", "earliest"
    )
    assert _target("g1", {"g1": "read_uncommitted"}, running).isolation == (
        "read_uncommitted"
    )
    assert _target("g2", {}, running) == GroupTarget("g2", None, "read_uncommitted")
