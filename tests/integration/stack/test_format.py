"""Formatting Kafka storage with the real tool: ids the tool could misread."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import jvm
from core.settings import KafkaSettings, Settings
from core.stack import kafka_node
from core.stack.stack import Stack

pytestmark = pytest.mark.integration


def test_a_cluster_id_starting_with_a_dash_formats(
    stack: Stack, stack_settings: Settings, tmp_path: Path
) -> None:
    # Stacks created before ids avoided "-" recorded such ids; the format
    # command must still take them as a value, not an option.
    java = jvm.find_java(stack_settings)
    build = jvm.ensure_built(stack_settings, java)
    mine = Settings(data_dir=str(tmp_path), kafka=KafkaSettings(controller_port=9))
    config = kafka_node.controller_config(mine)
    path = kafka_node.write_config(tmp_path / "controller.properties", config)
    cluster_id = "-Wc1n3vBT5WdyXFk7Yz3Ag"

    kafka_node.format_storage(java, build, cluster_id, [path])

    meta = Path(config["log.dirs"]) / "meta.properties"
    assert f"cluster.id={cluster_id}" in meta.read_text().splitlines()
    assert kafka_node.is_formatted(config)
