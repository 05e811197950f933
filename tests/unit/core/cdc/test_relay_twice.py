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
    assert "its own --schema" in error["hint"]


def test_a_killed_relay_not_yet_reaped_is_not_running(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from core.cdc.cli import read_statuses
    from core.settings import Settings

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        status = tmp_path / "relay" / "r.json"
        status.parent.mkdir()
        status.write_text(
            json.dumps(
                {
                    "relay_id": "r",
                    "pid": child.pid,
                    "create_time": psutil.Process(child.pid).create_time(),
                    "state": "publishing",
                }
            )
        )
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # the child stays a zombie until reaped
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed child never stopped"

        (found,) = read_statuses(Settings(data_dir=str(tmp_path)))
        assert found["alive"] is False and found["state"] == "dead"
    finally:
        child.kill()
        child.wait()
