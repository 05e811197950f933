"""The relay in-process against the real stack: envelopes, order, rejects, fencing."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from core.cdc.events import topic_for
from core.cdc.relay import Relay, RelayConfig
from core.errors import RelayFencedError
from core.h2 import outbox, triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from tests.integration.capture.conftest import read_topic


def _relay(settings: Settings, schema: str, **kwargs: object) -> Relay:
    config = RelayConfig(
        prefix=f"t{uuid.uuid4().hex[:8]}",
        relay_id=f"test-relay-{uuid.uuid4().hex[:8]}",
        schemas=(schema,),
        **kwargs,  # type: ignore[arg-type]
    )
    return Relay(settings, config)


def _drain(relay: Relay) -> int:
    total = 0
    while published := relay.run_once():
        total += published
    return total


def _table(h2: H2Connection, schema: str, ddl: str, **rule: object) -> str:
    h2.run(f"CREATE TABLE {quote(schema)}.{ddl}")
    name = ddl.split(" ", 1)[0].strip('"')
    triggers.add_rule(h2, CaptureRule(schema, name, **rule))  # type: ignore[arg-type]
    return name


def test_envelope_key_and_topic(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    table = _table(h2, schema, "ORDERS (ID INT PRIMARY KEY, TOTAL DECIMAL(8,2))")
    relay = _relay(stack_settings, schema)
    h2.run(f"INSERT INTO {quote(schema)}.ORDERS VALUES (1, 9.90)")
    h2.run(f"UPDATE {quote(schema)}.ORDERS SET TOTAL = 10")
    h2.run(f"DELETE FROM {quote(schema)}.ORDERS")

    published = _drain(relay)
    relay.close()
    topic = topic_for(relay.config.prefix, schema, table)
    records = read_topic(bootstrap, topic, at_least=3)

    assert published == 3
    assert {r.key for r in records} == {b'{"ID":1}'}
    values = [
        json.loads(r.value or b"") for r in sorted(records, key=lambda r: r.offset)
    ]
    assert [(v["op"], v["before"], v["after"]) for v in values] == [
        ("c", None, {"ID": 1, "TOTAL": "9.90"}),
        ("u", {"ID": 1, "TOTAL": "9.90"}, {"ID": 1, "TOTAL": "10.00"}),
        ("d", {"ID": 1, "TOTAL": "10.00"}, None),
    ]
    sources = [v["source"] for v in values]
    assert [(s["db"], s["schema"], s["table"]) for s in sources] == [
        ("studio", schema, "ORDERS")
    ] * 3
    assert sources[0]["seq"] < sources[1]["seq"] < sources[2]["seq"]
    assert all(isinstance(s["tx_id"], str) and s["tx_id"] for s in sources)
    assert all(
        s["changed_ms"] <= s["commit_ms"] <= v["ts_ms"]
        for s, v in zip(sources, values, strict=True)
    )
    assert outbox.fetch(h2, 10, (schema,)) == []


def test_rollback_and_out_of_order_commits(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    table = _table(h2, schema, "ITEMS (ID INT PRIMARY KEY)")
    relay = _relay(stack_settings, schema)
    first, second, third = (H2Connection(stack_settings) for _ in range(3))
    for conn in (first, second, third):
        conn.set_autocommit(False)

    first.run(f"INSERT INTO {quote(schema)}.ITEMS VALUES (1)")
    third.run(f"INSERT INTO {quote(schema)}.ITEMS VALUES (3)")
    second.run(f"INSERT INTO {quote(schema)}.ITEMS VALUES (2)")
    second.commit()
    third.rollback()
    early = _drain(relay)
    first.commit()
    late = _drain(relay)
    relay.close()
    for conn in (first, second, third):
        conn.close()
    records = read_topic(
        bootstrap, topic_for(relay.config.prefix, schema, table), at_least=2
    )

    assert (early, late) == (1, 1)
    assert sorted(r.key for r in records) == [b'{"ID":1}', b'{"ID":2}']


@pytest.mark.expect_warnings
def test_too_large_row_is_rejected_and_others_go_on(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    table = _table(h2, schema, "DOCS (ID INT PRIMARY KEY, BODY VARCHAR)")
    relay = _relay(stack_settings, schema, max_message_bytes=100_000)
    h2.run(f"INSERT INTO {quote(schema)}.DOCS VALUES (1, 'small')")
    h2.run(f"INSERT INTO {quote(schema)}.DOCS VALUES (2, REPEAT('x', 200000))")
    h2.run(f"INSERT INTO {quote(schema)}.DOCS VALUES (3, 'small too')")

    published = _drain(relay)
    relay.close()
    records = read_topic(
        bootstrap, topic_for(relay.config.prefix, schema, table), at_least=2
    )
    rejected = [r for r in outbox.rejected(h2) if r[1] == schema]

    assert published == 2
    assert sorted(r.key for r in records) == [b'{"ID":1}', b'{"ID":3}']
    assert [(s, t, k) for _, s, t, k, _ in rejected] == [(schema, "DOCS", '{"ID":2}')]
    assert relay.stats.rejected == 1


def test_tombstone_and_table_without_key(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    keyed = _table(h2, schema, "K (ID INT PRIMARY KEY)", tombstone=True)
    keyless = _table(h2, schema, "L (A INT)")
    relay = _relay(stack_settings, schema)
    h2.run(f"INSERT INTO {quote(schema)}.K VALUES (5)")
    h2.run(f"DELETE FROM {quote(schema)}.K")
    h2.run(f"INSERT INTO {quote(schema)}.L VALUES (1), (2), (3)")
    h2.run(f"DELETE FROM {quote(schema)}.L WHERE A = 2")

    _drain(relay)
    relay.close()
    k = read_topic(bootstrap, topic_for(relay.config.prefix, schema, keyed), at_least=3)
    tail = read_topic(
        bootstrap, topic_for(relay.config.prefix, schema, keyless), at_least=4
    )

    assert [(r.key, json.loads(r.value)["op"] if r.value else None) for r in k] == [
        (b'{"ID":5}', "c"),
        (b'{"ID":5}', "d"),
        (b'{"ID":5}', None),
    ]
    assert {(r.partition, r.key) for r in tail} == {(0, None)}
    assert [json.loads(r.value or b"")["op"] for r in tail] == ["c", "c", "c", "d"]


@pytest.mark.expect_warnings
def test_older_relay_with_same_id_is_fenced(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    table = _table(h2, schema, "F (ID INT PRIMARY KEY)")
    old = _relay(stack_settings, schema)
    old.run_once()
    new = Relay(stack_settings, old.config)
    new.run_once()
    h2.run(f"INSERT INTO {quote(schema)}.F VALUES (1), (2)")

    with pytest.raises(RelayFencedError):
        old.run_once()
    published = _drain(new)
    new.close()
    records = read_topic(
        bootstrap, topic_for(old.config.prefix, schema, table), at_least=2
    )

    assert published == 2
    assert sorted(r.key for r in records) == [b'{"ID":1}', b'{"ID":2}']


@pytest.mark.expect_warnings
def test_a_refused_abort_starts_the_producer_again_and_loses_nothing(
    h2: H2Connection, stack_settings: Settings, bootstrap: str, schema: str
) -> None:
    """A topic deleted under the relay: its transaction fails before any
    partition joins it, librdkafka's abort is refused (INVALID_TXN_STATE,
    fatal), and the relay starts over, as after a restart."""
    from confluent_kafka.admin import AdminClient

    table = _table(h2, schema, "T (ID INT PRIMARY KEY)")
    relay = _relay(stack_settings, schema, producer_config={"message.timeout.ms": 3000})
    topic = topic_for(relay.config.prefix, schema, table)
    h2.run(f"INSERT INTO {quote(schema)}.T VALUES (1)")
    assert _drain(relay) == 1
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "the topic was not deleted"
        time.sleep(0.2)

    h2.run(f"INSERT INTO {quote(schema)}.T VALUES (2)")
    h2.run(f"INSERT INTO {quote(schema)}.T VALUES (3)")
    published = 0
    deadline = time.monotonic() + 120
    while published < 2:
        assert time.monotonic() < deadline, "the relay did not recover"
        published += relay.run_once()
    relay.close()

    # The topic came back with exactly the two new changes, once each.
    records = read_topic(bootstrap, topic, at_least=2)
    assert sorted(json.loads(r.key or b"")["ID"] for r in records) == [2, 3]
    assert relay.stats.restarts >= 1
    assert outbox.fetch(h2, 10, (schema,)) == []
