"""The consumer commands: txn, consume and lag, as a script would use them."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition

from core.cli import main
from core.settings import Settings
from tests.integration.consumers.helpers import (
    high_watermarks,
    hold_open_transaction,
    produce,
    read_all,
    wait_for_marker,
    wait_until_stable,
)

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


def test_consume_group_count_commits_exactly_what_it_printed(
    bootstrap: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 20 transactions of one record per partition, as the relay writes: the
    # markers prefetched past what is printed must not move the offsets.
    topic = new_topic(3)
    for n in range(20):
        produce(client, topic, [f"v{n}-{p}" for p in range(3)], 3, transaction="commit")
    wait_for_marker(client, topic, 40, 3)

    # Whether librdkafka takes the prefetched markers depends on timing while
    # the consumer closes (about one run in two): four groups make it sure.
    for _ in range(4):
        group = f"g-{uuid.uuid4().hex[:8]}"
        argv = ["consume", topic, "--group", group, "--from-beginning", "--count", "10"]
        assert main([*argv, "--bootstrap", bootstrap, "--json"]) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(records) == 10
        printed: dict[int, list[int]] = {p: [] for p in range(3)}
        for record in records:
            printed[record["partition"]].append(record["offset"])
        # Records at even offsets, each followed by its transaction's marker.
        assert all(o == list(range(0, 2 * len(o), 2)) for o in printed.values())

        reader = Consumer({**client, "group.id": group})
        try:
            answer = reader.committed([TopicPartition(topic, p) for p in range(3)], 10)
        finally:
            reader.close()
        committed = {tp.partition: tp.offset for tp in answer}
        # One past the last record printed from each partition; none elsewhere.
        expected = {p: o[-1] + 1 if o else OFFSET_INVALID for p, o in printed.items()}
        assert committed == expected


@pytest.mark.parametrize(
    ("answers", "state", "reason"),
    [
        ("", "aborted", "no answer (end of input)"),
        ("maybe\n\nc\n", "committed", None),
        ("yes\nno\nlater\n", "aborted", "no answer of commit or abort after 3 tries"),
    ],
    ids=["end-of-input", "asked-again", "three-wrong-answers"],
)
def test_txn_ask_takes_only_commit_or_abort(
    answers: str,
    state: str,
    reason: str | None,
    bootstrap: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = new_topic(1)
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    argv = ["txn", topic, "--count", "2", "--then", "ask"]
    assert main([*argv, "--bootstrap", bootstrap, "--json"]) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [(line["state"], line.get("reason")) for line in lines] == [
        ("open", None),
        (state, reason),
    ]
    asked = 1 if answers == "" else 3
    assert out.err.count("[c/a]") + out.err.count("c (commit)") == asked

    # The transaction is over either way: its marker is written (HW 3), and a
    # read_committed reader gets the records only if it was committed.
    wait_for_marker(client, topic, 3)
    wait_until_stable(client, topic, 1)
    values = [m.value() for m in read_all(client, topic, 1, "read_committed")]
    assert values == ([b"txn-1", b"txn-2"] if state == "committed" else [])


def test_txn_refuses_a_topic_that_does_not_exist(
    bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"nosuchtopic-{uuid.uuid4().hex[:8]}"
    argv = ["txn", topic, "--count", "1", "--then", "commit", "--bootstrap", bootstrap]
    assert main([*argv, "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "error": f"Topic {topic} does not exist",
        "hint": f"check the name, or create it: cdc-studio topic create {topic}",
    }


def test_txn_refuses_a_partition_the_topic_lacks(
    new_topic: Callable[..., str],
    bootstrap: str,
    client: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = new_topic(3)
    argv = ["txn", topic, "--count", "2", "--then", "commit", "--bootstrap", bootstrap]
    refused = f"Topic {topic} has no partition 99: it has 3 (0-2)"
    hint = "choose a partition in 0-2, or none to let the partitioner choose"
    assert main([*argv, "--partition", "99", "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {"error": refused, "hint": hint}
    assert main([*argv, "--partition", "-1"]) == 2
    assert capsys.readouterr().err == (
        f"error: Topic {topic} has no partition -1: it has 3 (0-2)\n  -> {hint}\n"
    )
    # Refused before a transaction began: no record, no marker.
    assert high_watermarks(client, topic, 3) == [0, 0, 0]

    assert main([*argv, "--partition", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "transaction committed"
    wait_until_stable(client, topic, 3)
    records = read_all(client, topic, 3, "read_committed")
    assert [(m.partition(), m.value()) for m in records] == [
        (2, b"txn-1"),
        (2, b"txn-2"),
    ]


def test_lag_names_the_producer_of_an_open_transaction(
    bootstrap: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    stack_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = new_topic(1)
    txn_id = f"pinning-cli-{uuid.uuid4().hex[:8]}"
    holder = hold_open_transaction(client, topic, txn_id, after=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    committer = Consumer({**client, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    committer.close()
    argv = [
        *("--data-dir", stack_settings.data_dir, "lag", "--bootstrap", bootstrap),
        *("--group", group, "--isolation", "read_committed"),
    ]
    try:
        assert main([*argv, "--producers", "--json"]) == 0
        (part,) = json.loads(capsys.readouterr().out)["groups"][0]["partitions"]
        txn = part["open_transaction"]
        assert (part["last_stable_offset"], part["high_watermark"]) == (0, 3)
        assert (txn["offsets_past"], txn["producer"]["start_offset"]) == (3, 0)
        assert txn["producer"]["transactional_id"] == txn_id
        assert txn["producer"]["state"] == "Ongoing"

        # Text for people: the note names it; without --producers it says so.
        assert main([*argv, "--producers"]) == 0
        assert f"open transaction at 0 (HW 3 past, {txn_id})" in capsys.readouterr().out
        assert main(argv) == 0
        assert "producer not found yet" in capsys.readouterr().out
    finally:
        holder.abort_transaction(30)


@pytest.mark.parametrize("with_group", [False, True])
def test_consume_refuses_a_topic_that_does_not_exist(
    bootstrap: str, capsys: pytest.CaptureFixture[str], with_group: bool
) -> None:
    topic = f"nosuchtopic-{uuid.uuid4().hex[:8]}"
    group = ["--group", f"g-{uuid.uuid4().hex[:8]}"] if with_group else []
    argv = ["consume", topic, *group, "--count", "1", "--bootstrap", bootstrap]
    assert main([*argv, "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": f"Topic {topic} does not exist",
        "hint": f"check the name, or create it: cdc-studio topic create {topic}",
    }
