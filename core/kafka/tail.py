"""Live tail of any topic, and one topic read side by side in both isolation levels.

:class:`Tail` is the source notes' listener: every record of a topic (key,
value, partition, offset, timestamp, headers), read as a member of a group
or on its own (assigned every partition, committing nothing).

:class:`IsolationPair` reads one topic through ``read_committed`` and
``read_uncommitted`` at once. Each record of the uncommitted pane gets a
status once the committed reader has moved past its offset: ``committed``
(the committed reader got it too) or ``aborted`` (it did not); until then it
is ``open`` - a record of an open transaction, or one the committed reader
has not reached yet. Offsets a pane skips (transaction markers; aborted
records in the committed pane) are reported as gaps, not as missing data.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from core.errors import ConsumerError, StudioError
from core.kafka import connection

log = logging.getLogger(__name__)

TP = tuple[str, int]
_METADATA_TIMEOUT_S = 10.0


def _text(data: bytes | None) -> str | None:
    """UTF-8 text, or ``base64:...`` for bytes that are not text."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


@dataclass(frozen=True)
class TailRecord:
    """One record as a tail shows it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def from_message(cls, msg: Message) -> TailRecord:
        kind, stamp = msg.timestamp()
        headers: list[tuple[str, bytes | None]] = []
        for item in msg.headers() or []:
            name, value = item[0], item[1]
            if isinstance(value, str):
                value = value.encode()
            headers.append((str(name), value))
        return cls(
            str(msg.topic()),
            int(msg.partition() or 0),
            int(msg.offset() or 0),
            msg.key(),
            msg.value(),
            stamp if kind else None,
            tuple(headers),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": _text(self.key),
            "value": _text(self.value),
            "timestamp_ms": self.timestamp_ms,
            "headers": [[k, _text(v)] for k, v in self.headers],
        }


class Tail:
    """Reads every new record of ``topics``; call :meth:`poll` in a loop.

    ``group_id`` None: no group (every partition assigned, nothing
    committed); otherwise a member of that group, committing as it goes
    exactly what :meth:`poll` handed over: one past the last record returned
    per partition, never records or transaction markers only prefetched.
    ``start``: "end" (only new records) or "beginning".
    """

    def __init__(
        self,
        client: dict[str, Any],
        topics: list[str],
        *,
        isolation: str = "read_uncommitted",
        group_id: str | None = None,
        start: str = "end",
    ) -> None:
        self.topics = topics
        self.isolation = isolation
        self.group_id = group_id
        self._errors = connection.ErrorCollector()
        self._consumer = Consumer(
            {
                **client,
                "group.id": group_id or f"cdc-studio-tail-{uuid.uuid4().hex[:8]}",
                "isolation.level": isolation,
                "enable.auto.commit": group_id is not None,
                # Stored by poll() itself: librdkafka's own store also takes
                # the markers behind the last record returned (served while
                # closing, say), and the commit on close would skip records.
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if start == "beginning" else "latest",
                "enable.partition.eof": False,
                "logger": connection.ClientLog(),
                "error_cb": self._errors,
            }
        )
        try:
            # A group would wait for a missing topic in silence: say so now.
            found = connection.existing_topics(
                self._consumer,
                topics,
                _METADATA_TIMEOUT_S,
                bootstrap=str(client.get("bootstrap.servers", "")),
                errors=self._errors,
            )
        except StudioError:
            self._consumer.close()
            raise
        if group_id is not None:
            self._consumer.subscribe(topics)
            return
        offset = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
        assigned = [
            TopicPartition(topic, p, offset)
            for topic, meta in found.items()
            for p in meta.partitions
        ]
        self._consumer.assign(assigned)

    def poll(self, max_records: int = 500, timeout: float = 0.2) -> list[TailRecord]:
        """The records that arrived, up to ``max_records``, waiting ``timeout``."""
        records = []
        for msg in self._consumer.consume(max_records, timeout):
            error = msg.error()
            if error is None:
                records.append(TailRecord.from_message(msg))
                self._store(msg)
            elif error.fatal():
                raise ConsumerError(f"The tail failed: {error.str()}")
            elif error.code() != KafkaError._PARTITION_EOF:
                log.info("tail of %s: %s", self.topics, error.str())
        return records

    def _store(self, msg: Message) -> None:
        """Mark ``msg`` handed over: the group's next commit resumes after it."""
        if self.group_id is None:
            return
        try:
            self._consumer.store_offsets(message=msg)
        except KafkaException as exc:
            # The partition was revoked meanwhile: its new owner reads it again.
            log.debug("offset of %s not stored: %s", msg.offset(), exc)

    def positions(self) -> dict[TP, int]:
        """The next offset per assigned partition (past skipped markers too)."""
        try:
            assignment = self._consumer.assignment()
            return {
                (tp.topic, tp.partition): tp.offset
                for tp in self._consumer.position(assignment)
                if tp.offset >= 0
            }
        except KafkaException:
            return {}

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class PaneRow:
    """A row of an isolation pane: a record with its status, or a gap."""

    pane: str  # committed | uncommitted
    kind: str  # record | gap
    status: str  # committed | aborted | open (records); marker-or-aborted (gaps)
    topic: str
    partition: int
    offset: int
    until: int | None = None  # gaps: the last skipped offset
    record: TailRecord | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "record"}
        data["record"] = self.record.to_json() if self.record else None
        return data


@dataclass
class PairUpdate:
    """What one poll of an :class:`IsolationPair` adds or settles."""

    committed: list[PaneRow] = field(default_factory=list)
    uncommitted: list[PaneRow] = field(default_factory=list)
    settled: list[PaneRow] = field(default_factory=list)  # open rows now decided


class IsolationPair:
    """One topic, read at once through read_committed and read_uncommitted."""

    def __init__(
        self, client: dict[str, Any], topic: str, *, start: str = "beginning"
    ) -> None:
        self.topic = topic
        self._committed = Tail(client, [topic], isolation="read_committed", start=start)
        try:
            self._uncommitted = Tail(
                client, [topic], isolation="read_uncommitted", start=start
            )
        except StudioError:
            self._committed.close()
            raise
        self._seen_committed: dict[TP, set[int]] = {}
        self._open: dict[TP, dict[int, TailRecord]] = {}
        self._last: dict[tuple[str, TP], int] = {}

    def open_records(self) -> list[TailRecord]:
        """Uncommitted-pane records still waiting for their transaction."""
        return sorted(
            (r for rows in self._open.values() for r in rows.values()),
            key=lambda r: (r.partition, r.offset),
        )

    def poll(self, timeout: float = 0.2) -> PairUpdate:
        """Read both panes; decide what the committed reader has moved past."""
        update = PairUpdate()
        for record in self._committed.poll(timeout=timeout):
            tp = (record.topic, record.partition)
            self._seen_committed.setdefault(tp, set()).add(record.offset)
            update.committed += self._gap("committed", record)
            update.committed.append(
                PaneRow(
                    "committed",
                    "record",
                    "committed",
                    *tp,
                    record.offset,
                    record=record,
                )
            )
        arrived = []
        for record in self._uncommitted.poll(timeout=timeout):
            tp = (record.topic, record.partition)
            update.uncommitted += self._gap("uncommitted", record)
            self._open.setdefault(tp, {})[record.offset] = record
            arrived.append(record)

        decided = self._decide(self._committed.positions())
        for record in arrived:
            key = (record.topic, record.partition, record.offset)
            row = decided.pop(key, None) or PaneRow(
                "uncommitted", "record", "open", *key, record=record
            )
            update.uncommitted.append(row)
        update.uncommitted.sort(key=lambda row: (row.partition, row.offset))
        update.settled = sorted(
            decided.values(), key=lambda row: (row.partition, row.offset)
        )
        return update

    def _decide(self, below: dict[TP, int]) -> dict[tuple[str, int, int], PaneRow]:
        """Statuses of the open records the committed reader has moved past."""
        decided = {}
        for tp, rows in self._open.items():
            seen = self._seen_committed.get(tp, set())
            for offset in [o for o in rows if o < below.get(tp, 0)]:
                status = "committed" if offset in seen else "aborted"
                decided[(*tp, offset)] = PaneRow(
                    "uncommitted",
                    "record",
                    status,
                    *tp,
                    offset,
                    record=rows.pop(offset),
                )
            low = min([*rows, below.get(tp, 0)])
            self._seen_committed[tp] = {o for o in seen if o >= low}
        return decided

    def _gap(self, pane: str, record: TailRecord) -> list[PaneRow]:
        """A gap row when ``pane`` skipped offsets before ``record``."""
        tp = (record.topic, record.partition)
        last = self._last.get((pane, tp))
        self._last[(pane, tp)] = record.offset
        if last is None or record.offset <= last + 1:
            return []
        return [
            PaneRow(
                pane, "gap", "marker-or-aborted", *tp, last + 1, until=record.offset - 1
            )
        ]

    def close(self) -> None:
        self._committed.close()
        self._uncommitted.close()
