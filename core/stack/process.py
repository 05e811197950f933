"""Start, identify, stop and kill one node process of the embedded stack."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from core.errors import PortBusyError, StackError

log = logging.getLogger(__name__)

# Popen objects of the nodes this process started, so that their exit is
# reaped (no zombies) while a long-lived process such as the GUI runs.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class NodeRecord:
    """What the stack started for one node, as kept in its state file."""

    name: str
    role: str
    node_id: int | None
    port: int
    rack: str | None
    pid: int | None = None
    create_time: float | None = None
    log_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        return cls(**data)


def is_running(record: NodeRecord) -> bool:
    """Whether the process recorded for ``record`` is still the one we started."""
    if record.pid is None or record.create_time is None:
        return False
    child = _children.get(record.pid)
    if child is not None and child.poll() is not None:
        _children.pop(record.pid, None)
        return False
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def spawn(command: list[str], log_file: Path, cwd: Path) -> tuple[int, float]:
    """Start ``command`` detached, its output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        out.write(f"\n=== started {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        out.flush()
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    _children[child.pid] = child
    create_time = psutil.Process(child.pid).create_time()
    return child.pid, create_time


def signal_node(record: NodeRecord, sig: signal.Signals) -> bool:
    """Send ``sig`` to the node if it is still ours; False if it was not running."""
    if not is_running(record):
        return False
    assert record.pid is not None
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_exit(record: NodeRecord, timeout: float) -> bool:
    """Wait until the node's process has exited; True if it did in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(record):
            return True
        time.sleep(0.1)
    return not is_running(record)


def stop(record: NodeRecord, timeout: float = 30.0) -> None:
    """Stop the node cleanly (SIGTERM), killing it if it does not exit in time."""
    if not signal_node(record, signal.SIGTERM):
        return
    if not wait_exit(record, timeout):
        log.warning("%s did not stop within %.0f s; killing it", record.name, timeout)
        kill(record)


def kill(record: NodeRecord) -> None:
    """Kill the node at once (SIGKILL), as a crash would."""
    if signal_node(record, signal.SIGKILL):
        wait_exit(record, 10.0)


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a node's log, for error messages."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_port_free(port: int, setting: str, what: str) -> None:
    """Raise a clear error if ``port`` on loopback is taken by another process."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Java's server sockets do: connections of a stopped node lingering
        # in TIME_WAIT do not make the port busy, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            owner = _port_owner(port)
            raise PortBusyError(
                f"Port {port} (for {what}) is busy{owner}",
                hint=f"stop the process using it or set {setting} in the settings file",
            ) from exc


def _stack_folder(cmdline: list[str]) -> Path | None:
    """The data folder of a stack node with this command line, if it is one."""
    for index, arg in enumerate(cmdline):
        path = Path(arg)
        if path.name == "server.properties" and path.parent.parent.name == "kafka":
            return path.parent.parent.parent
        if arg == "-baseDir" and index + 1 < len(cmdline):
            base = Path(cmdline[index + 1])
            if base.name == "h2":
                return base.parent
    return None


def _port_owner(port: int) -> str:
    """' (used by NAME, pid N)' for the process listening on ``port``, if known."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                owner = psutil.Process(conn.pid)
                stack = _stack_folder(owner.cmdline())
                if stack is not None:
                    return (
                        f" (used by a node of the Kafka CDC Studio stack in {stack}, "
                        f"pid {conn.pid})"
                    )
                return f" (used by {owner.name()}, pid {conn.pid})"
    except psutil.Error:
        pass
    return ""


def port_answers(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def require_started(record: NodeRecord) -> None:
    """Raise if ``record`` has no process (a bug in the caller)."""
    if record.pid is None:
        raise StackError(f"{record.name} has not been started")
