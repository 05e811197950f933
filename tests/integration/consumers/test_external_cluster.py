"""Lag on a cluster that is not ours: a second cluster reached through a profile."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.cli import main
from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack
from tests.conftest import PORT_BASE

pytestmark = pytest.mark.integration

OTHER_BASE = PORT_BASE + 400  # apart from the session stack and other spares


@pytest.fixture(scope="module")
def other_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-broker cluster of its own: for our profile it is just an address."""
    settings = Settings(
        data_dir=str(tmp_path_factory.mktemp("other-cluster")),
        kafka=KafkaSettings(controller_port=OTHER_BASE, base_port=OTHER_BASE + 2),
        h2=H2Settings(port=OTHER_BASE + 100),
    )
    stack = Stack(settings)
    try:
        status, _ = stack.up(brokers=1)
        yield status.bootstrap_servers
    finally:
        stack.down(wipe=True)


def test_lag_through_a_profile_on_another_cluster(
    other_cluster: str,
    bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic, group = f"ext-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": other_cluster})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": other_cluster})
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": other_cluster, "group.id": group})
    try:  # the group has read 2 of partition 0's 5 records, 4 of partition 1's
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 4)],
            asynchronous=False,
        )
    finally:
        consumer.close()

    config = tmp_path / "settings.toml"
    config.write_text("")
    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(config))
    base = ["--data-dir", str(tmp_path / "data")]
    argv = [*base, "profile", "add", "other", "--bootstrap", other_cluster, "--json"]
    assert main(argv) == 0
    capsys.readouterr()

    argv = [*base, "lag", "--profile", "other", "--group", group, "--json"]
    assert main(argv) == 0

    sample = json.loads(capsys.readouterr().out)
    (found,) = sample["groups"]
    lags = {
        p["partition"]: (p["committed"], p["high_watermark"], p["lag"])
        for p in found["partitions"]
    }
    assert lags == {0: (2, 5, 3), 1: (4, 5, 1)}
    assert other_cluster != bootstrap  # not the embedded stack's brokers
