"""Pure parts of the stack: configs, ports, process identity, CLI output."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from core.cli import table
from core.errors import PortBusyError
from core.settings import Settings
from core.stack import kafka_node, process
from core.stack.process import NodeRecord
from core.stack.stack import api_versions_ok


def test_broker_config_demo_defaults(tmp_path: Path) -> None:
    conf = Settings(data_dir=str(tmp_path))
    config = kafka_node.broker_config(conf, 2, 3)
    assert config["node.id"] == "2"
    assert config["broker.rack"] == "rack-2"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19093"
    assert config["controller.quorum.voters"] == "0@127.0.0.1:19090"
    assert config["transaction.state.log.min.isr"] == "2"
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["unclean.leader.election.enable"] == "false"
    assert config["replica.selector.class"].endswith("RackAwareReplicaSelector")
    single = kafka_node.broker_config(conf, 1, 1)
    assert single["transaction.state.log.min.isr"] == "1"
    assert single["default.replication.factor"] == "1"


def test_controller_is_kept_apart(tmp_path: Path) -> None:
    config = kafka_node.controller_config(Settings(data_dir=str(tmp_path)))
    assert config["process.roles"] == "controller"
    assert config["listeners"] == "CONTROLLER://127.0.0.1:19090"


def test_cluster_ids_are_kafka_shaped() -> None:
    ids = {kafka_node.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and "=" not in i for i in ids)


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 makes the first base64 character "-": the format tool would read
    # the id as an option. The generator draws again.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(kafka_node.uuid, "uuid4", lambda: next(draws))

    assert kafka_node.new_cluster_id() == "A" * 22


def test_port_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortBusyError) as info:
            process.check_port_free(port, "h2.port", "h2")
        assert f"Port {port} (for h2) is busy" in str(info.value)
        assert "set h2.port" in str(info.value)
        assert api_versions_ok(port, timeout=0.2) is False
    process.check_port_free(port, "h2.port", "h2")


def test_process_identity_survives_pid_checks(tmp_path: Path) -> None:
    pid, created = process.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "n.log",
        tmp_path,
    )
    record = NodeRecord(
        "n", "test", None, 1, None, pid, created, str(tmp_path / "n.log")
    )
    assert process.is_running(record)
    stranger = NodeRecord("n", "test", None, 1, None, pid, created - 5, "")
    assert not process.is_running(stranger)  # same pid, another process
    process.kill(record)
    assert not process.is_running(record)
    assert "=== started" in process.log_tail(tmp_path / "n.log")


def test_sql_table_text() -> None:
    text = table(["ID", "NAME", "B"], [[1, "Zoë", b"\x01"], [2, None, None]])
    assert text.splitlines() == [
        "ID | NAME | B    ",
        "---+------+------",
        "1  | Zoë  | X'01'",
        "2  | NULL | NULL ",
        "(2 rows)",
    ]


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in "
        "('PySide6', 'shiboken6', 'pyqtgraph', 'gui')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
