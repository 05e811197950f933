"""`cdc-studio cluster` and the Prometheus exporter give the inspector's numbers."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from core import cli, settings
from core.kafka.exporter import Exporter
from core.kafka.inspector import ClusterInspector
from core.kafka.lag import LagReader
from core.settings import Settings
from tests.conftest import PORT_BASE
from tests.integration.cluster.conftest import unique_topic, wait_for

pytestmark = pytest.mark.integration
EXPORTER_PORT = PORT_BASE + 200


@pytest.fixture()
def config_file(stack_settings: Settings, tmp_path: Path) -> Path:
    return settings.save(stack_settings, tmp_path / "settings.toml")


@pytest.fixture()
def topic_with_records(bootstrap: str, inspector: ClusterInspector) -> Iterator[str]:
    topic = unique_topic("test.export")
    inspector.create_topic(topic, 3, 3)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for n in range(7):
        producer.produce(topic, value=b"x", partition=n % 3)
    assert producer.flush(30) == 0
    yield topic
    inspector.delete_topic(topic)


def test_cluster_json_equals_the_inspector(
    config_file: Path,
    topic_with_records: str,
    inspector: ClusterInspector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = topic_with_records
    argv = ["--config", str(config_file), "cluster", "--json", "--topic", topic]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)

    expected = inspector.snapshot().topics[topic].to_json()
    assert printed["topics"] == [expected]
    assert [p["high_watermark"] for p in expected["partitions"]] == [3, 2, 2]
    assert [b["id"] for b in printed["brokers"]] == [1, 2, 3]

    assert cli.main(["--config", str(config_file), "cluster", "--topic", topic]) == 0
    text = capsys.readouterr().out
    assert f"topic {topic}: 3 partitions, replication factor 3" in text


def test_cluster_command_on_a_closed_port_says_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = Settings(data_dir=str(tmp_path))
    conf.kafka.brokers = 1
    conf.kafka.base_port = PORT_BASE + 250  # nothing listens there
    conf.kafka.controller_port = PORT_BASE + 251
    conf.h2.port = PORT_BASE + 252
    path = settings.save(conf, tmp_path / "closed.toml")
    argv = ["--config", str(path), "cluster", "--json", "--timeout", "3"]
    assert cli.main(argv) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error"].startswith(
        f"No broker answers at 127.0.0.1:{PORT_BASE + 250}"
    )
    assert "cdc-studio stack up" in error["hint"]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_prometheus_endpoint_serves_the_inspector_numbers(
    bootstrap: str, topic_with_records: str, inspector: ClusterInspector
) -> None:
    topic = topic_with_records
    group = f"g-{topic}"
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    committer.close()
    exporter = Exporter(
        ClusterInspector({"bootstrap.servers": bootstrap}),
        "127.0.0.1",
        EXPORTER_PORT,
        interval=0.5,
        lag_reader=LagReader({"bootstrap.servers": bootstrap}),
    )
    exporter.start()
    try:

        def partition_metrics() -> dict[tuple[int, str], float] | None:
            found = {
                (int(dict(labels)["partition"]), name): value
                for (name, labels), value in scrape(EXPORTER_PORT).items()
                if dict(labels).get("topic") == topic
            }
            return found or None

        got = wait_for(partition_metrics, 10, "the topic's metrics")
        snapshot = inspector.snapshot()
        prefix = "cdc_studio_kafka_partition_"
        for p in snapshot.topics[topic].partitions:
            n = p.partition
            assert got[(n, prefix + "leader")] == p.leader
            assert got[(n, prefix + "replicas")] == 3
            assert got[(n, prefix + "in_sync_replicas")] == len(p.isr) == 3
            assert got[(n, prefix + "under_replicated")] == 0
            assert got[(n, prefix + "offline")] == 0
            assert got[(n, prefix + "log_start_offset")] == p.log_start_offset == 0
            assert got[(n, prefix + "high_watermark")] == p.high_watermark
            assert got[(n, prefix + "last_stable_offset")] == p.last_stable_offset
        assert [got[(n, prefix + "high_watermark")] for n in range(3)] == [3, 2, 2]

        everything = scrape(EXPORTER_PORT)
        assert everything[("cdc_studio_kafka_brokers", ())] == 3
        assert everything[("cdc_studio_kafka_refresh_success", ())] == 1
        led = {
            dict(labels)["broker"]: value
            for (name, labels), value in everything.items()
            if name == "cdc_studio_kafka_broker_leader_partitions"
        }
        counts = exporter.inspector.last.leader_counts()  # type: ignore[union-attr]
        assert led == {str(b): float(c) for b, c in counts.items()}

        # The group committed 2 of partition 0's 3 records: lag 1 there.
        lag = {
            (dict(labels)["partition"], dict(labels)["against"]): value
            for (name, labels), value in everything.items()
            if name == "cdc_studio_kafka_consumer_group_lag"
            and dict(labels)["group"] == group
        }
        assert lag[("0", "high_watermark")] == lag[("0", "last_stable_offset")] == 1
        committed = (
            "cdc_studio_kafka_consumer_group_committed_offset",
            (("group", group), ("partition", "0"), ("topic", topic)),
        )
        assert everything[committed] == 2
    finally:
        exporter.stop()
        exporter.inspector.close()
