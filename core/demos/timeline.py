"""The timeline of one demo run: what happened when, with running counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The kinds of event a timeline shows. `step` marks a narration step.
KINDS = (
    "step",
    "produced",
    "refused",
    "dropped",
    "consumed",
    "committed",
    "aborted",
    "crash",
    "paused",
    "resumed",
    "restart",
    "rebalance",
    "fenced",
    "recovered",
    "broker",
    "verified",
)


@dataclass(frozen=True)
class Event:
    """One thing that happened, ``t`` seconds after the run started."""

    t: float
    kind: str
    source: str
    text: str
    count: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "kind": self.kind,
            "source": self.source,
            "text": self.text,
            "count": self.count,
            "totals": dict(self.totals),
        }


Listener = Callable[[Event], None]


class Timeline:
    """Events of one run, in order, with a running total per kind.

    Thread-safe: worker readers and the scenario add events concurrently.
    Listeners are called on the thread that added the event.
    """

    def __init__(self, listener: Listener | None = None) -> None:
        self._start = time.monotonic()
        self._events: list[Event] = []
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = [listener] if listener else []

    def add(self, kind: str, source: str, text: str, count: int = 0) -> Event:
        if kind not in KINDS:
            raise ValueError(f"unknown timeline event kind {kind!r}")
        with self._lock:
            if count:
                self._totals[kind] = self._totals.get(kind, 0) + count
            else:
                self._totals.setdefault(kind, 0)
            event = Event(
                time.monotonic() - self._start,
                kind,
                source,
                text,
                count,
                dict(self._totals),
            )
            self._events.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.events]
