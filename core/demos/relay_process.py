"""The relay and the change events it publishes, as the capture demos use them."""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Message

from core import workload
from core.cdc import events
from core.demos import kafka_io
from core.demos.ledger import OutputRecord
from core.demos.runner import RunContext
from core.demos.workers import WorkerProcess
from core.errors import DemoError

BATCH = 10


class RelayRunner:
    """`cdc-studio relay run` as a child process, restarted under one relay id."""

    def __init__(
        self, ctx: RunContext, relay_id: str, prefix: str, schema: str, mode: str
    ) -> None:
        self.ctx = ctx
        self.relay_id = relay_id
        self.lives = 0
        self.failures = 0
        self.worker: WorkerProcess | None = None
        self.command = [
            sys.executable,
            "-m",
            "core.cli",
            "--config",
            str(ctx.settings_file()),
            "relay",
            "run",
            "--relay-id",
            relay_id,
            "--prefix",
            prefix,
            "--schema",
            schema,
            "--mode",
            mode,
            "--batch-size",
            str(BATCH),
        ]
        self.status_file = ctx.settings.data_path / "relay" / f"{relay_id}.json"
        # The relay's own position topic (where the relay keeps one per relay
        # id), removed with the run's topics.
        ctx.forget_topic(events.topic_for("cdc-studio", "relay-position", relay_id))
        # Its status file goes too: `relay status` lists the user's relays, not
        # every relay a demo ever ran (the run folder keeps the relay's log).
        ctx.cleanups.append(lambda: self.status_file.unlink(missing_ok=True))

    @property
    def name(self) -> str:
        return f"relay-{self.lives}"

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        self.lives += 1
        self.worker = self.ctx.worker(self.name, "relay", command=self.command)
        if self.lives > 1:
            self.ctx.event("restart", "new relay process, same relay id", 1, self.name)

    def published(self) -> int:
        try:
            return int(json.loads(self.status_file.read_text())["published"])
        except (OSError, ValueError, KeyError):
            return 0

    def wait_published(
        self, target: int, shop: WorkerProcess, timeout: float = 120
    ) -> bool:
        """Wait until this life published ``target`` changes; False if the
        workload stopped before that."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout
        while self.published() < target:
            if not shop.running:
                return False
            if self.ensure_running():
                deadline = time.monotonic() + timeout
            if time.monotonic() > deadline:
                raise DemoError(f"The relay published nothing within {timeout:.0f} s")
            time.sleep(0.02)
        self.ctx.event(
            "produced", "changes published by this relay", self.published(), self.name
        )
        return True

    def ensure_running(self) -> bool:
        """Start a new relay if this one stopped by itself; whether it had to.

        The relay stops on a fatal Kafka error (it says which in its log); in
        exactly-once mode a new one under the same relay id resumes safely, as
        a supervisor would restart it.
        """
        if self.worker is None or self.worker.running:
            return False
        code = self.worker.wait_exit(10)
        self.failures += 1
        self.ctx.note(f"{self.name} exited by itself (status {code}); restarted")
        self.ctx.event("crash", f"relay exited by itself (status {code})", 1, self.name)
        self.start()
        return True

    def kill(self) -> None:
        assert self.worker is not None
        self.worker.kill()
        self.ctx.event("crash", "SIGKILL: relay", 1, self.name)

    def stop(self) -> None:
        assert self.worker is not None
        self.worker.signal(signal.SIGTERM)
        try:
            code = self.worker.wait_exit(30)
        except DemoError:
            # Killed by wait_exit: harmless once drained, as demo 9 shows.
            self.ctx.note(f"{self.name} did not stop within 30 s of SIGTERM; killed")
            return
        if code != 0:
            raise DemoError(
                f"The relay did not stop cleanly; see {self.name}.stderr.log"
            )


def wait_published(
    ctx: RunContext,
    topics: list[str],
    expected: set[str],
    relay: RelayRunner,
    timeout: float = 120,
    by_change_id: bool = False,
) -> list[OutputRecord]:
    """Read the topics until every expected change is there (or time runs out);
    a relay that stopped on its own meanwhile is started again."""
    deadline = time.monotonic() + timeout
    while True:
        relay.ensure_running()
        output = read_events(ctx, topics, by_change_id)
        if expected <= {r.id for r in output} or time.monotonic() > deadline:
            return output
        time.sleep(0.5)


def read_events(
    ctx: RunContext, topics: list[str], by_change_id: bool = False
) -> list[OutputRecord]:
    """Change events of ``topics`` (read_committed), identified by their outbox
    sequence number, or by the row's CHANGE_ID column."""

    def parse(message: Message) -> OutputRecord | None:
        if message.value() is None:
            return None  # a tombstone
        event = json.loads(message.value() or b"{}")
        seq = int(event["source"].get("seq") or 0)
        ident = str(event["after"]["CHANGE_ID"]) if by_change_id else str(seq)
        key = f"{message.topic()}:{(message.key() or b'').decode()}"
        return OutputRecord(
            ident, key, seq, message.partition() or 0, message.offset() or 0
        )

    return [
        record
        for topic in topics
        if kafka_io.partition_state(ctx.bootstrap, topic)
        for record in kafka_io.read_topic(ctx.bootstrap, topic, parse=parse)
    ]


def cleanup_schema(
    ctx: RunContext,
    schema: str,
    settings_file: object,
    tables: list[str] | None = None,
) -> None:
    cleaner = ctx.worker(
        "cleanup",
        "workload-cleanup",
        schema=schema,
        settings_file=str(settings_file),
        tables=tables or list(workload.TABLES),
    )
    if cleaner.wait_exit(120) != 0:
        raise DemoError(
            f"Removing the demo schema {schema} failed; see cleanup.stderr.log",
            hint=f"""cdc-studio sql 'DROP SCHEMA "{schema}" CASCADE', then """
            f"cdc-studio relay release {schema}",
        )
