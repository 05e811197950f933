"""The exporter says where it serves, and why it cannot when the port is taken."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.errors import PortBusyError
from core.kafka import cluster_cli
from core.kafka.cluster import ClusterSnapshot
from core.kafka.exporter import Exporter


class FakeInspector:
    """A cluster of one broker-less snapshot, answered at once."""

    def refresh(self, **_: Any) -> tuple[ClusterSnapshot, list[Any]]:
        return ClusterSnapshot("cid", 1, (), {}, 1.0), []

    def client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": "127.0.0.1:1"}

    def close(self) -> None:
        pass


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another socket listens on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def monitor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """`monitor` argv on a fake cluster; its wait returns at once."""
    monkeypatch.setattr(cluster_cli, "open_inspector", lambda *a, **k: FakeInspector())
    monkeypatch.setattr(Exporter, "wait", Exporter.stop)
    config = tmp_path / "settings.toml"
    config.write_text("")
    return ["--config", str(config), "--data-dir", str(tmp_path), "monitor"]


def test_a_busy_port_is_named_with_its_address(busy_port: int) -> None:
    exporter = Exporter(FakeInspector(), "127.0.0.1", busy_port)  # type: ignore[arg-type]
    with pytest.raises(PortBusyError) as caught:
        exporter.start()
    assert caught.value.args[0] == (
        f"Cannot serve metrics on 127.0.0.1:{busy_port}: the port is busy"
    )
    assert caught.value.hint == (
        "stop the process using it, or choose another port: --prometheus HOST:PORT"
    )


def test_monitor_on_a_busy_port_says_so(
    busy_port: int, monitor: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*monitor, "--prometheus", f"127.0.0.1:{busy_port}", "--no-lag"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: Cannot serve metrics on 127.0.0.1:{busy_port}: the port is busy\n"
        "  -> stop the process using it, or choose another port: "
        "--prometheus HOST:PORT\n"
    )


def test_an_ipv6_address_is_printed_in_brackets(
    monitor: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = int(sock.getsockname()[1])
    assert main([*monitor, "--prometheus", f"[::1]:{port}", "--no-lag"]) == 0
    assert capsys.readouterr().out == (
        f"serving Prometheus metrics on http://[::1]:{port}/metrics (Ctrl+C stops)\n"
    )


def test_the_url_of_an_ipv6_exporter_serves_its_metrics() -> None:
    exporter = Exporter(FakeInspector(), "::1", 0)  # type: ignore[arg-type]
    exporter.start()
    try:
        assert exporter.url == f"http://[::1]:{exporter.port}/metrics"
        with urllib.request.urlopen(exporter.url, timeout=5) as response:
            body = response.read().decode()
    finally:
        exporter.stop()
    assert "cdc_studio_kafka_refresh_success 1.0" in body.splitlines()


@pytest.mark.parametrize("interval", ["-1", "0"])
def test_monitor_refuses_an_interval_of_zero_or_less(
    interval: str, monitor: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [*monitor, "--prometheus", f"127.0.0.1:{port}", "--interval", interval]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--no-lag"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"cdc-studio monitor: error: argument --interval: '{interval}' is not a "
        "number of seconds: give one above 0, such as 2 or 0.5"
    )
