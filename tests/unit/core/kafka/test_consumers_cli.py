"""The consumer commands' errors when the cluster is not where they were told."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from core.cli import main


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("group", [[], ["--group", "gx"]], ids=["all", "one"])
def test_lag_names_the_unreachable_bootstrap(
    closed_port: int,
    group: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("")
    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(config))
    bootstrap = f"127.0.0.1:{closed_port}"
    argv = ["--data-dir", str(tmp_path), "lag", "--bootstrap", bootstrap, *group]

    assert main([*argv, "--json"]) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error"].startswith(f"No broker answers at {bootstrap}: ")
    assert "Connection refused" in error["error"]
    assert error["hint"].startswith(
        "check that the cluster is running and the "
        "bootstrap servers (host:port) are right"
    )
