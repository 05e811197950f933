"""Consumer lag per group and partition, exact about transactions, sampled over time.

For each partition one sample holds the committed offset, the log start,
the high watermark (HW) and the last stable offset (LSO), all asked at once.
Lag counts messages from where the group would read next:

- against the LSO for a ``read_committed`` group, the HW for a
  ``read_uncommitted`` one; both are kept (``lag_lso``, ``lag_hw``);
- transaction markers (and, read_committed, aborted records) are not
  messages: where offsets say there is lag, the records are read and
  counted (up to ``count_up_to`` per partition; beyond, the lag counts
  offsets from the next real record and ``exact`` is False), so a caught-up
  group on a transactional topic shows 0, not 1;
- no committed offset: the lag the group would have under its reset policy
  (earliest: from the log start; latest: none), and ``position`` says so;
- a committed offset below the log start (retention deleted the records)
  counts from the log start;
- never negative.

An LSO below the HW is an open transaction pinning it; the sample says
since when (the timestamp of its first record) and how far the HW moved
past it, and :class:`LagSampler` finds the producer with Kafka's
kafka-transactions tool. Time lag is the time between the record at the
committed offset and the end (the partition's newest timestamp).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from core.errors import KafkaConnectionError, LagError, StudioError
from core.kafka import connection
from core.kafka.offset_probe import TP, CommittedReader, NextRecord, RecordProbe, Scan
from core.kafka.transactions import PinningProducer, find_pinning_producer
from core.settings import Settings

log = logging.getLogger(__name__)

RESET_POLICIES = ("earliest", "latest", "none")
Range = tuple[TP, int, int]  # partition, start, end
CELL_NAMES = [
    "topic",
    "partition",
    "committed",
    "log start",
    "LSO",
    "HW",
    "lag LSO",
    "lag HW",
    "lag",
    "time lag s",
    "note",
]


@dataclass(frozen=True)
class GroupTarget:
    """A group to sample; the cluster knows neither its isolation nor its reset.

    ``topics`` None: every topic the group has committed offsets in.
    """

    group: str
    topics: tuple[str, ...] | None = None
    isolation: str = "read_uncommitted"
    reset_policy: str = "latest"


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction holding a partition's LSO below its HW."""

    last_stable_offset: int
    high_watermark: int
    since_ms: int | None
    producer: PinningProducer | None = None

    @property
    def offsets_past(self) -> int:
        """How far the HW has moved past the pinned LSO (offsets, not messages)."""
        return self.high_watermark - self.last_stable_offset

    def to_json(self) -> dict[str, Any]:
        return {
            "last_stable_offset": self.last_stable_offset,
            "high_watermark": self.high_watermark,
            "since_ms": self.since_ms,
            "offsets_past": self.offsets_past,
            "producer": self.producer.to_json() if self.producer else None,
        }


@dataclass(frozen=True)
class PartitionLag:
    """One partition of one group at one moment."""

    group: str
    topic: str
    partition: int
    committed: int | None
    log_start: int
    high_watermark: int
    last_stable_offset: int
    lag_hw: int
    lag_lso: int
    isolation: str
    position: str  # committed | no-committed-offset | below-log-start
    reset_policy: str
    exact: bool = True
    time_lag_s: float | None = None
    open_transaction: OpenTransaction | None = None

    @property
    def lag(self) -> int:
        """The lag that matters for this group's isolation level."""
        return self.lag_lso if self.isolation == "read_committed" else self.lag_hw

    def note(self) -> str:
        """What the numbers alone do not say: position, an open transaction."""
        parts = [] if self.position == "committed" else [self.position]
        if self.position == "no-committed-offset" and self.reset_policy == "none":
            parts.append("auto.offset.reset=none: a consumer of this group fails here")
        txn = self.open_transaction
        if txn is not None:
            who = txn.producer.transactional_id if txn.producer else None
            parts.append(
                f"open transaction at {txn.last_stable_offset} (HW "
                f"{txn.offsets_past} past, {who or 'producer not found yet'})"
            )
        return "; ".join(parts)

    def cells(self) -> list[Any]:
        """The values of ``CELL_NAMES``, for tables; ``~`` marks an estimate."""
        return [
            self.topic,
            self.partition,
            "-" if self.committed is None else self.committed,
            self.log_start,
            self.last_stable_offset,
            self.high_watermark,
            self.lag_lso,
            self.lag_hw,
            self.lag if self.exact else f"~{self.lag}",
            "-" if self.time_lag_s is None else f"{self.time_lag_s:.1f}",
            self.note(),
        ]

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "open_transaction"}
        data["lag"] = self.lag
        data["open_transaction"] = (
            self.open_transaction.to_json() if self.open_transaction else None
        )
        return data


@dataclass(frozen=True)
class GroupLag:
    group: str
    isolation: str
    partitions: list[PartitionLag]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def time_lag_s(self) -> float:
        return max((p.time_lag_s or 0.0 for p in self.partitions), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "isolation": self.isolation,
            "lag": self.lag,
            "time_lag_s": self.time_lag_s,
            "partitions": [p.to_json() for p in self.partitions],
        }


@dataclass(frozen=True)
class LagSample:
    at: float
    took_s: float
    groups: list[GroupLag] = field(default_factory=list)

    def group(self, name: str) -> GroupLag:
        return next(g for g in self.groups if g.group == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "took_s": self.took_s,
            "groups": [g.to_json() for g in self.groups],
        }


@dataclass(frozen=True)
class _Ends:
    log_start: int
    high_watermark: int
    last_stable_offset: int
    newest_ms: int | None


class LagReader:
    """Takes lag samples from any cluster ``client`` (librdkafka settings)."""

    def __init__(
        self,
        client: dict[str, Any],
        *,
        timeout: float = 10.0,
        probe_timeout: float = 5.0,
        count_up_to: int = 1000,
    ) -> None:
        self.client = client
        self._count_up_to = count_up_to
        self._timeout = timeout
        self._probe_timeout = probe_timeout
        self._errors = connection.ErrorCollector()
        self._admin = connection.admin_client(client, self._errors)
        self._committed = CommittedReader(client, timeout)
        self._probes = {
            iso: RecordProbe(client, iso)
            for iso in ("read_committed", "read_uncommitted")
        }
        self._found_topics: dict[str, tuple[float, set[str]]] = {}
        self.rediscover_s = 30.0

    def groups(self) -> list[str]:
        """Every consumer group on the cluster (our probes' ids left out)."""
        try:
            listed = self._admin.list_consumer_groups(request_timeout=self._timeout)
            result = listed.result(self._timeout)
        except (KafkaException, TimeoutError) as exc:
            raise self._connection_error(exc) from exc
        return sorted(
            g.group_id
            for g in result.valid
            if not g.group_id.startswith("cdc-studio-lag-probe")
        )

    def sample(self, targets: Sequence[GroupTarget]) -> LagSample:
        """One sample of every target group."""
        # Threads only for the length of a sample: none are left behind.
        with ThreadPoolExecutor(8, thread_name_prefix="lag-sample") as pool:
            sample = self._sample(targets, pool)
        self._committed.trim()
        return sample

    def _sample(
        self, targets: Sequence[GroupTarget], pool: ThreadPoolExecutor
    ) -> LagSample:
        started = time.monotonic()
        layout = self._partitions()

        asked = {t.group: self._group_partitions(t, layout) for t in targets}
        names = list(asked)
        answers = pool.map(lambda g: self._committed.committed(g, asked[g]), names)
        wanted: dict[str, dict[TP, int | None]] = dict(zip(names, answers, strict=True))
        for target in targets:
            if target.topics is None:
                committed = wanted[target.group]
                used = {t for (t, _), o in committed.items() if o is not None}
                if target.group not in self._found_topics:
                    self._found_topics[target.group] = (time.monotonic(), used)
                wanted[target.group] = {
                    tp: o for tp, o in committed.items() if tp[0] in used
                }

        ends = self._ends({tp for c in wanted.values() for tp in c})
        at = time.time()
        starts = [
            {
                tp: _start(o, ends[tp], t)
                for tp, o in wanted[t.group].items()
                if tp in ends
            }
            for t in targets
        ]
        scans = self._scan_all(starts, ends)
        groups = [
            self._group(t, wanted[t.group], starts[i], ends, scans)
            for i, t in enumerate(targets)
        ]
        return LagSample(at, time.monotonic() - started, groups)

    def _scan_all(
        self,
        starts: list[dict[TP, tuple[int, str]]],
        ends: dict[TP, _Ends],
    ) -> dict[str, dict[Range, Scan]]:
        """Read every range offsets cannot settle, all groups at once.

        Per isolation level: from each start to the end that level sees, and
        (read_uncommitted) the first record of each open transaction.
        """
        jobs: dict[str, set[Range]] = {
            "read_uncommitted": set(),
            "read_committed": set(),
        }
        for group_starts in starts:
            for tp, (start, _) in group_starts.items():
                end = ends[tp]
                if end.high_watermark > start:
                    jobs["read_uncommitted"].add((tp, start, end.high_watermark))
                if end.last_stable_offset > start:
                    jobs["read_committed"].add((tp, start, end.last_stable_offset))
                if end.last_stable_offset < end.high_watermark:
                    lso = end.last_stable_offset
                    jobs["read_uncommitted"].add((tp, lso, lso + 1))

        def run(isolation: str) -> dict[Range, Scan]:
            found: dict[Range, Scan] = {}
            pending = sorted(jobs[isolation])
            while pending:  # one range per partition and round
                batch: dict[TP, tuple[int, int]] = {}
                later = []
                for tp, start, end in pending:
                    if tp in batch:
                        later.append((tp, start, end))
                    else:
                        batch[tp] = (start, end)
                answers = self._probes[isolation].scan(
                    batch, count_up_to=self._count_up_to, timeout=self._probe_timeout
                )
                for tp, (start, end) in batch.items():
                    if tp in answers:
                        found[(tp, start, end)] = answers[tp]
                pending = later
            return found

        ru = run("read_uncommitted")
        derived = {
            job: ru[job] for job in jobs["read_committed"] if _plain(job, ru, ends)
        }
        jobs["read_committed"] -= derived.keys()
        rc = run("read_committed") | derived
        return {"read_uncommitted": ru, "read_committed": rc}

    def _group_partitions(
        self, target: GroupTarget, layout: dict[str, int]
    ) -> list[TP]:
        """The partitions to read the group's committed offsets for.

        Without given topics: every topic, then (for ``rediscover_s``) only
        those where the group had committed offsets.
        """
        if target.topics is not None:
            topics = list(target.topics)
        else:
            found = self._found_topics.get(target.group)
            if found is not None and time.monotonic() - found[0] < self.rediscover_s:
                topics = sorted(found[1])
            else:
                self._found_topics.pop(target.group, None)
                topics = [t for t in layout if not t.startswith("__")]
        return [(t, p) for t in topics for p in range(layout.get(t, 0))]

    def _partitions(self) -> dict[str, int]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise self._connection_error(exc) from exc
        return {
            name: len(t.partitions)
            for name, t in metadata.topics.items()
            if t.error is None
        }

    def _connection_error(self, exc: Exception) -> KafkaConnectionError:
        """Why the cluster did not answer, naming its bootstrap servers."""
        self._admin.poll(0)  # serves error_cb: the collector learns why
        bootstrap = str(self.client.get("bootstrap.servers", ""))
        cause = exc if isinstance(exc, KafkaException) else None
        return connection.classify(bootstrap, cause, self._errors.take())

    def _ends(self, tps: set[TP]) -> dict[TP, _Ends]:
        """Log start, HW, LSO and newest timestamp, all requested at once."""
        if not tps:
            return {}
        asked = [TopicPartition(t, p) for t, p in sorted(tps)]
        requests: dict[str, dict[Any, Future[Any]]] = {
            "start": self._list({tp: OffsetSpec.earliest() for tp in asked}),
            "hw": self._list({tp: OffsetSpec.latest() for tp in asked}),
            "lso": self._list(
                {tp: OffsetSpec.latest() for tp in asked}, IsolationLevel.READ_COMMITTED
            ),
            "newest": self._list({tp: OffsetSpec.max_timestamp() for tp in asked}),
        }
        answers: dict[str, dict[TP, Any]] = {}
        for name, futures in requests.items():
            answers[name] = {}
            for tp, future in futures.items():
                try:
                    answers[name][(tp.topic, tp.partition)] = future.result(
                        self._timeout
                    )
                except (KafkaException, TimeoutError) as exc:
                    log.info(
                        "no %s offset for %s-%d: %r", name, tp.topic, tp.partition, exc
                    )
        ends = {}
        for tp in tps:
            if not all(tp in answers[n] for n in ("start", "hw", "lso")):
                continue
            newest = answers["newest"].get(tp)
            ends[tp] = _Ends(
                answers["start"][tp].offset,
                answers["hw"][tp].offset,
                answers["lso"][tp].offset,
                newest.timestamp
                if newest is not None and newest.timestamp >= 0
                else None,
            )
        return ends

    def _list(
        self,
        specs: dict[TopicPartition, OffsetSpec],
        isolation: IsolationLevel = IsolationLevel.READ_UNCOMMITTED,
    ) -> dict[Any, Future[Any]]:
        try:
            return self._admin.list_offsets(
                specs, isolation_level=isolation, request_timeout=self._timeout
            )
        except KafkaException as exc:
            raise LagError(
                f"Cannot list offsets: {exc.args[0].str()}",
                hint="check that the cluster is reachable",
            ) from exc

    def _group(
        self,
        target: GroupTarget,
        committed: dict[TP, int | None],
        starts: dict[TP, tuple[int, str]],
        ends: dict[TP, _Ends],
        scans: dict[str, dict[Range, Scan]],
    ) -> GroupLag:
        ru, rc = scans["read_uncommitted"], scans["read_committed"]
        partitions = []
        for tp in sorted(starts):
            start, position = starts[tp]
            end = ends[tp]
            lag_hw, exact_hw = _count(start, end.high_watermark, ru, tp)
            lag_lso, exact_lso = _count(start, end.last_stable_offset, rc, tp)
            committed_view = target.isolation == "read_committed"
            lag = lag_lso if committed_view else lag_hw
            view_end = end.last_stable_offset if committed_view else end.high_watermark
            scan = (rc if committed_view else ru).get((tp, start, view_end))
            nxt = scan.first if scan is not None else None
            time_lag = 0.0 if lag == 0 else _seconds(nxt, end.newest_ms)
            open_txn = None
            if end.last_stable_offset < end.high_watermark:
                lso = end.last_stable_offset
                first = ru.get((tp, lso, lso + 1))
                open_txn = OpenTransaction(
                    lso,
                    end.high_watermark,
                    first.first.timestamp_ms if first and first.first else None,
                )
            partitions.append(
                PartitionLag(
                    target.group,
                    tp[0],
                    tp[1],
                    committed[tp],
                    end.log_start,
                    end.high_watermark,
                    end.last_stable_offset,
                    lag_hw,
                    lag_lso,
                    target.isolation,
                    position,
                    target.reset_policy,
                    exact_lso if committed_view else exact_hw,
                    time_lag,
                    open_txn,
                )
            )
        return GroupLag(target.group, target.isolation, partitions)

    def close(self) -> None:
        self._committed.close()
        for probe in self._probes.values():
            probe.close()


def _start(committed: int | None, end: _Ends, target: GroupTarget) -> tuple[int, str]:
    """Where the group reads next, and why."""
    if committed is None:
        if target.reset_policy == "earliest":
            return end.log_start, "no-committed-offset"
        end_offset = (
            end.last_stable_offset
            if target.isolation == "read_committed"
            else end.high_watermark
        )
        return end_offset, "no-committed-offset"
    if committed < end.log_start:
        return end.log_start, "below-log-start"
    return committed, "committed"


def _count(start: int, end: int, scans: dict[Range, Scan], tp: TP) -> tuple[int, bool]:
    """Messages in [start, end), and whether they were counted one by one."""
    if end <= start:
        return 0, True
    scan = scans.get((tp, start, end))
    if scan is None:
        return end - start, False  # no answer in time: offsets are all we have
    if scan.first is None:
        return 0, True
    if scan.count is not None:
        return scan.count, True
    return end - scan.first.offset, False


def _plain(job: Range, ru: dict[Range, Scan], ends: dict[TP, _Ends]) -> bool:
    """Whether a read_committed range reads the same as read_uncommitted.

    So when no transaction is open (LSO = HW) and every offset of the range
    held a record: with no marker in it, none of its records can belong to a
    transaction (a transaction's marker follows its records, below the HW).
    """
    tp, start, end = job
    scan = ru.get(job)
    return (
        end == ends[tp].high_watermark
        and scan is not None
        and scan.count == end - start
    )


def _seconds(record: NextRecord | None, newest_ms: int | None) -> float | None:
    if record is None or record.timestamp_ms is None or newest_ms is None:
        return None
    return max(0.0, (newest_ms - record.timestamp_ms) / 1000)


class LagSampler:
    """Samples lag on an interval into a bounded history, on its own thread.

    With ``settings`` (for Kafka's tools) it also finds the producer of each
    open transaction that pins an LSO, once per pin, in the background.
    """

    def __init__(
        self,
        reader: LagReader,
        targets: Callable[[], Sequence[GroupTarget]],
        *,
        interval_s: float = 1.0,
        history: int = 600,
        settings: Settings | None = None,
    ) -> None:
        self.reader = reader
        self._targets = targets
        self.interval_s = interval_s
        self._history: deque[LagSample] = deque(maxlen=history)
        self._listeners: list[Callable[[LagSample], None]] = []
        self._settings = settings
        self._producers: dict[tuple[str, int, int], PinningProducer | None] = {}
        self._finder = ThreadPoolExecutor(1, thread_name_prefix="lag-txn")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error: StudioError | None = None

    def subscribe(self, listener: Callable[[LagSample], None]) -> None:
        """Call ``listener`` with each new sample, on the sampler's thread."""
        self._listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="lag-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._finder.shutdown(wait=True)

    def history(self) -> list[LagSample]:
        with self._lock:
            return list(self._history)

    def sample_once(self) -> LagSample:
        """Take one sample now, add it to the history and tell the listeners."""
        sample = self._with_producers(self.reader.sample(self._targets()))
        with self._lock:
            self._history.append(sample)
        for listener in list(self._listeners):
            listener(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.is_set():
            begun = time.monotonic()
            try:
                self.sample_once()
                self.last_error = None
            except StudioError as exc:
                if self.last_error is None:
                    log.warning("lag sampling failed: %s", exc)
                self.last_error = exc
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - begun)))

    def _with_producers(self, sample: LagSample) -> LagSample:
        """Fill in known pinning producers; look up new pins in the background."""
        if self._settings is None:
            return sample

        def known(key: tuple[str, int, int]) -> PinningProducer | None:
            if key not in self._producers:
                self._producers[key] = None
                self._finder.submit(self._find, key)
            return self._producers.get(key)

        return _with_pinning_producers(sample, known)

    def _find(self, key: tuple[str, int, int]) -> None:
        assert self._settings is not None
        bootstrap = str(self.reader.client.get("bootstrap.servers", ""))
        try:
            self._producers[key] = find_pinning_producer(
                self._settings, bootstrap, *key
            )
        except StudioError as exc:
            log.info("cannot find the producer pinning %s: %s", key, exc)


def name_pinning_producers(
    sample: LagSample,
    settings: Settings,
    bootstrap: str,
    known: dict[tuple[str, int, int], PinningProducer | None] | None = None,
) -> LagSample:
    """``sample`` with the producer of each open transaction looked up now.

    Synchronous (a few seconds of Kafka's own tool per pinned partition), for
    the command line; ``known`` carries answers between samples of a watch.
    """
    answers = {} if known is None else known

    def find(key: tuple[str, int, int]) -> PinningProducer | None:
        if key not in answers:
            try:
                answers[key] = find_pinning_producer(settings, bootstrap, *key)
            except StudioError as exc:
                log.info("cannot find the producer pinning %s: %s", key, exc)
                answers[key] = None
        return answers[key]

    return _with_pinning_producers(sample, find)


def _with_pinning_producers(
    sample: LagSample,
    producer_of: Callable[[tuple[str, int, int]], PinningProducer | None],
) -> LagSample:
    """``sample`` with each open transaction's producer, where ``producer_of``
    (topic, partition, LSO) knows it."""
    groups = []
    for group in sample.groups:
        parts = []
        for p in group.partitions:
            txn = p.open_transaction
            if txn is not None:
                found = producer_of((p.topic, p.partition, txn.last_stable_offset))
                if found is not None:
                    p = _replace_txn(p, found)
            parts.append(p)
        groups.append(GroupLag(group.group, group.isolation, parts))
    return LagSample(sample.at, sample.took_s, groups)


def _replace_txn(p: PartitionLag, producer: PinningProducer) -> PartitionLag:
    from dataclasses import replace

    assert p.open_transaction is not None
    return replace(p, open_transaction=replace(p.open_transaction, producer=producer))
