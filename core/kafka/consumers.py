"""Consumer groups whose members are real processes, and their timeline.

A :class:`ConsumerGroup` starts each member with ``python -m
core.kafka.member`` (see that module for the spec, the events and the crash
points), reads the JSON lines the member writes, and keeps the membership,
the partition assignment and a bounded timeline of what happened::

    group = ConsumerGroup(MemberSpec(client={"bootstrap.servers": bootstrap},
                                     group_id="g1", topics=["orders"],
                                     semantics="at-least-once",
                                     output_path="/tmp/out.jsonl"))
    group.start(2)                      # members m1 and m2
    group.wait_for(lambda g: g.assigned_count() == 6, timeout=30)
    group.stop_member("m2")             # m1 takes over every partition
    group.set_isolation("read_uncommitted")   # members restart
    group.stop()
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.errors import ConsumerError, ConsumerSpecError
from core.kafka.lag import GroupTarget
from core.kafka.member import ISOLATION_LEVELS, MemberSpec, member_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupEvent:
    """One thing that happened to a group: a member came, went, or moved.

    ``kind``: member-started, member-stopped, member-crashed, member-exited,
    assigned, revoked, lost, rebalance, isolation-changed, aborted, failed,
    fatal, error.
    """

    at: float
    group: str
    member: str | None
    kind: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class MemberState:
    """What the manager knows about one member process."""

    name: str
    pid: int | None = None
    alive: bool = False
    isolation: str = ""
    partitions: list[tuple[str, int]] = field(default_factory=list)
    processed: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    exit_code: int | None = None
    crashed_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "alive": self.alive,
            "isolation": self.isolation,
            "partitions": [list(p) for p in self.partitions],
            "processed": self.processed,
            "committed": [[t, p, o] for (t, p), o in sorted(self.committed.items())],
            "exit_code": self.exit_code,
            "crashed_at": self.crashed_at,
        }


# Member events that go on the timeline as they are.
_TIMELINE_KINDS = {"aborted", "failed", "fatal", "error", "lost", "skipped"}


class ConsumerGroup:
    """N member processes of one group, started and stopped by this manager."""

    def __init__(
        self,
        template: MemberSpec,
        *,
        log_dir: Path | None = None,
        history: int = 2000,
    ) -> None:
        template.check()
        self.template = template
        self.group_id = template.group_id
        self.isolation = template.isolation
        self.log_dir = log_dir or Path(tempfile.gettempdir()) / "cdc-studio-members"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._members: dict[str, MemberState] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._overrides: dict[str, dict[str, Any]] = {}
        self._timeline: deque[GroupEvent] = deque(maxlen=history)
        self._listeners: list[Callable[[GroupEvent], None]] = []
        self._changed = threading.Condition()
        self._readers: list[threading.Thread] = []

    # --- control -----------------------------------------------------------

    def start(self, count: int) -> list[str]:
        """Start ``count`` more members, named m1, m2, ... in order."""
        return [self.add_member() for _ in range(count)]

    def add_member(self, name: str | None = None, **overrides: Any) -> str:
        """Start one member; ``overrides`` change its spec (e.g. crash_point)."""
        with self._changed:
            if name is None:
                number = len(self._members) + 1
                while f"m{number}" in self._members:
                    number += 1
                name = f"m{number}"
            if name in self._procs and self._procs[name].poll() is None:
                raise ConsumerSpecError(
                    f"Member {name} of {self.group_id} is running",
                    hint="stop it first or pick another name",
                )
        self._overrides[name] = overrides
        spec = dataclasses.replace(
            self.template, name=name, isolation=self.isolation, **overrides
        )
        spec.check()
        self._launch(spec)
        return name

    def _launch(self, spec: MemberSpec) -> None:
        stderr = open(self.log_dir / f"{self.group_id}.{spec.name}.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                member_command(spec),
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],
            )
        except OSError as exc:
            raise ConsumerError(f"Cannot start member {spec.name}: {exc}") from exc
        finally:
            stderr.close()
        with self._changed:
            self._procs[spec.name] = proc
            self._members[spec.name] = MemberState(
                spec.name, pid=proc.pid, alive=True, isolation=spec.isolation
            )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._read,
            args=(spec.name, proc, proc.stdout),
            name=f"member-{self.group_id}-{spec.name}",
            daemon=True,
        )
        self._readers.append(reader)
        reader.start()
        log.info("started member %s of %s (pid %d)", spec.name, self.group_id, proc.pid)

    def stop_member(self, name: str, timeout: float = 30.0) -> int | None:
        """Stop a member cleanly (SIGTERM: it finishes its batch, leaves the group)."""
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "member %s did not stop within %.0f s; killing it", name, timeout
            )
            proc.kill()
            code = proc.wait()
        self._join_reader(name)
        return code

    def kill_member(self, name: str) -> None:
        """SIGKILL a member: no clean leave, the group notices at session time-out."""
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self._join_reader(name)

    def restart_member(self, name: str, **overrides: Any) -> str:
        """Start a stopped or crashed member again under the same name."""
        self.stop_member(name)
        return self.add_member(name, **{**self._overrides.get(name, {}), **overrides})

    def set_isolation(self, level: str) -> None:
        """Switch the group's isolation level: every live member restarts with it."""
        if level not in ISOLATION_LEVELS:
            raise ConsumerSpecError(
                f"Unknown isolation level {level!r}",
                hint=f"choose one of {', '.join(ISOLATION_LEVELS)}",
            )
        before, self.isolation = self.isolation, level
        live = [n for n, p in self._procs.items() if p.poll() is None]
        self._record(
            None,
            "isolation-changed",
            f"isolation {before} -> {level}; restarting {', '.join(live)}",
            {"before": before, "after": level, "members": live},
        )
        for name in live:
            self.stop_member(name)
        for name in live:
            self.add_member(
                name,
                **{
                    k: v
                    for k, v in self._overrides.get(name, {}).items()
                    if k != "isolation"
                },
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every member (all at once, then wait for each)."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self._procs):
            self.stop_member(name, timeout)

    # --- state -------------------------------------------------------------

    def members(self) -> list[MemberState]:
        with self._changed:
            return [dataclasses.replace(m) for m in self._members.values()]

    def member(self, name: str) -> MemberState:
        with self._changed:
            return dataclasses.replace(self._members[name])

    def assignment(self) -> dict[str, list[tuple[str, int]]]:
        """Live members and the partitions each one holds."""
        with self._changed:
            return {n: list(m.partitions) for n, m in self._members.items() if m.alive}

    def assigned_count(self) -> int:
        return sum(len(p) for p in self.assignment().values())

    def timeline(self, since: float | None = None) -> list[GroupEvent]:
        with self._changed:
            events = list(self._timeline)
        return events if since is None else [e for e in events if e.at > since]

    def subscribe(self, listener: Callable[[GroupEvent], None]) -> None:
        """Call ``listener`` (on a reader thread) with every new timeline event."""
        self._listeners.append(listener)

    def wait_for(
        self, condition: Callable[[ConsumerGroup], bool], timeout: float = 60.0
    ) -> None:
        """Block until ``condition(self)`` holds; ConsumerError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConsumerError(
                        f"Group {self.group_id} did not reach the expected state "
                        f"within {timeout:.0f} s",
                        hint=f"see the member logs in {self.log_dir}",
                    )
                self._changed.wait(min(left, 0.5))

    def lag_target(self) -> GroupTarget:
        """What ``core.kafka.lag`` needs to know about this group (isolation, reset)."""
        return GroupTarget(
            self.group_id,
            tuple(self.template.topics),
            self.isolation,
            self.template.auto_offset_reset,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "semantics": self.template.semantics,
            "isolation": self.isolation,
            "topics": self.template.topics,
            "members": [m.to_json() for m in self.members()],
        }

    # --- member reports -----------------------------------------------------

    def _read(
        self, name: str, proc: subprocess.Popen[bytes], stream: IO[bytes]
    ) -> None:
        for raw in stream:
            try:
                event = json.loads(raw)
            except ValueError:
                log.debug("member %s wrote a non-JSON line: %r", name, raw[:200])
                continue
            self._on_event(name, event)
        code = proc.wait()
        with self._changed:
            state = self._members[name]
            state.alive = False
            state.exit_code = code
            state.partitions = []
        if code == -signal.SIGKILL:
            point = state.crashed_at
            self._record(
                name,
                "member-crashed",
                f"{name} was killed (SIGKILL)" + (f" at {point}" if point else ""),
                {"exit_code": code, "point": point},
            )
        else:
            kind = "member-stopped" if code == 0 else "member-exited"
            self._record(
                name, kind, f"{name} exited with code {code}", {"exit_code": code}
            )

    def _on_event(self, name: str, event: dict[str, Any]) -> None:
        kind = str(event.get("event"))
        with self._changed:
            state = self._members[name]
            if kind == "assigned":
                state.partitions = [(t, p) for t, p in event["partitions"]]
            elif kind in ("revoked", "lost"):
                gone = {(t, p) for t, p in event["partitions"]}
                state.partitions = [tp for tp in state.partitions if tp not in gone]
            elif kind == "batch":
                state.processed += int(event.get("count", 0))
            elif kind == "committed":
                for topic, partition, offset in event["offsets"]:
                    state.committed[(topic, partition)] = offset
            elif kind == "crash":
                state.crashed_at = event.get("point")
            self._changed.notify_all()

        if kind == "started":
            self._record(
                name,
                "member-started",
                f"{name} started (pid {event.get('pid')}, "
                f"{event.get('semantics')}, {event.get('isolation')})",
                event,
            )
        elif kind in ("assigned", "revoked"):
            parts = ", ".join(f"{t}-{p}" for t, p in event["partitions"]) or "nothing"
            self._record(name, kind, f"{name} {kind} {parts}", event)
            self._record(
                None,
                "rebalance",
                f"assignment now {self._layout()}",
                {"assignment": self.assignment()},
            )
        elif kind in _TIMELINE_KINDS:
            self._record(name, kind, f"{name}: {kind} {_short(event)}", event)

    def _layout(self) -> str:
        return "; ".join(
            f"{n}: {', '.join(f'{t}-{p}' for t, p in parts) or '-'}"
            for n, parts in sorted(self.assignment().items())
        )

    def _record(
        self, member: str | None, kind: str, message: str, detail: dict[str, Any]
    ) -> None:
        event = GroupEvent(time.time(), self.group_id, member, kind, message, detail)
        with self._changed:
            self._timeline.append(event)
            self._changed.notify_all()
        log.info("group %s: %s", self.group_id, message)
        for listener in list(self._listeners):
            listener(event)

    def _join_reader(self, name: str) -> None:
        for reader in self._readers:
            if reader.name == f"member-{self.group_id}-{name}":
                reader.join(10)
        self._readers = [r for r in self._readers if r.is_alive()]

    def close(self) -> None:
        self.stop()
        for reader in self._readers:
            reader.join(10)


def _short(event: dict[str, Any]) -> str:
    skip = {"event", "at", "member", "group", "pid"}
    return json.dumps({k: v for k, v in event.items() if k not in skip})[:200]
