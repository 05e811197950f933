"""What the Pipeline view shows: rules, outbox backlog, relays, topics, live feed.

API (blocking calls, for a worker thread)::

    sampler = PipelineSampler(settings, prefix="h2")
    sample = sampler.sample()     # PipelineSample: per-table path and relays
    feed = ChangeFeed(bootstrap, prefix="h2"); feed.start()
    feed.snapshot()               # the latest events, newest last (bounded)
    feed.stop()
    start_relay_process(settings, mode) / start_workload_process(settings, ...)
"""

from __future__ import annotations

import collections
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core import settings as settings_mod
from core.cdc.events import topic_for
from core.cdc.relay import TransientToInfo
from core.errors import H2Error
from core.h2 import catalog, outbox, triggers
from core.h2.connection import H2Connection
from core.settings import Settings

log = logging.getLogger(__name__)
# The Pipeline view's live feed consumes as a group of its own; the Lag view
# leaves these groups out (they are the application's, not the user's).
FEED_GROUP_PREFIX = "cdc-studio-feed-"
_client_log = logging.getLogger(__name__ + ".librdkafka")
_client_log.addFilter(TransientToInfo())
FEED_SIZE = 200


@dataclass(frozen=True)
class TablePath:
    """One captured table: rule, outbox backlog, and its topic's end offsets."""

    rule: triggers.CaptureRule
    installed: bool
    topic: str
    backlog: int
    topic_records: int | None
    has_key: bool = True


@dataclass(frozen=True)
class PipelineSample:
    """Everything the view needs at one instant."""

    at: float
    tables: list[TablePath] = field(default_factory=list)
    relays: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0


class PipelineSampler:
    """Reads the pipeline's state: H2 rules and backlog, relay status, topics."""

    def __init__(self, settings: Settings, prefix: str = "h2") -> None:
        self.settings = settings
        self.prefix = prefix
        self._conn: H2Connection | None = None
        self._consumer: Consumer | None = None
        self._keys: dict[tuple[str, str], bool] = {}

    def sample(self) -> PipelineSample:
        from core.cdc.cli import read_statuses

        try:
            conn = self._h2()
            rules = triggers.list_rules(conn)
            backlog = outbox.per_table(conn)
            rejected = len(outbox.rejected(conn))
            for status in rules:
                name = (status.rule.schema, status.rule.table)
                if name not in self._keys:
                    found = catalog.find(conn, *name)
                    self._keys[name] = found is None or bool(found.primary_key)
        except H2Error:
            self._drop_h2()
            raise
        tables = []
        for status in rules:
            rule = status.rule
            topic = topic_for(self.prefix, rule.schema, rule.table)
            tables.append(
                TablePath(
                    rule,
                    status.installed,
                    topic,
                    backlog.get((rule.schema, rule.table), 0),
                    self._end(topic),
                    self._keys.get((rule.schema, rule.table), True),
                )
            )
        return PipelineSample(
            time.time(), tables, read_statuses(self.settings), rejected
        )

    def _h2(self) -> H2Connection:
        if self._conn is None:
            self._conn = H2Connection(self.settings)
            triggers.ensure_metadata(self._conn)
        return self._conn

    def _drop_h2(self) -> None:
        outbox.close_quietly(self._conn)
        self._conn = None

    def _end(self, topic: str) -> int | None:
        """Sum of the high watermarks of ``topic`` (offsets, not a message count)."""
        if self._consumer is None:
            config: dict[str, Any] = {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": f"cdc-studio-pipeline-{uuid.uuid4().hex[:8]}",
                "logger": _client_log,
            }
            self._consumer = Consumer(config)
        try:
            found = self._consumer.list_topics(topic, timeout=5).topics.get(topic)
            if found is None or found.error is not None:
                return None
            return sum(
                self._consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=5, cached=False
                )[1]
                for p in found.partitions
            )
        except KafkaException:
            return None

    def close(self) -> None:
        self._drop_h2()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


@dataclass(frozen=True)
class FeedEvent:
    """One change event as the live feed shows it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    op: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    seen: float

    def changes(self) -> list[tuple[str, Any, Any]]:
        """(column, old, new) of each column whose value differs."""
        before, after = self.before or {}, self.after or {}
        return [
            (c, before.get(c), after.get(c))
            for c in dict.fromkeys([*before, *after])
            if before.get(c) != after.get(c)
        ]


class ChangeFeed:
    """The latest change events of ``<prefix>.*`` topics, read_committed, bounded."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str = "h2",
        size: int = FEED_SIZE,
        from_beginning: bool = False,
    ) -> None:
        self.from_beginning = from_beginning
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._events: collections.deque[FeedEvent] = collections.deque(maxlen=size)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="change-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def snapshot(self) -> list[FeedEvent]:
        with self._lock:
            return list(self._events)

    def _run(self) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": f"{FEED_GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest" if self.from_beginning else "latest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 5000,
            "logger": _client_log,
        }
        consumer = Consumer(config)
        try:
            pattern = "^" + self.prefix.replace(".", "\\.") + "\\..*"
            consumer.subscribe([pattern])
            while not self._stop.is_set():
                msg = consumer.poll(0.3)
                if msg is None or msg.error() is not None:
                    continue
                self._add(msg)
        finally:
            consumer.close()

    def _add(self, msg: Any) -> None:
        value = msg.value()
        try:
            event = json.loads(value) if value else {}
        except ValueError:
            event = {}
        key = msg.key()
        item = FeedEvent(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            key.decode("utf-8", "replace") if key is not None else None,
            event.get("op") if value else "tombstone",
            event.get("before"),
            event.get("after"),
            time.time(),
        )
        with self._lock:
            self._events.append(item)
            self.received += 1


def _settings_file(settings: Settings) -> Path:
    path = settings.data_path / "relay" / "app-settings.toml"
    return settings_mod.save(settings, path)


def _spawn(
    settings: Settings, args: list[str], log_name: str
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "core.cli",
        "--config",
        str(_settings_file(settings)),
        "--data-dir",
        str(settings.data_path),
        *args,
    ]
    log_file = settings.data_path / "logs" / log_name
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
        )
    log.info("started %s (pid %d)", " ".join(args[:2]), proc.pid)
    return proc


def start_relay_process(
    settings: Settings,
    mode: str = "exactly-once",
    prefix: str = "h2",
    relay_id: str = "cdc-studio-relay",
    schemas: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """`cdc-studio relay` as a child process (stop it with terminate())."""
    args = ["relay", "run", "--mode", mode, "--prefix", prefix, "--relay-id", relay_id]
    for schema in schemas:
        args += ["--schema", schema]
    return _spawn(settings, args, "relay.log")


def start_workload_process(
    settings: Settings, rate: float = 20, duration: float = 3600
) -> subprocess.Popen[bytes]:
    """`cdc-studio workload` (shop schema, captured) as a child process."""
    return _spawn(
        settings,
        ["workload", "run", "--rate", str(rate), "--duration", str(duration)],
        "workload.log",
    )
