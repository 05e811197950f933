"""Commands a first-time user tried: topic configs, unknown topics, consume --count."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from core import settings
from core.cli import main
from core.settings import Settings
from core.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config_file(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> str:
    path = tmp_path_factory.mktemp("trial") / "settings.toml"
    return str(settings.save(stack_settings, path))


def test_topic_create_with_configs_beside_the_settings_file(
    stack: Stack, bootstrap: str, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"trial-{uuid.uuid4().hex[:8]}"
    argv = [
        "--config",
        config_file,
        "topic",
        "create",
        name,
        "--partitions",
        "2",
        "--replication-factor",
        "3",
        "--config",
        "retention.ms=86400000",
        "--json",
    ]

    assert main(argv) == 0

    assert json.loads(capsys.readouterr().out)["created"] == name
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "86400000"
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 2


def test_min_insync_above_the_replication_factor_is_refused(
    stack: Stack, bootstrap: str, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"trial-{uuid.uuid4().hex[:8]}"
    topic = ["--config", config_file, "topic"]
    create = [*topic, "create", name, "--replication-factor", "2", "--json"]

    assert main([*create, "--config", "min.insync.replicas=3"]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": f"min.insync.replicas 3 is more than the replication factor 2 of "
        f"{name}: every acks=all write would be refused",
        "hint": "use at most 2",
    }
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert name not in admin.list_topics(timeout=10).topics

    assert main([*create, "--config", "min.insync.replicas=2"]) == 0
    capsys.readouterr()
    assert main([*topic, "alter", name, "min.insync.replicas=3", "--json"]) == 2
    assert "more than the replication factor 2" in capsys.readouterr().out
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["min.insync.replicas"].value == "2"


def test_electing_leaders_of_an_unknown_topic_is_a_clear_error(
    stack: Stack, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--config",
        config_file,
        "topic",
        "elect-leaders",
        "no-such-topic",
        "--json",
    ]

    assert main(argv) == 2

    error = json.loads(capsys.readouterr().out)
    assert error == {
        "error": "No topic named no-such-topic",
        "hint": "run `cdc-studio cluster` to list the topics",
    }


def test_consume_with_a_group_commits_only_what_it_printed(
    stack: Stack, bootstrap: str, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group = f"trial-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    assert (
        main(
            [
                "--config",
                config_file,
                "topic",
                "create",
                topic,
                "--partitions",
                "1",
                "--replication-factor",
                "3",
            ]
        )
        == 0
    )
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(topic, value=f"v{i}".encode())
    assert producer.flush(30) == 0
    capsys.readouterr()

    argv = [
        "--config",
        config_file,
        "consume",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--count",
        "2",
        "--json",
    ]
    assert main(argv) == 0

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["offset"], r["value"]) for r in printed] == [(0, "v0"), (1, "v1")]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (committed,) = reader.committed([TopicPartition(topic, 0)], timeout=30)
    finally:
        reader.close()
    assert committed.offset == 2
