"""Each delivery semantics, without crashes, outputs exactly its input."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from core.h2.connection import H2Connection
from core.kafka.consumers import ConsumerGroup
from core.kafka.lag import GroupTarget
from core.settings import Settings
from tests.integration.consumers.helpers import (
    high_watermarks,
    produce,
    read_all,
    wait_until_stable,
)

pytestmark = pytest.mark.integration

PLAIN = [f"p{i}" for i in range(30)]
COMMITTED = [f"c{i}" for i in range(6)]
ABORTED = [f"a{i}" for i in range(6)]


def _input(client: dict[str, Any], topic: str) -> None:
    """30 plain records, 6 of a committed and 6 of an aborted transaction."""
    produce(client, topic, PLAIN[:15])
    produce(client, topic, COMMITTED, transaction="commit")
    produce(client, topic, ABORTED, transaction="abort")
    produce(client, topic, PLAIN[15:])


def _output_values(
    semantics: str,
    group: ConsumerGroup,
    client: dict[str, Any],
    out: Path,
    settings: Settings,
    partitions: int = 3,
) -> list[str]:
    if semantics in ("at-most-once", "at-least-once"):
        return [json.loads(line)["value"] for line in out.read_text().splitlines()]
    if semantics == "exactly-once-kafka":
        output = str(group.template.output_topic)
        wait_until_stable(client, output, partitions)
        records = read_all(client, output, partitions, "read_committed")
        return [m.value().decode() for m in records]
    return sink_values(settings, group.group_id)


def sink_values(settings: Settings, group_id: str) -> list[str]:
    """The values an exactly-once-h2 group wrote to the sink table."""
    with H2Connection(settings) as conn:
        rows = conn.query(
            "SELECT RECORD_VALUE FROM CONSUMER_SINK WHERE GROUP_ID = ?", [group_id]
        )
    return [bytes(r[0]).decode() for r in rows]


@pytest.mark.parametrize(
    "semantics",
    ["at-most-once", "at-least-once", "exactly-once-kafka", "exactly-once-h2"],
)
def test_output_equals_input(
    semantics: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    tmp_path: Path,
    stack_settings: Settings,
) -> None:
    topic = new_topic(3)
    output = new_topic(3, prefix="out")
    _input(client, topic)
    out = tmp_path / "out.jsonl"
    group = groups(
        [topic],
        semantics=semantics,
        output_path=str(out),
        output_topic=output,
        batch_size=7,
    )

    group.start(1)
    expected = PLAIN + COMMITTED
    group.wait_for(lambda g: g.member("m1").processed == len(expected), 90)
    group.stop()

    values = _output_values(semantics, group, client, out, stack_settings)
    assert Counter(values) == Counter(expected)
    # after each partition's last record (a marker may follow: not a record)
    last: dict[tuple[str, int], int] = {}
    for msg in read_all(client, topic, 3, "read_committed"):
        last[(topic, msg.partition())] = msg.offset() + 1
    assert group.member("m1").committed == last


def test_stopped_member_hands_partitions_over(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    tmp_path: Path,
) -> None:
    topic = new_topic(4)
    out = tmp_path / "out.jsonl"
    group = groups([topic], semantics="at-least-once", output_path=str(out))

    group.start(2)
    group.wait_for(lambda g: sorted(len(p) for p in g.assignment().values()) == [2, 2])
    produce(client, topic, [f"x{i}" for i in range(20)], partitions=4)
    group.wait_for(lambda g: sum(m.processed for m in g.members()) == 20)

    group.stop_member("m2")
    group.wait_for(lambda g: g.assignment() == {"m1": [(topic, p) for p in range(4)]})
    produce(client, topic, [f"y{i}" for i in range(20)], partitions=4)
    group.wait_for(lambda g: g.member("m1").processed + g.member("m2").processed == 40)
    group.stop()

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(line["value"] for line in lines) == Counter(
        [f"x{i}" for i in range(20)] + [f"y{i}" for i in range(20)]
    )
    assert {line["member"] for line in lines if line["value"][0] == "y"} == {"m1"}
    timeline = group.timeline()
    m2_stopped = next(
        i
        for i, e in enumerate(timeline)
        if e.member == "m2" and e.kind == "member-stopped"
    )
    after = [
        e.detail["assignment"] for e in timeline[m2_stopped:] if e.kind == "rebalance"
    ]
    assert {"m1": [(topic, p) for p in range(4)]} in after


def test_member_joining_mid_transaction_leaves_no_duplicates(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
) -> None:
    topic = new_topic(4)
    output = new_topic(4, prefix="out")
    values = [f"r{i}" for i in range(240)]
    produce(client, topic, values[:160], partitions=4)
    group = groups(
        [topic],
        semantics="exactly-once-kafka",
        output_topic=output,
        batch_size=10,
        delay_ms=20,
    )

    def done(g: ConsumerGroup) -> bool:
        reached = {
            tp: max(m.committed.get(tp, 0) for m in g.members())
            for tp in [(topic, p) for p in range(4)]
        }
        return reached == {(topic, p): ends[p] for p in range(4)}

    group.start(1)
    group.wait_for(lambda g: g.member("m1").processed >= 30)
    group.add_member()  # joins while m1 is in the middle of its transactions
    group.wait_for(lambda g: sorted(len(p) for p in g.assignment().values()) == [2, 2])
    produce(client, topic, values[160:], partitions=4)
    ends = high_watermarks(client, topic, 4)
    group.wait_for(done, 120)
    group.stop()

    wait_until_stable(client, output, 4)
    out = [m.value().decode() for m in read_all(client, output, 4, "read_committed")]
    assert Counter(out) == Counter(values)
    assert group.member("m2").processed > 0


def test_crash_after_processing_repeats_exactly_the_uncommitted_batch(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    tmp_path: Path,
) -> None:
    topic = new_topic(1)
    values = [f"v{i}" for i in range(40)]
    produce(client, topic, values, partitions=1)
    out = tmp_path / "out.jsonl"
    group = groups(
        [topic],
        semantics="at-least-once",
        output_path=str(out),
        batch_size=10,
        crash_point="after-process-before-commit",
        crash_after=20,
    )

    group.start(1)
    group.wait_for(lambda g: g.member("m1").exit_code is not None)
    crashed = group.member("m1")
    assert (crashed.exit_code, crashed.crashed_at) == (
        -9,
        "after-process-before-commit",
    )
    # it crashed once 20 records were processed, before committing the last batch
    written = len(out.read_text().splitlines())
    committed = crashed.committed[(topic, 0)]
    assert written >= 20 and 10 <= committed < written

    group.restart_member("m1", crash_point=None)
    group.wait_for(lambda g: g.member("m1").committed.get((topic, 0)) == 40)
    group.stop()
    counts = Counter(json.loads(line)["value"] for line in out.read_text().splitlines())
    assert set(counts) == set(values)
    assert sorted(v for v, n in counts.items() if n == 2) == sorted(
        values[committed:written]
    )
    assert max(counts.values()) == 2


def test_crash_before_h2_commit_leaves_no_duplicates(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    stack_settings: Settings,
) -> None:
    topic = new_topic(1)
    values = [f"h{i}" for i in range(30)]
    produce(client, topic, values, partitions=1)
    group = groups(
        [topic],
        semantics="exactly-once-h2",
        batch_size=10,
        crash_point="after-write-before-db-commit",
        crash_after=10,
    )

    group.start(1)
    group.wait_for(lambda g: g.member("m1").exit_code == -9, 90)
    group.restart_member("m1", crash_point=None)
    group.wait_for(lambda g: g.member("m1").committed.get((topic, 0)) == 30, 90)
    group.stop()
    assert Counter(sink_values(stack_settings, group.group_id)) == Counter(values)


def test_isolation_switch_restarts_members_and_shows_on_the_timeline(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    tmp_path: Path,
) -> None:
    topic = new_topic(1)
    produce(client, topic, ["a0", "a1"], partitions=1, transaction="abort")
    out = tmp_path / "out.jsonl"
    group = groups(
        [topic],
        semantics="at-least-once",
        output_path=str(out),
        isolation="read_committed",
    )
    group.start(1)
    group.wait_for(lambda g: g.assigned_count() == 1)

    group.set_isolation("read_uncommitted")
    group.wait_for(lambda g: g.member("m1").alive and g.assigned_count() == 1)
    group.wait_for(lambda g: g.member("m1").processed == 2)
    group.stop()
    assert group.member("m1").isolation == "read_uncommitted"
    assert group.lag_target() == GroupTarget(
        group.group_id, (topic,), "read_uncommitted", "earliest"
    )
    switch = [e for e in group.timeline() if e.kind == "isolation-changed"]
    assert [(e.detail["before"], e.detail["after"]) for e in switch] == [
        ("read_committed", "read_uncommitted")
    ]
    # read_committed skipped the aborted records; read_uncommitted got them
    values = [json.loads(line)["value"] for line in out.read_text().splitlines()]
    assert values == ["a0", "a1"]


def test_fenced_transactional_member_stops(
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
) -> None:
    topic = new_topic(1)
    output = new_topic(1, prefix="out")
    produce(client, topic, [f"f{i}" for i in range(200)], partitions=1)
    txn_id = f"fence-{uuid.uuid4().hex[:8]}"
    group = groups(
        [topic],
        semantics="exactly-once-kafka",
        output_topic=output,
        transactional_id=txn_id,
        batch_size=5,
        delay_ms=20,
    )
    group.start(1)
    group.wait_for(lambda g: g.member("m1").processed >= 10)

    usurper = Producer({**client, "transactional.id": txn_id})
    usurper.init_transactions(30)  # a newer epoch: the member's is fenced
    group.wait_for(lambda g: g.member("m1").exit_code is not None)
    assert group.member("m1").exit_code == 3
    fatal = [e for e in group.timeline() if e.kind == "fatal"]
    # one fatal event; librdkafka words it by where it noticed ("fenced",
    # "old epoch", "fatal error"), so the words are not checked
    assert len(fatal) == 1


@pytest.mark.parametrize(
    "semantics", ["at-most-once", "at-least-once", "exactly-once-kafka"]
)
def test_processing_failures(
    semantics: str,
    client: dict[str, Any],
    new_topic: Callable[..., str],
    groups: Callable[..., ConsumerGroup],
    tmp_path: Path,
    stack_settings: Settings,
) -> None:
    """at-most-once loses exactly the failed records; the others retry them
    (at-least-once rewinds, exactly-once aborts and rewinds) and lose none."""
    topic = new_topic(2)
    output = new_topic(2, prefix="out")
    values = [f"x{i}" for i in range(60)]
    produce(client, topic, values, partitions=2)
    ends = high_watermarks(client, topic, 2)
    out = tmp_path / "out.jsonl"
    group = groups(
        [topic],
        semantics=semantics,
        output_path=str(out),
        output_topic=output,
        batch_size=6,
        failure_rate=0.2,
        seed=7,
    )
    group.start(1)
    group.wait_for(
        lambda g: g.member("m1").committed == {(topic, p): ends[p] for p in range(2)}
    )
    group.stop()

    failed = [e for e in group.timeline() if e.kind == "failed"]
    assert failed, "a 20% failure rate over 60 records failed none"
    got = Counter(_output_values(semantics, group, client, out, stack_settings, 2))
    if semantics == "at-most-once":
        lost = {e.detail["offset"] for e in failed}
        assert sum(got.values()) == 60 - len(failed) and len(lost) <= len(failed)
        assert max(got.values()) == 1
    else:
        assert got == Counter(values)
