"""The Cluster view: a 500 x 12 layout, and a live broker kill on the real stack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.kafka.cluster import (
    Broker,
    ClusterSnapshot,
    PartitionState,
    TopicConfig,
    TopicState,
)
from core.kafka.inspector import ClusterInspector
from core.kafka.timeline import diff
from core.stack import Stack
from gui.bridge import Bridge
from gui.panels.cluster import ClusterPanel, ClusterRefresher
from tests.conftest import PORT_BASE
from tests.integration.cluster.conftest import restart_broker, unique_topic

BROKERS = tuple(Broker(i, "127.0.0.1", 9000 + i, f"rack-{i}") for i in (1, 2, 3))


def big_snapshot(
    topics: int, partitions: int, dead: int | None = None
) -> ClusterSnapshot:
    """``topics`` x ``partitions``, RF 3, leaders spread; ``dead`` broker gone."""
    live = tuple(b for b in BROKERS if b.id != dead)
    state: dict[str, TopicState] = {}
    for t in range(topics):
        name = f"topic-{t:03d}"
        parts = []
        for n in range(partitions):
            replicas = tuple(((n + k) % 3) + 1 for k in range(3))
            isr = tuple(r for r in replicas if r != dead)
            leader = next(r for r in replicas if r != dead)
            parts.append(
                PartitionState(
                    name,
                    n,
                    leader,
                    replicas,
                    isr,
                    offline_replicas=tuple(r for r in replicas if r == dead),
                    min_insync_replicas=2,
                    log_start_offset=0,
                    high_watermark=n,
                    last_stable_offset=n,
                )
            )
        state[name] = TopicState(name, False, tuple(parts), TopicConfig(2))
    return ClusterSnapshot("cid", 1, live, state, time.time())


@pytest.fixture
def panel(qtbot: QtBot) -> Iterator[ClusterPanel]:
    bridge = Bridge()
    # Never started: the snapshots are handed to the panel by the test.
    inspector = ClusterInspector({"bootstrap.servers": f"127.0.0.1:{PORT_BASE + 270}"})
    refresher = ClusterRefresher(inspector, bridge)
    widget = ClusterPanel(refresher, bridge)
    qtbot.addWidget(widget)
    widget.resize(1200, 700)
    widget.show()
    yield widget
    bridge.wait_idle()


def test_500_topics_of_12_partitions_and_a_dead_broker(
    qtbot: QtBot, panel: ClusterPanel, tmp_path: Path
) -> None:
    healthy = big_snapshot(500, 12)
    panel.refresher.refreshed.emit(healthy, [])
    assert panel.grid.rowCount() == 6000
    assert panel.topics.rowCount() == 500
    assert [panel.grid.role_text(0, b) for b in (1, 2, 3)] == [
        "\u25c6 L",
        "\u25cf F",
        "\u25cf F",
    ]

    dead = big_snapshot(500, 12, dead=1)
    events = diff(healthy, dead)
    panel.refresher.refreshed.emit(dead, events)
    assert len(events) == 1 + 2000 + 6000  # left, leaders moved, ISRs shrank
    # 8000 partition events would bury "broker 1 left": they are summarised,
    # and the broker event is on top (newest first).
    shown = [panel.timeline.item(i).text()[10:] for i in range(3)]
    assert panel.timeline.count() == 3
    assert shown == [
        "broker 1 left",
        "ISR shrank: 6000 partitions of 500 topics "
        "(filter the topic list to list them here)",
        "leader moved: 2000 partitions of 500 topics "
        "(filter the topic list to list them here)",
    ]
    assert [panel.grid.role_text(0, b) for b in (1, 2, 3)] == [
        "\u2716 X",
        "\u25c6 L",
        "\u25cf F",
    ]
    assert "6000 under-replicated" in panel.summary.text()
    assert "broker 1" not in panel.balance.text()

    panel.filter_edit.setText("topic-007")
    assert panel.topics.names() == ["topic-007"]
    assert panel.grid.rowCount() == 12
    tooltip = panel.grid.data(panel.grid.index(5, 3), 3)  # ToolTipRole, broker 2
    assert "topic-007-5" in tooltip and "high watermark 5" in tooltip
    panel.problems_only.setChecked(True)
    assert panel.topics.names() == ["topic-007"]
    panel.grab().save(str(tmp_path / "cluster-panel.png"))


@pytest.mark.integration
def test_killed_leader_updates_the_grid_and_timeline(
    qtbot: QtBot, stack: Stack, bootstrap: str, tmp_path: Path
) -> None:
    bridge = Bridge()
    inspector = ClusterInspector({"bootstrap.servers": bootstrap}, timeout=5)
    topic = unique_topic("test.gui")
    refresher = ClusterRefresher(inspector, bridge, interval_ms=500)
    panel = ClusterPanel(refresher, bridge)
    qtbot.addWidget(panel)
    panel.resize(1200, 700)
    panel.show()
    refresher.start()
    try:
        panel.create_topic(topic, 3, 3)
        qtbot.waitUntil(
            lambda: panel.snapshot is not None and topic in panel.snapshot.topics,
            timeout=20_000,
        )
        panel.set_config(topic, "min.insync.replicas", "2")
        qtbot.waitUntil(
            lambda: (
                panel.snapshot is not None
                and panel.snapshot.topics[topic].config.min_insync_replicas == 2
            ),
            timeout=20_000,
        )
        panel.filter_edit.setText(topic)
        victim = panel.grid.partition_at(0).leader
        assert victim is not None
        assert panel.grid.role_text(0, victim) == "\u25c6 L"

        stack.kill_broker(victim)
        try:
            qtbot.waitUntil(
                lambda: (
                    panel.grid.rowCount() == 3
                    and all(
                        panel.grid.role_text(row, victim) == "\u2716 X"
                        for row in range(3)
                    )
                ),
                timeout=60_000,
            )
            left = [
                panel.timeline.item(i).text() for i in range(panel.timeline.count())
            ]
            assert any(text.endswith(f"broker {victim} left") for text in left)
            assert panel.grid.partition_at(0).leader not in (None, victim)
            assert any(
                f"{topic}-0: leader moved from {victim} to" in text for text in left
            )
            panel.grab().save(str(tmp_path / "cluster-killed.png"))
        finally:
            restart_broker(stack, victim, bootstrap, topic)
        qtbot.waitUntil(
            lambda: (
                panel.grid.rowCount() == 3
                and all(
                    panel.grid.role_text(row, victim) in ("\u25cf F", "\u25c6 L")
                    for row in range(3)
                )
            ),
            timeout=60_000,
        )
    finally:
        refresher.stop()
        bridge.wait_idle()
        inspector.delete_topic(topic)
        inspector.close()


def test_dashboard_mode_has_no_editing_and_follows_large_type(qtbot: QtBot) -> None:
    bridge = Bridge()
    inspector = ClusterInspector({"bootstrap.servers": f"127.0.0.1:{PORT_BASE + 271}"})
    panel = ClusterPanel(ClusterRefresher(inspector, bridge), bridge, dashboard=True)
    qtbot.addWidget(panel)
    panel.show()
    buttons = (
        panel.elect_button,
        panel.create_button,
        panel.config_button,
        panel.delete_button,
    )
    assert all(button.isHidden() for button in buttons)

    before = panel.grid_view.verticalHeader().defaultSectionSize()
    font = panel.font()
    font.setPointSizeF(font.pointSizeF() * 2)
    panel.setFont(font)
    assert panel.grid_view.verticalHeader().defaultSectionSize() > before
