"""The relay rides out an H2 restart and a broker outage, and loses nothing."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from core.cdc.events import topic_for
from core.cdc.relay import RelayConfig
from core.demos import kafka_io
from core.h2 import outbox, triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from core.stack import Stack
from tests.integration.capture.conftest import read_topic, restart_h2, running_relay


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.expect_warnings
def test_relay_waits_for_h2_restart_and_resumes(
    stack: Stack, stack_settings: Settings, bootstrap: str
) -> None:
    schema = f"R_{uuid.uuid4().hex[:10].upper()}"
    with H2Connection(stack_settings) as conn:
        conn.run(f'CREATE SCHEMA "{schema}"')
        conn.run(f"CREATE TABLE {quote(schema)}.T (ID INT PRIMARY KEY)")
        triggers.add_rule(conn, CaptureRule(schema, "T"))
        conn.run(f"INSERT INTO {quote(schema)}.T VALUES (1), (2)")
    config = RelayConfig(
        prefix=f"r{uuid.uuid4().hex[:8]}",
        relay_id=f"outage-{uuid.uuid4().hex[:8]}",
        schemas=(schema,),
    )
    with running_relay(stack_settings, config) as (relay, errors):
        _wait(lambda: relay.stats.published >= 2, 60, "the first two changes")
        restart_h2(stack)
        with H2Connection(stack_settings) as conn:
            conn.run(f"INSERT INTO {quote(schema)}.T VALUES (3), (4)")
            _wait(
                lambda: not outbox.fetch(conn, 1, (schema,)), 60, "the outbox to drain"
            )

    records = read_topic(bootstrap, topic_for(config.prefix, schema, "T"), at_least=4)
    assert errors == []
    assert sorted(r.key for r in records) == [
        b'{"ID":1}',
        b'{"ID":2}',
        b'{"ID":3}',
        b'{"ID":4}',
    ]


@pytest.mark.expect_warnings
def test_relay_waits_for_brokers_and_resumes(
    h2: H2Connection,
    stack: Stack,
    stack_settings: Settings,
    bootstrap: str,
    schema: str,
) -> None:
    h2.run(f"CREATE TABLE {quote(schema)}.B (ID INT PRIMARY KEY)")
    triggers.add_rule(h2, CaptureRule(schema, "B"))
    h2.run(f"INSERT INTO {quote(schema)}.B VALUES (1)")
    config = RelayConfig(
        prefix=f"o{uuid.uuid4().hex[:8]}",
        relay_id=f"brokers-{uuid.uuid4().hex[:8]}",
        schemas=(schema,),
    )
    with running_relay(stack_settings, config) as (relay, errors):
        try:
            _wait(lambda: relay.stats.published >= 1, 60, "the first change")
            stack.stop_broker(2)
            stack.stop_broker(3)
            h2.run(f"INSERT INTO {quote(schema)}.B VALUES (2), (3)")
            _wait(
                lambda: relay.stats.state == "waiting for Kafka",
                60,
                "the relay to wait",
            )
            waiting_published = relay.stats.published
        finally:
            stack.up()  # both brokers back at once
        try:
            _wait(
                lambda: not outbox.fetch(h2, 1, (schema,)), 120, "the outbox to drain"
            )
        finally:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            kafka_io.wait_for_full_isr(
                bootstrap, list(admin.list_topics(timeout=30).topics)
            )

    records = read_topic(bootstrap, topic_for(config.prefix, schema, "B"), at_least=3)
    assert errors == []
    assert waiting_published == 1
    assert sorted(r.key for r in records) == [b'{"ID":1}', b'{"ID":2}', b'{"ID":3}']
