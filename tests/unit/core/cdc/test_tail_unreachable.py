"""`cdc-studio tail` against a cluster that does not answer: one clear error."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from core.cli import main


def test_tail_of_an_unreachable_cluster_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    argv = ["--data-dir", str(tmp_path), "tail", "any-topic", "--timeout", "2"]
    code = main([*argv, "--bootstrap", f"127.0.0.1:{port}", "--json"])

    captured = capsys.readouterr()
    assert code == 2
    error = json.loads(captured.out)
    assert error["error"].startswith(f"No broker at 127.0.0.1:{port} answers:")
    assert (
        error["hint"] == "start the stack (`cdc-studio stack up`) or check --bootstrap"
    )
    assert "FAIL" not in captured.err  # librdkafka's own lines stay in the log
