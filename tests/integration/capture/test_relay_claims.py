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
    everyone.close(release=True)  # a clean stop: the next relay for all may run
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


def test_one_relay_for_all_schemas_at_a_time(stack_settings: Settings) -> None:
    def everyone(relay_id: str) -> Relay:
        return Relay(
            stack_settings,
            RelayConfig(prefix=f"a{uuid.uuid4().hex[:8]}", relay_id=relay_id),
        )

    first_id, second_id = (f"all-{uuid.uuid4().hex[:8]}" for _ in range(2))
    first = everyone(first_id)
    first.run_once()
    second = everyone(second_id)
    with pytest.raises(RelayError) as refused:
        second.run_once()
    second.close()
    first.close(release=True)  # a clean stop gives "every schema" back
    third = everyone(second_id)
    third.run_once()
    third.close(release=True)

    assert refused.value.args[0] == (
        f"Relay {first_id} publishes every schema: a second relay for all schemas "
        "would publish each change again"
    )
    assert "relay release '*'" in (refused.value.hint or "")


def test_release_refuses_the_claim_of_a_running_relay(
    h2: H2Connection,
    stack_settings: Settings,
    schema: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import time

    from core.cdc.cli import read_statuses
    from core.cdc.pipeline import start_relay_process

    relay_id = f"live-{uuid.uuid4().hex[:8]}"
    config = str(settings.save(stack_settings, tmp_path / "settings.toml"))
    release = ["--config", config, "relay", "release", schema, "--json"]
    process = start_relay_process(stack_settings, relay_id=relay_id, schemas=(schema,))
    try:
        deadline = time.monotonic() + 90
        while outbox.claims(h2).get(schema) != relay_id or not any(
            s.get("relay_id") == relay_id and s["alive"]
            for s in read_statuses(stack_settings)
        ):
            assert time.monotonic() < deadline, "the relay did not start"
            time.sleep(0.2)

        assert main(release) == 2
        refused = json.loads(capsys.readouterr().out)
        assert outbox.claims(h2).get(schema) == relay_id
        assert main([*release, "--force"]) == 0
        forced = json.loads(capsys.readouterr().out)
    finally:
        process.terminate()
        process.wait(60)

    assert refused == {
        "error": f"Relay {relay_id} is running (pid {process.pid}) and holds "
        f"{schema}: released, another relay would publish the same changes again",
        "hint": f"stop relay {relay_id} (a clean stop gives the claim back); "
        "--force drops it anyway",
    }
    assert forced == {"schema": schema, "released_from": relay_id}


def test_relay_run_refuses_a_positional_schema_and_a_zero_batch(
    stack_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(settings.save(stack_settings, tmp_path / "settings.toml"))
    assert main(["--config", config, "relay", "run", "MyShop", "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": "`relay run MyShop`: a schema to relay is given with --schema",
        "hint": "cdc-studio relay run --schema MyShop",
    }
    with pytest.raises(SystemExit) as usage:
        main(["--config", config, "relay", "run", "--batch-size", "0"])
    assert usage.value.code == 2
    assert "--batch-size: '0' is not a count: give a whole number of 1 or more" in (
        capsys.readouterr().err
    )


def test_capture_add_names_the_topic_of_a_table_kafka_cannot_name(
    h2: H2Connection,
    stack_settings: Settings,
    schema: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h2.run(f'CREATE TABLE {quote(schema)}."Order Items" (ID INT PRIMARY KEY)')
    config = str(settings.save(stack_settings, tmp_path / "settings.toml"))
    add = ["--config", config, "capture", "add", "Order Items", "--schema", schema]

    assert main([*add, "--json"]) == 0
    topic = json.loads(capsys.readouterr().out)["topic"]
    assert main(add) == 0
    text = capsys.readouterr().out

    assert topic == topic_for("h2", schema, "Order Items")
    assert topic.startswith(f"h2.{schema}.Order_Items.") and len(topic.split(".")) == 4
    assert text.strip() == (
        f"capturing {schema}.Order Items; the relay publishes it to {topic}"
    )
