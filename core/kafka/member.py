"""One consumer-group member as its own process: `python -m core.kafka.member`.

Start one with a JSON :class:`MemberSpec` (normally through
``core.kafka.consumers.ConsumerGroup``, which does this for every member)::

    python -m core.kafka.member --spec '{"client": {"bootstrap.servers":
        "127.0.0.1:19092"}, "group_id": "g1", "topics": ["orders"],
        "name": "m1", "semantics": "at-least-once",
        "output_path": "/tmp/out.jsonl"}'

or from Python: ``subprocess.Popen(member_command(spec), stdout=PIPE)``.

The member reports on standard output, one JSON object per line, each with
``event``, ``member``, ``pid`` and ``at`` (epoch seconds): ``started``,
``assigned``/``revoked``/``lost`` (``partitions``: [[topic, partition], ...]),
``batch`` (``count``), ``committed`` (``offsets``: [[topic, partition, next
offset], ...]), ``processed`` (only with ``report_records``), ``failed`` (a
simulated processing failure), ``aborted``, ``skipped`` (records another
member already wrote), ``crash`` (just before it SIGKILLs itself), ``fatal``
and ``stopped``. SIGTERM (or SIGINT) stops it cleanly after the current batch.

Delivery semantics (see ``core.kafka.semantics`` for how each one works):
``at-most-once``, ``at-least-once``, ``exactly-once-kafka`` (output topic),
``exactly-once-h2`` (H2 sink table). What "processing" a record means:

- at-most-once / at-least-once: append one JSON line ``{"topic",
  "partition", "offset", "key", "value", "member"}`` to ``output_path``
  (key and value as UTF-8 text, or null); the line is on disk once written,
  so a SIGKILL does not lose it;
- exactly-once-kafka: produce the record unchanged (same key and value, a
  ``source`` header "topic:partition:offset") to ``output_topic``;
- exactly-once-h2: insert a row into the H2 table ``sink_table`` (columns
  GROUP_ID, TOPIC, KAFKA_PARTITION, RECORD_OFFSET, RECORD_KEY, RECORD_VALUE,
  MEMBER) with the next offsets in ``<sink_table>_OFFSETS``.

Crash points (``crash_point``): the member SIGKILLs itself the first time it
reaches the named point after having handled at least ``crash_after``
records in this life (``crash_after=0``: the first time). Points:

- ``after-commit-before-process`` (at-most-once): the batch's offsets are
  committed, none of its records processed: they are lost;
- ``after-process-before-commit`` (at-least-once): every record of the
  batch processed, its offsets not committed: the batch is redelivered;
- ``mid-transaction`` (exactly-once-kafka): half of the batch produced in
  the open transaction: it is aborted (fenced when the member restarts
  with the same transactional id);
- ``before-commit-transaction`` (exactly-once-kafka): all output and the
  offsets sent to the transaction, not committed yet;
- ``after-write-before-db-commit`` (exactly-once-h2): rows and offsets
  written in the H2 transaction, not committed: H2 rolls them back.

Processing knobs: ``delay_ms`` per record, ``failure_rate`` (0..1, drawn
from ``random.Random(seed)``; what a failure does depends on the semantics),
``batch_size`` records per commit or transaction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SEMANTICS = ("at-most-once", "at-least-once", "exactly-once-kafka", "exactly-once-h2")
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")
CRASH_POINTS = {
    "after-commit-before-process": "at-most-once",
    "after-process-before-commit": "at-least-once",
    "mid-transaction": "exactly-once-kafka",
    "before-commit-transaction": "exactly-once-kafka",
    "after-write-before-db-commit": "exactly-once-h2",
}


@dataclass
class MemberSpec:
    """Everything one member process needs; it travels as JSON."""

    client: dict[str, Any]
    group_id: str
    topics: list[str]
    name: str = "m1"
    semantics: str = "at-least-once"
    isolation: str = "read_committed"
    auto_offset_reset: str = "earliest"
    batch_size: int = 10
    delay_ms: float = 0.0
    failure_rate: float = 0.0
    seed: int = 0
    crash_point: str | None = None
    crash_after: int = 0
    output_path: str | None = None
    output_topic: str | None = None
    transactional_id: str | None = None
    transaction_timeout_ms: int = 10000
    sink_table: str = "CONSUMER_SINK"
    settings: dict[str, Any] = field(default_factory=dict)
    session_timeout_ms: int = 6000
    report_records: bool = False

    def check(self) -> None:
        """Raise ConsumerSpecError when the spec cannot work."""
        from core.errors import ConsumerSpecError

        if self.semantics not in SEMANTICS:
            raise ConsumerSpecError(
                f"Unknown delivery semantics {self.semantics!r}",
                hint=f"choose one of {', '.join(SEMANTICS)}",
            )
        if self.isolation not in ISOLATION_LEVELS:
            raise ConsumerSpecError(
                f"Unknown isolation level {self.isolation!r}",
                hint=f"choose one of {', '.join(ISOLATION_LEVELS)}",
            )
        if self.crash_point is not None and (
            CRASH_POINTS.get(self.crash_point) != self.semantics
        ):
            points = [p for p, s in CRASH_POINTS.items() if s == self.semantics]
            raise ConsumerSpecError(
                f"Crash point {self.crash_point!r} does not exist for {self.semantics}",
                hint=f"points for {self.semantics}: {', '.join(points)}",
            )
        if self.semantics == "exactly-once-kafka" and not self.output_topic:
            raise ConsumerSpecError(
                "exactly-once-kafka needs an output topic",
                hint="give --output-topic TOPIC (in the GUI: Output topic), the "
                "topic the processed records are written to",
            )
        if not 0.0 <= self.failure_rate < 1.0:
            raise ConsumerSpecError(
                f"failure_rate is {self.failure_rate}",
                hint="choose a rate from 0 (never) up to, not including, 1",
            )
        if self.batch_size < 1 or not self.topics:
            raise ConsumerSpecError(
                "A member needs at least one topic and a batch size of 1 or more"
            )

    @property
    def effective_transactional_id(self) -> str:
        """Stable per group and member name, so a restart fences the old one."""
        return self.transactional_id or f"cdc-studio.{self.group_id}.{self.name}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> MemberSpec:
        return cls(**json.loads(text))


def member_command(spec: MemberSpec) -> list[str]:
    """The command line that runs one member with ``spec``."""
    return [sys.executable, "-m", "core.kafka.member", "--spec", spec.to_json()]


class Reporter:
    """Writes the member's events as JSON lines straight to file descriptor 1.

    ``os.write`` bypasses Python's buffer: a line written is in the pipe even
    if the process is SIGKILLed right after.
    """

    def __init__(self, spec: MemberSpec, fd: int = 1) -> None:
        self._fd = fd
        self._base = {"member": spec.name, "group": spec.group_id, "pid": os.getpid()}

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": time.time(), **self._base, **fields})
        os.write(self._fd, (line + "\n").encode())


class CrashPoints:
    """Fires the spec's crash point: report it, then SIGKILL this process."""

    def __init__(self, spec: MemberSpec, report: Reporter) -> None:
        self._point = spec.crash_point
        self._after = spec.crash_after
        self._report = report
        self.handled = 0

    def reach(self, point: str) -> None:
        if point != self._point or self.handled < self._after:
            return
        self._report("crash", point=point, handled=self.handled)
        os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.kafka.member")
    parser.add_argument("--spec", required=True, help="the MemberSpec as JSON")
    args = parser.parse_args(argv)
    spec = MemberSpec.from_json(args.spec)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {spec.name} %(levelname)s %(name)s: %(message)s",
    )
    report = Reporter(spec)

    from core.errors import StudioError
    from core.kafka.semantics import run_member

    try:
        spec.check()
        return run_member(spec, report, CrashPoints(spec, report))
    except StudioError as exc:
        report("fatal", error=str(exc))
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
