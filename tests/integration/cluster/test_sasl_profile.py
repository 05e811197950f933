"""A SASL profile against the embedded cluster: right and wrong password, no leaks."""

from __future__ import annotations

import getpass
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import cli
from core.kafka.inspector import ClusterInspector
from core.stack import Stack
from core.stack.listeners import disable_sasl_listener, enable_sasl_listener
from tests.conftest import PORT_BASE
from tests.integration.cluster.conftest import unique_topic
from tests.keyring_fake import MemoryKeyring, memory_keyring

pytestmark = pytest.mark.integration
__all__ = ["memory_keyring"]  # the fixture, used by name
SASL_PORT = PORT_BASE + 280
PASSWORD = "pw-7f3a9c-right"
WRONG = "pw-7f3a9c-wrong"


@pytest.fixture()
def sasl_listener(stack: Stack) -> Iterator[int]:
    enable_sasl_listener(stack.settings, 1, SASL_PORT, "alice", PASSWORD)
    yield SASL_PORT
    disable_sasl_listener(stack.settings, 1, "alice")


def files_containing(root: Path, secret: bytes) -> list[Path]:
    """Files under ``root`` holding ``secret``; brokers delete folders meanwhile."""
    found = []
    for folder, _, names in os.walk(root):
        if Path(folder).relative_to(root).parts[:1] == ("jvm",):  # our jars
            continue
        for name in names:
            path = Path(folder) / name
            try:
                if secret in path.read_bytes():
                    found.append(path)
            except FileNotFoundError:
                continue  # a segment or topic folder deleted as we walked
    return found


def test_sasl_profile_right_and_wrong_password_and_no_leak(
    stack: Stack,
    sasl_listener: int,
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A topic of its own: the count below must not depend on earlier tests.
    topic = unique_topic()
    ClusterInspector(
        {"bootstrap.servers": stack.settings.bootstrap_servers}
    ).create_topic(topic, 1, 1)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "settings.toml").write_text("")  # defaults; profiles go beside it
    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(config_dir / "settings.toml"))
    base = ["--data-dir", str(tmp_path / "data")]
    typed = iter([PASSWORD, WRONG])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(typed))

    for name in ("sasl", "sasl-wrong"):
        argv = [
            *base,
            "profile",
            "add",
            name,
            "--bootstrap",
            f"127.0.0.1:{sasl_listener}",
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--user",
            "alice",
            "--save-password",
            "--json",
        ]
        assert cli.main(argv) == 0
        capsys.readouterr()
    assert sorted(memory_keyring.secrets.values()) == [PASSWORD, WRONG]

    assert cli.main([*base, "profile", "test", "sasl", "--json"]) == 0
    connected = json.loads(capsys.readouterr().out)
    assert connected["cluster_id"] == stack.status().cluster_id
    assert connected["topics"] >= 1

    argv = [*base, "profile", "test", "sasl-wrong", "--timeout", "5", "--json"]
    assert cli.main(argv) == 2
    refused = json.loads(capsys.readouterr().out)
    assert refused["error"].startswith(
        f"The cluster at 127.0.0.1:{sasl_listener} refused our credentials"
    )
    assert "SASL authentication error" in refused["error"]

    for secret in (PASSWORD, WRONG):
        assert files_containing(tmp_path, secret.encode()) == []
        assert files_containing(stack.settings.data_path, secret.encode()) == []
        assert secret not in caplog.text
