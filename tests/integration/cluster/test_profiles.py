"""Connection profiles against the real stack: read-only refusals, unreachable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core import cli
from core.kafka.inspector import ClusterInspector
from tests.conftest import PORT_BASE
from tests.integration.cluster.conftest import unique_topic

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_read_only_profile_reads_but_refuses_writes(
    bootstrap: str,
    inspector: ClusterInspector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CDC_STUDIO_PROFILES", str(tmp_path / "profiles.toml"))
    (tmp_path / "settings.toml").write_text("")  # defaults, not the user's file
    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(tmp_path / "settings.toml"))
    topic = unique_topic("test.profile")
    inspector.create_topic(topic, 1, 3)

    code, saved = run(
        capsys,
        "--data-dir",
        str(tmp_path),
        "profile",
        "add",
        "ro",
        "--bootstrap",
        bootstrap,
        "--read-only",
        "--json",
    )
    assert code == 0 and saved["saved"] == "ro"
    code, tested = run(
        capsys, "--data-dir", str(tmp_path), "profile", "test", "ro", "--json"
    )
    assert code == 0
    assert tested["brokers"] == 3

    code, layout = run(
        capsys,
        "--data-dir",
        str(tmp_path),
        "cluster",
        "--profile",
        "ro",
        "--topic",
        topic,
        "--json",
    )
    assert code == 0
    assert [t["name"] for t in layout["topics"]] == [topic]

    code, refused = run(
        capsys,
        "--data-dir",
        str(tmp_path),
        "topic",
        "delete",
        topic,
        "--yes",
        "--profile",
        "ro",
        "--json",
    )
    assert code == 2
    assert (
        refused["error"] == f"Cannot delete topic {topic}: this connection is read-only"
    )
    assert topic in inspector.snapshot(offsets=False, configs=False).topics
    inspector.delete_topic(topic)


def test_profile_to_a_closed_port_fails_fast_and_clearly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CDC_STUDIO_PROFILES", str(tmp_path / "profiles.toml"))
    closed = f"127.0.0.1:{PORT_BASE + 260}"
    assert (
        run(
            capsys,
            "--data-dir",
            str(tmp_path),
            "profile",
            "add",
            "gone",
            "--bootstrap",
            closed,
            "--json",
        )[0]
        == 0
    )
    started = time.monotonic()
    code, error = run(
        capsys,
        "--data-dir",
        str(tmp_path),
        "profile",
        "test",
        "gone",
        "--timeout",
        "3",
        "--json",
    )
    assert code == 2
    assert error["error"].startswith(f"No broker answers at {closed}")
    assert "Connection refused" in error["error"]
    assert time.monotonic() - started < 30  # bounded by the timeout, never hangs
