"""Which replica serves each partition a consumer reads, from librdkafka statistics.

A consumer with ``client.rack`` set, on brokers running the rack-aware
replica selector, is told by each leader to fetch from the in-sync replica
in its own rack (KIP-392). librdkafka's statistics say, per partition, the
leader and the broker it currently fetches from::

    watcher = FetchSourceWatcher()
    consumer = Consumer(consumer_config(bootstrap, "g", rack="rack-2",
                                        stats_cb=watcher))
    ...  # poll as usual; statistics arrive inside poll()
    watcher.sources()[("orders", 0)]  # FetchSource(leader=1, broker=2, ...)
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchSource:
    """Where one consumer fetches one partition from."""

    topic: str
    partition: int
    leader: int
    broker: int
    fetch_state: str

    @property
    def from_follower(self) -> bool:
        return self.broker >= 0 and self.broker != self.leader

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "leader": self.leader,
            "broker": self.broker,
            "fetch_state": self.fetch_state,
            "from_follower": self.from_follower,
        }


def fetch_sources(stats_json: str) -> dict[tuple[str, int], FetchSource]:
    """The fetch source of every assigned partition in one statistics JSON.

    Partitions the consumer does not fetch (fetch state ``none``) and
    librdkafka's internal ``-1`` partition are left out.
    """
    stats = json.loads(stats_json)
    sources: dict[tuple[str, int], FetchSource] = {}
    for topic, topic_stats in stats.get("topics", {}).items():
        for key, part in topic_stats.get("partitions", {}).items():
            partition = int(key)
            state = str(part.get("fetch_state", "none"))
            if partition < 0 or state == "none":
                continue
            sources[(topic, partition)] = FetchSource(
                topic,
                partition,
                int(part.get("leader", -1)),
                int(part.get("broker", -1)),
                state,
            )
    return sources


class FetchSourceWatcher:
    """A ``stats_cb`` that keeps the latest fetch source per partition.

    librdkafka calls it inside ``poll()`` on the polling thread; read it from
    any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[tuple[str, int], FetchSource] = {}

    def __call__(self, stats_json: str) -> None:
        try:
            sources = fetch_sources(stats_json)
        except (ValueError, TypeError) as exc:
            log.debug("statistics not understood: %s", exc)
            return
        with self._lock:
            self._sources.update(sources)

    def sources(self) -> dict[tuple[str, int], FetchSource]:
        with self._lock:
            return dict(self._sources)


def consumer_config(
    bootstrap: str,
    group_id: str,
    *,
    rack: str | None = None,
    stats_cb: FetchSourceWatcher | None = None,
    stats_interval_ms: int = 500,
) -> dict[str, Any]:
    """A consumer config that reads from ``rack``'s replica and reports it."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if rack:
        config["client.rack"] = rack
    if stats_cb is not None:
        config["statistics.interval.ms"] = stats_interval_ms
        config["stats_cb"] = stats_cb
    return config
