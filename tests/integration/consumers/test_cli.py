"""The consumer commands: txn, consume and lag, as a script would use them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from core.cli import main
from tests.integration.consumers.helpers import wait_for_marker

pytestmark = pytest.mark.integration


def test_txn_consume_and_lag_commands(
    bootstrap: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = new_topic(1)
    common = ["--bootstrap", bootstrap, "--json"]
    assert main(["txn", topic, "--count", "3", "--then", "commit", *common]) == 0
    states = [
        json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()
    ]
    assert states == ["open", "committed"]
    wait_for_marker(client, topic, 4)

    group = f"g-{uuid.uuid4().hex[:8]}"
    assert (
        main(
            [
                "consume",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--count",
                "3",
                "--isolation",
                "read_committed",
                *common,
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["offset"], r["value"]) for r in records] == [
        (0, "txn-1"),
        (1, "txn-2"),
        (2, "txn-3"),
    ]

    assert (
        main(["lag", "--group", group, "--isolation", "read_committed", *common]) == 0
    )
    sample = json.loads(capsys.readouterr().out)
    (part,) = sample["groups"][0]["partitions"]
    assert (part["high_watermark"], part["lag"], part["exact"]) == (4, 0, True)

    # By topic alone: exactly the groups with an offset in it, not a group
    # with offsets elsewhere only.
    other = Consumer({**client, "group.id": f"other-{uuid.uuid4().hex[:8]}"})
    other.commit(offsets=[TopicPartition(new_topic(1), 0, 0)], asynchronous=False)
    other.close()
    assert main(["lag", "--topic", topic, *common]) == 0
    sample = json.loads(capsys.readouterr().out)
    assert [g["group"] for g in sample["groups"]] == [group]
    assert [p["topic"] for p in sample["groups"][0]["partitions"]] == [topic]
