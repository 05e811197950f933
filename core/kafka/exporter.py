"""A Prometheus exporter of the cluster layout: leaders, ISR, flags and offsets."""

from __future__ import annotations

import errno
import ipaddress
import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from core.errors import KafkaConnectionError, PortBusyError, SettingsError, StudioError
from core.kafka.cluster import ClusterSnapshot
from core.kafka.inspector import ClusterInspector
from core.kafka.lag import GroupTarget, LagReader, LagSample

log = logging.getLogger(__name__)

PREFIX = "cdc_studio_kafka"
PARTITION_LABELS = ["topic", "partition"]


def parse_listen(address: str, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); only loopback hosts unless ``allow_remote``."""
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit():
        raise SettingsError(
            f"Cannot listen on {address!r}",
            hint="give HOST:PORT, for example 127.0.0.1:9308",
        )
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise SettingsError(f"Port {port} is out of range", hint="use 1..65535")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise SettingsError(
            f"The exporter would listen on {host}, which is not loopback",
            hint="use 127.0.0.1 (or ::1); pass --allow-remote to expose it on purpose",
        )
    return host, port


def host_port(host: str, port: int) -> str:
    """``HOST:PORT`` as a URL writes it: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_error(host: str, port: int, exc: OSError) -> StudioError:
    """Why the exporter cannot listen on ``host``:``port``, and what to do."""
    address = host_port(host, port)
    if exc.errno == errno.EADDRINUSE:
        return PortBusyError(
            f"Cannot serve metrics on {address}: the port is busy",
            hint="stop the process using it, or choose another port: "
            "--prometheus HOST:PORT",
        )
    return SettingsError(
        f"Cannot serve metrics on {address}: {exc.strerror or exc}",
        hint="choose another address: --prometheus HOST:PORT",
    )


def _partition_gauges() -> dict[str, GaugeMetricFamily]:
    specs = {
        "leader": "Broker id of the partition leader (-1: offline)",
        "replicas": "Number of assigned replicas",
        "in_sync_replicas": "Number of in-sync replicas",
        "under_replicated": "1 if fewer replicas are in sync than assigned",
        "under_min_isr": "1 if fewer replicas are in sync than min.insync.replicas",
        "offline": "1 if the partition has no leader",
        "leader_not_preferred": "1 if the leader is not the preferred replica",
        "log_start_offset": "Log start offset",
        "high_watermark": "High watermark (end offset for read_uncommitted)",
        "last_stable_offset": "Last stable offset (end offset for read_committed)",
    }
    return {
        name: GaugeMetricFamily(
            f"{PREFIX}_partition_{name}", text, labels=PARTITION_LABELS
        )
        for name, text in specs.items()
    }


def metric_families(snapshot: ClusterSnapshot) -> list[GaugeMetricFamily]:
    """Every metric of one snapshot (also what the tests compare against)."""
    up = GaugeMetricFamily(f"{PREFIX}_brokers", "Number of live brokers")
    up.add_metric([], len(snapshot.brokers))
    leaders = GaugeMetricFamily(
        f"{PREFIX}_broker_leader_partitions",
        "Partitions led by each live broker",
        labels=["broker", "rack"],
    )
    counts = snapshot.leader_counts()
    racks = {b.id: b.rack or "" for b in snapshot.brokers}
    for broker_id, count in counts.items():
        leaders.add_metric([str(broker_id), racks.get(broker_id, "")], count)
    skew = GaugeMetricFamily(
        f"{PREFIX}_leader_skew_ratio",
        "How far the busiest broker leads above an even share (0: balanced)",
    )
    skew.add_metric([], snapshot.leader_skew())

    gauges = _partition_gauges()
    for p in snapshot.partitions():
        labels = [p.topic, str(p.partition)]
        values: dict[str, Any] = {
            "leader": -1 if p.leader is None else p.leader,
            "replicas": len(p.replicas),
            "in_sync_replicas": len(p.isr),
            "under_replicated": int(p.under_replicated),
            "under_min_isr": int(p.under_min_isr),
            "offline": int(p.offline),
            "leader_not_preferred": int(p.leader_not_preferred),
            "log_start_offset": p.log_start_offset,
            "high_watermark": p.high_watermark,
            "last_stable_offset": p.last_stable_offset,
        }
        for name, value in values.items():
            if value is not None:  # an offset that could not be read is absent
                gauges[name].add_metric(labels, value)
    return [up, leaders, skew, *gauges.values()]


def lag_families(sample: LagSample) -> list[GaugeMetricFamily]:
    """Per group and partition: committed offset and lag against HW and LSO."""
    labels = ["group", "topic", "partition"]
    committed = GaugeMetricFamily(
        f"{PREFIX}_consumer_group_committed_offset",
        "Committed offset of the group (absent: none committed)",
        labels=labels,
    )
    lag = GaugeMetricFamily(
        f"{PREFIX}_consumer_group_lag",
        "Records the group has not read, counted against the high watermark "
        "(read_uncommitted) or the last stable offset (read_committed)",
        labels=[*labels, "against"],
    )
    for group in sample.groups:
        for p in group.partitions:
            where = [p.group, p.topic, str(p.partition)]
            if p.committed is not None:
                committed.add_metric(where, p.committed)
            lag.add_metric([*where, "high_watermark"], p.lag_hw)
            lag.add_metric([*where, "last_stable_offset"], p.lag_lso)
    return [committed, lag]


class SnapshotCollector(Collector):
    """Serves the latest snapshot; a scrape never waits for the cluster."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: ClusterSnapshot | None = None
        self._lag: LagSample | None = None
        self._refresh_ok = 0

    def update(self, snapshot: ClusterSnapshot | None) -> None:
        with self._lock:
            if snapshot is not None:
                self._snapshot = snapshot
            self._refresh_ok = int(snapshot is not None)

    def update_lag(self, sample: LagSample) -> None:
        with self._lock:
            self._lag = sample

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            snapshot, ok, lag = self._snapshot, self._refresh_ok, self._lag
        healthy = GaugeMetricFamily(
            f"{PREFIX}_refresh_success", "1 if the last refresh reached the cluster"
        )
        healthy.add_metric([], ok)
        yield healthy
        if snapshot is not None:
            yield from metric_families(snapshot)
        if lag is not None:
            yield from lag_families(lag)


class Exporter:
    """Refreshes an inspector every ``interval`` s and serves it over HTTP.

    With a ``lag_reader``, every consumer group's lag is exported too (as
    read_uncommitted groups with reset policy latest: the cluster knows
    neither, so both the HW and the LSO lag are given).
    """

    def __init__(
        self,
        inspector: ClusterInspector,
        host: str,
        port: int,
        interval: float = 2.0,
        lag_reader: LagReader | None = None,
    ) -> None:
        self.inspector = inspector
        self.lag_reader = lag_reader
        self.host, self.port, self.interval = host, port, interval
        self.collector = SnapshotCollector()
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None

    def refresh_once(self) -> ClusterSnapshot | None:
        try:
            snapshot, _ = self.inspector.refresh()
        except KafkaConnectionError as exc:
            log.warning("exporter refresh failed: %s", exc.args[0])
            self.collector.update(None)
            return None
        self.collector.update(snapshot)
        if self.lag_reader is not None:
            self._sample_lag(self.lag_reader)
        return snapshot

    def _sample_lag(self, reader: LagReader) -> None:
        try:
            targets = [GroupTarget(group) for group in reader.groups()]
            self.collector.update_lag(reader.sample(targets))
        except StudioError as exc:
            log.warning("exporter lag sample failed: %s", exc.args[0])

    @property
    def url(self) -> str:
        """Where the metrics are served (the port is the real one once started)."""
        return f"http://{host_port(self.host, self.port)}/metrics"

    def start(self) -> None:
        """Take a first snapshot, then serve and keep refreshing in a thread.

        If the address cannot be listened on, the exporter is stopped and
        says why (a busy port as :class:`PortBusyError`).
        """
        self.refresh_once()
        try:
            self._server, _ = start_http_server(self.port, self.host, self.registry)
        except OSError as exc:
            self.stop()
            raise _listen_error(self.host, self.port, exc) from exc
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._loop, name="exporter", daemon=True)
        self._thread.start()
        log.info("Prometheus exporter on %s", self.url)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.lag_reader is not None:
            self.lag_reader.close()
        log.info("Prometheus exporter stopped")

    def wait(self) -> None:
        """Block until interrupted (Ctrl+C), then stop."""
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()
