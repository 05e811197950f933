"""The Consumers view on the real stack: members, a kill, both panes, the tail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from pytestqt.qtbot import QtBot

from core.settings import Settings
from gui.bridge import Bridge
from gui.panels.consumers import ConsumersPanel
from tests.integration.consumers.helpers import produce

pytestmark = pytest.mark.gui


@pytest.fixture
def topic(bootstrap: str) -> str:
    name = f"consview-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 2, 3)])[name].result(30)
    return name


@pytest.fixture
def panel(
    qtbot: QtBot, bootstrap: str, stack_settings: Settings
) -> Iterator[ConsumersPanel]:
    bridge = Bridge()
    widget = ConsumersPanel({"bootstrap.servers": bootstrap}, stack_settings, bridge)
    qtbot.addWidget(widget)
    widget.resize(1300, 700)
    widget.show()
    yield widget
    bridge.wait_idle()
    widget.shutdown()


def _states(panel: ConsumersPanel) -> dict[str, str]:
    table = panel.groups.member_table
    return {
        table.item(r, 0).text(): table.item(r, 2).text()
        for r in range(table.rowCount())
        if table.item(r, 2)
    }


def test_group_members_kill_and_timeline(
    qtbot: QtBot,
    panel: ConsumersPanel,
    topic: str,
    tmp_path: Path,
) -> None:
    tab = panel.groups
    tab.group_id.setText(f"g-{uuid.uuid4().hex[:8]}")
    tab.topics.setText(topic)
    tab.members.setValue(2)
    tab.start_group()
    qtbot.waitUntil(lambda: _states(panel) == {"m1": "up", "m2": "up"}, timeout=60000)
    qtbot.waitUntil(
        lambda: all(tab.member_table.item(r, 4).text() for r in range(2)), timeout=60000
    )

    tab.member_table.selectRow(1)
    tab._kill()
    qtbot.waitUntil(lambda: _states(panel).get("m2") == "crashed", timeout=30000)
    texts = [tab.timeline.item(i).text() for i in range(tab.timeline.count())]
    assert any("member-crashed" in t and "m2" in t for t in texts)
    assert any("rebalance" in t for t in texts)
    panel.grab().save(str(tmp_path / "groups.png"))


def test_isolation_panes_and_trainer_transaction(
    qtbot: QtBot,
    panel: ConsumersPanel,
    topic: str,
    tmp_path: Path,
) -> None:
    tab = panel.isolation
    panel.setCurrentWidget(tab)
    tab.topic.setText(topic)
    tab.watch()
    tab._send()
    qtbot.waitUntil(lambda: tab.uncommitted.count() == 5, timeout=30000)
    assert all("[open]" in tab.uncommitted.item(i).text() for i in range(5))
    assert tab.committed.count() == 0
    panel.grab().save(str(tmp_path / "isolation-open.png"))

    tab._commit()
    qtbot.waitUntil(lambda: tab.committed.count() == 5, timeout=30000)
    qtbot.waitUntil(
        lambda: all("[committed]" in tab.uncommitted.item(i).text() for i in range(5)),
        timeout=30000,
    )
    panel.grab().save(str(tmp_path / "isolation-committed.png"))


def test_live_tail_shows_new_records(
    qtbot: QtBot,
    panel: ConsumersPanel,
    topic: str,
    bootstrap: str,
    tmp_path: Path,
) -> None:
    tab = panel.tail
    panel.setCurrentWidget(tab)
    tab.topic.setText(topic)
    tab.tail()
    qtbot.waitUntil(lambda: tab.pump is not None, timeout=5000)
    # The tail starts at the end: write until its first record arrives.
    client = {"bootstrap.servers": bootstrap}
    qtbot.waitUntil(
        lambda: produce(client, topic, ["warm"], 1) or tab.model.total > 0,
        timeout=30000,
    )
    produce(client, topic, [f"v{i}" for i in range(50)], partitions=2)
    wanted = {f"v{i}".encode() for i in range(50)}
    qtbot.waitUntil(
        lambda: wanted <= {row.value for row in tab.model.rows}, timeout=30000
    )
    seen = [row for row in tab.model.rows if row.value in wanted]
    assert len(seen) == 50
    assert {row.partition for row in seen} == {0, 1}
    panel.grab().save(str(tmp_path / "tail.png"))
