"""The relay as its own process, killed with SIGKILL mid-stream: exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from core import settings as settings_mod
from core import workload
from core.cdc.events import topic_for
from core.h2 import catalog, outbox
from core.h2.connection import H2Connection
from core.settings import Settings
from tests.integration.capture.conftest import read_topic
from tests.integration.capture.oracle import compare, lost_and_duplicated, rebuild

KILLS = 4


class RelayProcess:
    """`cdc-studio relay run` in a child process of this test."""

    def __init__(self, config: Path, data_dir: Path, args: list[str]) -> None:
        self.command = [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "relay",
            "run",
            *args,
        ]
        self.status_file = (
            data_dir / "relay" / f"{args[args.index('--relay-id') + 1]}.json"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[3],
        )

    def published(self) -> int:
        try:
            return int(json.loads(self.status_file.read_text())["published"])
        except (OSError, ValueError, KeyError):
            return 0

    def wait_published(self, at_least: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.published() < at_least:
            assert self.proc is not None and self.proc.poll() is None, self._stderr()
            assert time.monotonic() < deadline, "relay published nothing in time"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, self._stderr()

    def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-3000:]


def test_sigkilled_relay_resumes_exactly_once(
    h2: H2Connection,
    stack_settings: Settings,
    bootstrap: str,
    schema: str,
    tmp_path: Path,
) -> None:
    config = settings_mod.save(stack_settings, tmp_path / "settings.toml")
    tables = workload.ensure_shop(h2, schema=schema)
    prefix = f"k{uuid.uuid4().hex[:8]}"
    relay = RelayProcess(
        config,
        Path(stack_settings.data_path),
        [
            "--relay-id",
            f"kill-test-{uuid.uuid4().hex[:8]}",
            "--prefix",
            prefix,
            "--schema",
            schema,
            "--batch-size",
            "25",
        ],
    )
    expected: set[int] = set()
    ledger_lock = threading.Lock()

    def ledger(conn: H2Connection) -> None:
        rows = conn.query(
            "SELECT SEQ FROM CDC_STUDIO.OUTBOX WHERE TABLE_SCHEMA = ? "
            "AND TX_ID LIKE '%-' || CAST(TRANSACTION_ID() AS VARCHAR)",
            [schema],
        )
        with ledger_lock:
            expected.update(int(r[0]) for r in rows)

    stop = threading.Event()
    writer_conn = H2Connection(stack_settings)
    shop = workload.Workload(writer_conn, seed=11, schema=schema, before_commit=ledger)
    writer = threading.Thread(
        target=shop.run, args=(25, 600, stop), name="workload", daemon=True
    )
    writer.start()

    # Kill the relay mid-stream, each time once it has published a little more.
    try:
        for _ in range(KILLS):
            relay.start()
            relay.wait_published(1 + len(expected) % 7)
            relay.kill()
    finally:
        stop.set()
        writer.join(60)
        writer_conn.close()

    relay.start()
    deadline = time.monotonic() + 120
    while outbox.fetch(h2, 1, (schema,)):
        assert time.monotonic() < deadline, "the relay did not drain the outbox"
        time.sleep(0.1)
    relay.stop()

    seen: list[int] = []
    problems: list[str] = []
    for table in tables:
        topic = topic_for(prefix, schema, table.name)
        records = read_topic(bootstrap, topic)
        seen += rebuild(records)[1]
        problems += compare(h2, catalog.describe(h2, schema, table.name), records)

    assert len(expected) > 200
    assert lost_and_duplicated(expected, seen) == (0, 0)
    assert problems == []
