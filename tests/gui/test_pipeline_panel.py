"""The Pipeline view on the real stack: rules, backlog, relay, live diff feed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.cdc.relay import Relay, RelayConfig
from core.h2 import triggers
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from core.stack import Stack
from gui.bridge import Bridge
from gui.panels.pipeline import PipelineModel, PipelinePanel, event_html

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


def _cells(table: object, column: int) -> list[str]:
    return [
        table.item(row, column).text()  # type: ignore[attr-defined]
        for row in range(table.rowCount())  # type: ignore[attr-defined]
        if table.item(row, column) is not None  # type: ignore[attr-defined]
    ]


def test_pipeline_shows_rules_backlog_and_changes(
    qtbot: QtBot, stack: Stack, stack_settings: Settings, tmp_path: Path
) -> None:
    schema = f"P_{uuid.uuid4().hex[:8].upper()}"
    prefix = f"p{uuid.uuid4().hex[:8]}"
    conn = H2Connection(stack_settings)
    conn.run(f'CREATE SCHEMA "{schema}"')
    conn.run(f'CREATE TABLE "{schema}".ITEMS (ID INT PRIMARY KEY, N INT, NOTE VARCHAR)')
    triggers.add_rule(
        conn, CaptureRule(schema, "ITEMS", changed_columns=("N",), predicate="N > 0")
    )
    bridge = Bridge()
    model = PipelineModel(
        stack_settings,
        bridge,
        None,
        prefix=prefix,
        interval_ms=300,
        feed_from_beginning=True,
    )
    panel = PipelinePanel(model)
    qtbot.addWidget(panel)
    panel.resize(1300, 800)
    panel.show()
    model.start()
    relay = Relay(
        stack_settings,
        RelayConfig(
            prefix=prefix, relay_id=f"gui-{uuid.uuid4().hex[:8]}", schemas=(schema,)
        ),
    )
    try:
        conn.run(f"INSERT INTO \"{schema}\".ITEMS VALUES (1, 1, 'a'), (2, 5, 'b')")
        name = f"{schema}.ITEMS"
        qtbot.waitUntil(lambda: name in _cells(panel.paths, 0), timeout=WAIT_MS)
        row = _cells(panel.paths, 0).index(name)
        qtbot.waitUntil(lambda: panel.paths.item(row, 3).text() == "2", timeout=WAIT_MS)
        rule_text = panel.paths.item(row, 1).text()

        conn.run(f'UPDATE "{schema}".ITEMS SET N = 2 WHERE ID = 1')
        while relay.run_once():
            pass
        qtbot.waitUntil(lambda: "u" in _cells(panel.feed, 2), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.paths.item(row, 3).text() == "0", timeout=WAIT_MS)
        feed_ops = _cells(panel.feed, 2)
        changed = _cells(panel.feed, 4)[feed_ops.index("u")]
        panel.feed.selectRow(feed_ops.index("u"))
        detail = panel.detail.toHtml()
        panel.grab().save(str(tmp_path / "pipeline.png"))
    finally:
        relay.close()
        model.shutdown()
        bridge.wait_idle()
        conn.close()

    assert rule_text == "insert,update,delete; if changed: N; where N > 0"
    assert sorted(feed_ops) == ["c", "c", "u"]
    assert changed == "N: 1 → 2"
    assert "#ffe066" in event_html(model.events[-1]) and "ffe066" in detail
    assert (tmp_path / "pipeline.png").stat().st_size > 0
