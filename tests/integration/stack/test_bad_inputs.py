"""Bad inputs to the stack give one clear error and start nothing twice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import DataDirError, NodeDiedError, PortBusyError
from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack
from tests.conftest import PORT_BASE

pytestmark = pytest.mark.integration

# A port range of its own, apart from the session stack's.
SPARE_BASE = PORT_BASE + 300


def spare_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        kafka=KafkaSettings(controller_port=SPARE_BASE, base_port=SPARE_BASE + 2),
        h2=H2Settings(port=SPARE_BASE + 100),
    )


def test_busy_port_names_port_and_setting(tmp_path: Path) -> None:
    settings = spare_settings(tmp_path / "data")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.broker_port(2)))
        squatter.listen()
        with pytest.raises(PortBusyError) as info:
            Stack(settings).up()
    message = str(info.value)
    assert f"Port {settings.broker_port(2)} (for broker-2) is busy" in message
    assert "kafka.base_port" in message
    assert f"pid {os.getpid()}" in message  # the process holding it is named
    assert not Stack(settings).status().running


def test_unwritable_data_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataDirError) as info:
        Stack(spare_settings(blocker / "data")).up()
    assert "cannot be written" in str(info.value)
    assert "data_dir" in str(info.value)


def test_java_absent_from_path(tmp_path: Path) -> None:
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = venv_bin
    env["CDC_STUDIO_CONFIG"] = str(tmp_path / "none.toml")
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        f"[kafka]\ncontroller_port = {SPARE_BASE}\nbase_port = {SPARE_BASE + 2}\n"
        f"[h2]\nport = {SPARE_BASE + 100}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(settings_file),
            "--data-dir",
            str(tmp_path / "data"),
            "stack",
            "up",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 2, done.stderr
    answer = json.loads(done.stdout)
    assert answer["error"] == "Java was not found on PATH and JAVA_HOME is not set"
    assert "jvm.java_home" in answer["hint"]


def test_running_stack_is_reused_not_doubled(stack: Stack) -> None:
    before = {n.name: n.pid for n in stack.status().nodes}
    status, reused = Stack(stack.settings).up()
    assert reused is True
    assert {n.name: n.pid for n in status.nodes} == before
    assert all(n.up for n in status.nodes)
    java_pids = [p for p in before.values() if p is not None]
    assert len(set(java_pids)) == 5  # controller, 3 brokers, H2


def test_node_dying_at_start_quotes_its_log(stack: Stack, tmp_path: Path) -> None:
    settings = spare_settings(tmp_path / "data")
    settings.kafka.broker_heap_mb = 1  # the JVM refuses to start with 1 MB
    settings.data_path.mkdir(parents=True)
    (settings.data_path / "jvm").symlink_to(stack.settings.data_path / "jvm")
    spare = Stack(settings)
    try:
        with pytest.raises(NodeDiedError) as info:
            spare.up(timeout=60)
        message = str(info.value)
        assert "exited during start-up" in message
        assert "broker-" in message
        assert "heap" in message.lower()  # the JVM's own words, from the log
        # The failed start stopped what it had started (controller, H2, the
        # other brokers): nothing holds the spare stack's ports.
        assert [n.name for n in spare.status().nodes if n.up] == []
    finally:
        spare.down()
    assert not spare.status().running


def test_a_port_held_by_another_stack_names_its_folder(
    stack: Stack, tmp_path: Path
) -> None:
    settings = spare_settings(tmp_path / "data")
    settings.kafka.base_port = stack.settings.kafka.base_port  # the session's brokers

    with pytest.raises(PortBusyError) as info:
        Stack(settings).up()

    message = str(info.value)
    assert f"Port {settings.broker_port(1)} (for broker-1) is busy" in message
    assert (
        f"used by a node of the Kafka CDC Studio stack in {stack.settings.data_path}"
        in message
    )
