"""Parsing librdkafka statistics into fetch sources."""

from __future__ import annotations

import json

from core.kafka.follower import FetchSource, FetchSourceWatcher, fetch_sources


def stats(partitions: dict[str, dict[str, object]]) -> str:
    return json.dumps({"topics": {"t": {"partitions": partitions}}})


def test_fetch_sources_skip_unassigned_and_internal_partitions() -> None:
    text = stats(
        {
            "0": {"leader": 1, "broker": 2, "fetch_state": "active"},
            "1": {"leader": 2, "broker": 2, "fetch_state": "active"},
            "2": {"leader": 3, "broker": 3, "fetch_state": "none"},
            "-1": {"leader": -1, "broker": -1, "fetch_state": "none"},
        }
    )
    assert fetch_sources(text) == {
        ("t", 0): FetchSource("t", 0, 1, 2, "active"),
        ("t", 1): FetchSource("t", 1, 2, 2, "active"),
    }
    assert fetch_sources(text)[("t", 0)].from_follower
    assert not fetch_sources(text)[("t", 1)].from_follower


def test_watcher_keeps_the_latest_and_ignores_garbage() -> None:
    watcher = FetchSourceWatcher()
    watcher(stats({"0": {"leader": 1, "broker": 1, "fetch_state": "offset-query"}}))
    watcher(stats({"0": {"leader": 1, "broker": 2, "fetch_state": "active"}}))
    watcher("not json")
    assert watcher.sources() == {("t", 0): FetchSource("t", 0, 1, 2, "active")}
