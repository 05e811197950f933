"""A second `relay run` with the id of a running relay is refused, not fenced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from core.cli import main


def test_a_running_relay_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "relay" / "cdc-studio-relay.json"
    status.parent.mkdir()
    status.write_text(  # this very process stands in for the running relay
        json.dumps(
            {
                "relay_id": "cdc-studio-relay",
                "pid": os.getpid(),
                "create_time": psutil.Process().create_time(),
                "state": "publishing",
            }
        )
    )

    assert main(["--data-dir", str(tmp_path), "relay", "run", "--json"]) == 2

    error = json.loads(capsys.readouterr().out)
    assert error["error"] == (
        f"Relay cdc-studio-relay is already running (pid {os.getpid()})"
    )
    assert "another --relay-id" in error["hint"]
