"""Fixtures for consumer, isolation and lag tests: topics, producers, readers."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from core.kafka.consumers import ConsumerGroup
from core.kafka.member import MemberSpec
from core.settings import Settings


@pytest.fixture(scope="session")
def client(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap}


@pytest.fixture(scope="session")
def admin(client: dict[str, Any]) -> AdminClient:
    return AdminClient(client)


@pytest.fixture
def new_topic(admin: AdminClient) -> Callable[..., str]:
    """Create a topic with a unique name; returns the name."""

    def create(partitions: int = 3, prefix: str = "t", **config: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        topic = NewTopic(name, partitions, 3, config=config)
        admin.create_topics([topic])[name].result(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = admin.list_topics(name, timeout=10).topics[name]
            if (
                meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return name
            time.sleep(0.1)
        raise AssertionError(f"topic {name} has no leaders after 30 s")

    return create


@pytest.fixture
def groups(
    client: dict[str, Any], stack_settings: Settings, tmp_path: Any
) -> Iterator[Callable[..., ConsumerGroup]]:
    """Start consumer groups; every member is stopped when the test ends."""
    started: list[ConsumerGroup] = []

    def make(topics: list[str], **spec: Any) -> ConsumerGroup:
        template = MemberSpec(
            client=client,
            group_id=f"g-{uuid.uuid4().hex[:10]}",
            topics=topics,
            settings=dataclasses.asdict(stack_settings),
            **spec,
        )
        group = ConsumerGroup(template, log_dir=tmp_path / "members")
        started.append(group)
        return group

    yield make
    for group in started:
        group.close()
