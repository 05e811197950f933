"""The runner's side of demo workers: start them, hear them, crash them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import DemoError

log = logging.getLogger(__name__)

WorkerEvent = dict[str, Any]


class WorkerProcess:
    """One worker process; its reports are kept, logged and handed on.

    Every line the worker reports is written to ``<run_dir>/<name>.jsonl`` (the
    worker's own log, which shows whether a crash point was reached) and
    passed to ``on_event`` on the reader thread.
    """

    def __init__(
        self,
        name: str,
        spec: dict[str, Any],
        run_dir: Path,
        on_event: Callable[[WorkerProcess, WorkerEvent], None],
        command: list[str] | None = None,
    ) -> None:
        self.name = name
        # Another program instead of a demo worker (e.g. the relay).
        self.command = command
        self.spec = spec | {"name": name}
        self.run_dir = run_dir
        self._on_event = on_event
        self.events: list[WorkerEvent] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def _stderr_path(self) -> Path:
        return self.run_dir / f"{self.name}.stderr.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> WorkerProcess:
        spec_file = self.run_dir / f"{self.name}.spec.json"
        spec_file.write_text(json.dumps(self.spec, indent=1), encoding="utf-8")
        stderr = open(self.run_dir / f"{self.name}.stderr.log", "ab")  # noqa: SIM115
        try:
            command = self.command or [
                sys.executable,
                "-m",
                "core.demos.worker",
                str(spec_file),
            ]
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=Path(__file__).resolve().parent.parent.parent,
                start_new_session=True,
            )
        finally:
            stderr.close()
        log.info(
            "started worker %s (pid %s, %s)",
            self.name,
            self._proc.pid,
            self.spec.get("role", self.command),
        )
        self._reader = threading.Thread(
            target=self._read, name=f"demo-worker-{self.name}", daemon=True
        )
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.run_dir / f"{self.name}.jsonl", "a", encoding="utf-8") as out:
            for raw in self._proc.stdout:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line:
                    continue
                out.write(line + "\n")
                out.flush()
                try:
                    event: WorkerEvent = json.loads(line)
                except ValueError:
                    event = {"kind": "output", "text": line}
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
                self._on_event(self, event)
        with self._cond:
            self._cond.notify_all()

    # -- waiting -------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[WorkerEvent], bool], timeout: float, what: str
    ) -> WorkerEvent | None:
        """The first reported event matching ``predicate``; None if the worker
        exited without reporting one; DemoError if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                reader_done = self._reader is not None and not self._reader.is_alive()
                if reader_done:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoError(
                        f"Worker {self.name} did not report {what} within "
                        f"{timeout:.0f} s",
                        hint=f"see its log {self._stderr_path}",
                    )
                self._cond.wait(min(left, 0.5))

    def wait_kind(self, kind: str, timeout: float = 60) -> WorkerEvent | None:
        return self.wait_for(lambda e: e.get("kind") == kind, timeout, kind)

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for the process to end; return its exit status (-9: SIGKILL)."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise DemoError(
                f"Worker {self.name} did not finish within {timeout:.0f} s; killed it",
                hint=f"see its log {self._stderr_path}",
            ) from exc
        if self._reader is not None:
            self._reader.join(10)
        return code

    def reported(self, kind: str) -> list[WorkerEvent]:
        with self._cond:
            return [e for e in self.events if e.get("kind") == kind]

    def ids(self, kind: str) -> list[str]:
        return [i for e in self.reported(kind) for i in e.get("ids", [])]

    # -- control -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: signal.Signals) -> bool:
        if not self.running:
            return False
        assert self._proc is not None
        try:
            os.kill(self._proc.pid, sig)
        except ProcessLookupError:
            return False
        log.info("sent %s to worker %s (pid %s)", sig.name, self.name, self._proc.pid)
        return True

    def kill(self) -> bool:
        killed = self.signal(signal.SIGKILL)
        if killed and self._proc is not None:
            self._proc.wait(10)
        return killed

    def go(self) -> None:
        """Let a worker holding at a point go on."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"go\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        """Make sure the process is gone (SIGCONT first, in case it is stopped)."""
        if self.running:
            self.signal(signal.SIGCONT)
            self.kill()
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
