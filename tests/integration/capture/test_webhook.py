"""The webhook path: what it delivers, and the failures it cannot avoid."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from core import settings
from core.cdc.events import topic_for
from core.cdc.webhook import WebhookReceiver
from core.cli import main
from core.h2 import triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from tests.conftest import PORT_BASE
from tests.integration.capture.conftest import read_topic


def test_webhook_sends_rolled_back_changes_and_loses_changes_while_down(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    h2.run(f"CREATE TABLE {quote(schema)}.HOOKED (ID INT PRIMARY KEY, V VARCHAR)")
    receiver = WebhookReceiver(stack_settings, port=PORT_BASE + 200, prefix="hook")
    url = receiver.start()
    receiver.prepare(schema, ["HOOKED"])
    triggers.add_rule(
        h2,
        CaptureRule(
            schema,
            "HOOKED",
            mode="webhook",
            webhook_url=url,
            webhook_token=receiver.token,
        ),
    )
    table = f"{quote(schema)}.HOOKED"

    h2.run(f"INSERT INTO {table} VALUES (1, 'committed')")
    h2.set_autocommit(False)
    h2.run(f"INSERT INTO {table} VALUES (2, 'rolled back')")
    h2.rollback()
    h2.set_autocommit(True)
    try:
        urllib.request.urlopen(
            urllib.request.Request(url, data=b"{}", headers={"X-CDC-Token": "wrong"}),
            timeout=5,
        )
    except urllib.error.HTTPError as exc:
        refused = exc.code
    assert receiver.flush() == 0
    receiver.stop()
    h2.run(f"INSERT INTO {table} VALUES (3, 'while down')")

    records = read_topic(bootstrap, topic_for("hook", schema, "HOOKED"), at_least=2)
    values = [json.loads(r.value or b"") for r in records]
    assert refused == 401
    assert sorted(r.key for r in records) == [b'{"ID":1}', b'{"ID":2}']
    assert sorted(v["after"]["V"] for v in values) == ["committed", "rolled back"]
    assert h2.query(f"SELECT ID FROM {table} ORDER BY ID") == [[1], [3]]
    assert (receiver.stats.received, receiver.stats.refused) == (2, 1)


def test_webhook_command_creates_the_topics_it_is_told_before_changes_come(
    stack_settings: Settings,
    bootstrap: str,
    schema: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = settings.save(stack_settings, tmp_path / "settings.toml")
    args = ["--config", str(config), "webhook", "run", "--prefix", "hookcli"]
    table_args = ["--schema", schema, "--table", "A", "--table", "B"]

    code = main([*args, *table_args, "--duration", "0.2", "--json"])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert lines[0]["url"].startswith("http://127.0.0.1:")
    assert (lines[1]["received"], lines[1]["produced"]) == (0, 0)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=30).topics
    for table in ("A", "B"):
        topic = topics[topic_for("hookcli", schema, table)]
        assert len(topic.partitions) == 3
        assert {len(p.replicas) for p in topic.partitions.values()} == {3}
