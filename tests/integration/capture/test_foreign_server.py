"""An H2 server without our classes: capture refuses clearly, never silently."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import jvm
from core.errors import CaptureError
from core.h2 import triggers
from core.h2.connection import H2Connection
from core.settings import Settings
from core.stack import Stack
from tests.conftest import PORT_BASE

PORT = PORT_BASE + 201
PASSWORD = "foreign-password"


@pytest.fixture
def foreign_url(
    stack: Stack, stack_settings: Settings, tmp_path: Path
) -> Iterator[str]:
    """A plain H2 server (H2's jar only) on a loopback port, with one database."""
    java = jvm.find_java(stack_settings)
    build = jvm.ensure_built(stack_settings, java)
    subprocess.run(
        [
            str(java.executable),
            "-cp",
            build.h2_class_path(),
            "studio.cdc.tools.CreateDatabase",
            str(tmp_path / "plain"),
            "SA",
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [
            str(java.executable),
            "-Dh2.bindAddress=127.0.0.1",
            "-cp",
            str(build.jar("h2-")),
            "org.h2.tools.Server",
            "-tcp",
            "-tcpPort",
            str(PORT),
            "-baseDir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "plain H2 server did not start"
                time.sleep(0.2)
        yield f"jdbc:h2:tcp://127.0.0.1:{PORT}/plain"
    finally:
        server.terminate()
        server.wait(30)


def test_server_without_our_classes_is_refused_clearly(
    stack_settings: Settings, foreign_url: str
) -> None:
    with H2Connection(
        stack_settings, url=foreign_url, user="SA", password=PASSWORD
    ) as conn:
        conn.run("CREATE TABLE T (ID INT PRIMARY KEY)")
        with pytest.raises(CaptureError, match="does not have Kafka CDC Studio's"):
            triggers.add_rule(conn, triggers.CaptureRule("PUBLIC", "T"))
        installed = conn.query("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TRIGGERS")[0][0]

    assert installed == 0
