"""Fixtures of the cluster view tests: an inspector and unique topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from core.errors import KafkaConnectionError, PortBusyError
from core.kafka.inspector import ClusterInspector
from core.settings import Settings
from core.stack import Stack
from core.stack.tools import describe_topic

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except KafkaConnectionError:  # a request that went to a dead broker
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def unique_topic(prefix: str = "test.cluster") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def layout(inspector: ClusterInspector, topic: str) -> dict[int, dict[str, object]]:
    """Leader, replicas and ISR per partition, in describe_topic's shape."""
    snapshot = inspector.snapshot(offsets=False, configs=False)
    return {
        p.partition: {
            "leader": p.leader,
            "replicas": list(p.replicas),
            "isr": list(p.isr),
        }
        for p in snapshot.topics[topic].partitions
    }


def full_isr(settings: Settings, bootstrap: str, topic: str) -> bool:
    described = describe_topic(settings, bootstrap, topic)
    return all(
        sorted(p["isr"]) == sorted(p["replicas"])  # type: ignore[type-var]
        for p in described.values()
    )


def restart_broker(stack: Stack, broker_id: int, bootstrap: str, topic: str) -> None:
    """Start a killed broker again and wait until every ISR of ``topic`` is full.

    Our test ports lie in Linux's ephemeral range: a client reconnecting to
    the dead broker can, rarely, connect to itself on the broker's port and
    hold it in TIME_WAIT for a minute. Starting is retried until it frees.
    """

    def started() -> bool:
        try:
            stack.start_broker(broker_id)
        except PortBusyError:
            return False
        return True

    wait_for(started, 120, f"broker {broker_id} to start again")
    wait_for(
        lambda: full_isr(stack.settings, bootstrap, topic),
        120,
        f"broker {broker_id} back in every ISR of {topic}",
    )


@pytest.fixture()
def inspector(stack: Stack, bootstrap: str) -> Iterator[ClusterInspector]:
    inspector = ClusterInspector({"bootstrap.servers": bootstrap}, timeout=5)
    yield inspector
    inspector.close()
