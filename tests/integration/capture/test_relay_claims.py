"""Claims: a relay for given schemas and a relay for all schemas side by side."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from core import settings
from core.cdc.events import topic_for
from core.cdc.relay import Relay, RelayConfig
from core.cli import main
from core.errors import RelayError
from core.h2 import outbox, triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from tests.integration.capture.conftest import read_topic

pytestmark = pytest.mark.integration


def _captured(h2: H2Connection, schema: str, values: list[int]) -> None:
    h2.run(f"CREATE TABLE {quote(schema)}.T (ID INT PRIMARY KEY)")
    triggers.add_rule(h2, CaptureRule(schema, "T"))
    for value in values:
        h2.run(f"INSERT INTO {quote(schema)}.T VALUES (?)", [value])


def _owner(settings: Settings, schema: str) -> Relay:
    """A relay for ``schema`` only, started: it has claimed the schema."""
    relay_id = f"claim-{uuid.uuid4().hex[:8]}"
    relay = Relay(
        settings,
        RelayConfig(
            prefix=f"o{uuid.uuid4().hex[:8]}", relay_id=relay_id, schemas=(schema,)
        ),
    )
    relay.run_once()
    return relay


def _drain(relay: Relay) -> int:
    total = 0
    while published := relay.run_once():
        total += published
    return total


def test_relay_for_all_schemas_leaves_a_claimed_schema_to_its_relay(
    h2: H2Connection,
    stack_settings: Settings,
    bootstrap: str,
    schema: str,
    other_schema: str,
) -> None:
    owner = _owner(stack_settings, schema)
    owner_id = owner.config.relay_id
    _captured(h2, schema, [1, 2, 3])
    _captured(h2, other_schema, [10, 20])

    everyone = Relay(
        stack_settings,
        RelayConfig(
            prefix=f"a{uuid.uuid4().hex[:8]}", relay_id=f"all-{uuid.uuid4().hex[:8]}"
        ),
    )
    _drain(everyone)
    everyone.close()
    other_topic = topic_for(everyone.config.prefix, other_schema, "T")
    others = read_topic(bootstrap, other_topic, at_least=2)

    # The claimed schema's rows waited for their own relay; the other went.
    assert sorted(r.key for r in others) == [b'{"ID":10}', b'{"ID":20}']
    assert [r.after_json for r in outbox.fetch(h2, 10, (schema,))] == [
        '{"ID":1}',
        '{"ID":2}',
        '{"ID":3}',
    ]
    assert outbox.fetch(h2, 10, (other_schema,)) == []
    assert outbox.claims(h2)[schema] == owner_id

    assert _drain(owner) == 3
    owner.close()  # a crash: the claim stays, the rows would wait for it
    assert outbox.claims(h2)[schema] == owner_id
    mine = read_topic(
        bootstrap, topic_for(owner.config.prefix, schema, "T"), at_least=3
    )
    assert sorted(json.loads(r.key or b"")["ID"] for r in mine) == [1, 2, 3]


def test_clean_stop_gives_the_claim_back_and_status_shows_claims(
    h2: H2Connection,
    stack_settings: Settings,
    schema: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner = _owner(stack_settings, schema)
    owner_id = owner.config.relay_id
    config = settings.save(stack_settings, tmp_path / "settings.toml")

    assert main(["--config", str(config), "relay", "status", "--json"]) == 0
    claimed = json.loads(capsys.readouterr().out)["claims"]
    assert main(["--config", str(config), "relay", "status"]) == 0
    text = capsys.readouterr().out
    stop = threading.Event()
    stop.set()
    owner.run(stop)  # started, then stopped cleanly

    assert claimed[schema] == owner_id
    assert f"schema {schema} is claimed by {owner_id}" in text
    assert schema not in outbox.claims(h2)
    assert owner.stats.state == "stopped"


def test_a_relay_for_a_schema_another_relay_claimed_is_refused_until_released(
    h2: H2Connection,
    stack_settings: Settings,
    schema: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    owner = _owner(stack_settings, schema)
    owner.close()  # a crash: its claim stays, its rows wait for it
    rival_config = RelayConfig(
        prefix=f"r{uuid.uuid4().hex[:8]}",
        relay_id=f"rival-{uuid.uuid4().hex[:8]}",
        schemas=(schema,),
    )
    rival = Relay(stack_settings, rival_config)
    with pytest.raises(RelayError) as refused:
        rival.run_once()
    rival.close()
    config = settings.save(stack_settings, tmp_path / "settings.toml")

    assert main(["--config", str(config), "relay", "release", schema, "--json"]) == 0
    released = json.loads(capsys.readouterr().out)
    again = Relay(stack_settings, rival_config)
    again.run_once()
    now_held = outbox.claims(h2).get(schema)
    again.close(release=True)

    message = str(refused.value)
    assert f"Schema {schema} is claimed by relay {owner.config.relay_id}" in message
    assert f"cdc-studio relay release {schema}" in (refused.value.hint or "")
    assert released == {"schema": schema, "released_from": owner.config.relay_id}
    assert now_held == rival_config.relay_id
    assert schema not in outbox.claims(h2)


def test_a_relay_for_a_missing_schema_is_refused(
    stack_settings: Settings, schema: str
) -> None:
    for name, hint in ((schema.lower(), f"did you mean {schema}?"), ("NOPE", "")):
        relay = Relay(
            stack_settings, RelayConfig(relay_id="r-missing", schemas=(name,))
        )
        with pytest.raises(RelayError, match=f"Schema {name} does not exist") as info:
            relay.run_once()
        relay.close()
        assert hint in (info.value.hint or "")
