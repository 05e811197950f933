"""Pure logic of the cluster snapshot: flags, roles, leader balance, diffs."""

from __future__ import annotations

from core.kafka.cluster import (
    Broker,
    ClusterSnapshot,
    PartitionState,
    TopicConfig,
    TopicState,
)
from core.kafka.timeline import Timeline, diff, readable_batch

BROKERS = tuple(Broker(i, "127.0.0.1", 9091 + i, f"rack-{i}") for i in (1, 2, 3))


def part(
    partition: int,
    leader: int | None,
    replicas: tuple[int, ...],
    isr: tuple[int, ...],
    live: tuple[int, ...] = (1, 2, 3),
    min_isr: int = 2,
) -> PartitionState:
    return PartitionState(
        "t",
        partition,
        leader,
        replicas,
        isr,
        offline_replicas=tuple(r for r in replicas if r not in live),
        min_insync_replicas=min_isr,
    )


def snap(
    partitions: list[PartitionState],
    brokers: tuple[Broker, ...] = BROKERS,
    at: float = 1.0,
    extra: dict[str, TopicState] | None = None,
) -> ClusterSnapshot:
    topics = {"t": TopicState("t", False, tuple(partitions), TopicConfig(2))}
    return ClusterSnapshot("cid", 1, brokers, topics | (extra or {}), at)


def test_flags_and_roles() -> None:
    healthy = part(0, 1, (1, 2, 3), (1, 2, 3))
    assert healthy.flags() == []
    assert [healthy.role_of(b) for b in (1, 2, 3, 4)] == [
        "leader",
        "in-sync",
        "in-sync",
        "none",
    ]

    after_kill = part(0, 2, (1, 2, 3), (2, 3), live=(2, 3))
    assert after_kill.flags() == ["under-replicated", "leader-not-preferred"]
    assert after_kill.offline_replicas == (1,)
    assert [after_kill.role_of(b) for b in (1, 2, 3)] == [
        "offline",
        "leader",
        "in-sync",
    ]

    lagging = part(0, 1, (1, 2, 3), (1,))
    assert lagging.flags() == ["under-replicated", "under-min-isr"]
    assert lagging.role_of(3) == "out-of-sync"

    offline = part(0, None, (1,), (1,), live=(2, 3), min_isr=1)
    assert offline.flags() == ["offline"]
    assert offline.role_of(1) == "offline"


def test_leader_counts_and_skew() -> None:
    balanced = snap([part(i, i + 1, (i + 1,), (i + 1,)) for i in range(3)])
    assert balanced.leader_counts() == {1: 1, 2: 1, 3: 1}
    assert balanced.leader_skew() == 0.0

    skewed = snap([part(i, 2, (2,), (2,)) for i in range(3)])
    assert skewed.leader_counts() == {1: 0, 2: 3, 3: 0}
    assert skewed.leader_skew() == 2.0  # 3 led where 1 is the fair share
    assert skewed.summary()["partitions"] == 3


def test_diff_of_a_broker_kill_and_return() -> None:
    before = snap([part(0, 1, (1, 2, 3), (1, 2, 3)), part(1, 2, (2, 3, 1), (2, 3, 1))])
    killed = snap(
        [
            part(0, 2, (1, 2, 3), (2, 3), live=(2, 3)),
            part(1, 2, (2, 3, 1), (2, 3), live=(2, 3)),
        ],
        brokers=BROKERS[1:],
        at=2.0,
    )
    events = diff(before, killed)
    assert [e.message for e in events] == [
        "broker 1 left",
        "t-0: leader moved from 1 to 2",
        "t-0: ISR shrank to {2,3}",
        "t-1: ISR shrank to {2,3}",
    ]
    assert events[1].kind == "leader-moved"
    assert (events[1].before, events[1].after) == (1, 2)
    assert all(e.at == 2.0 for e in events)

    back = snap(
        [part(0, 2, (1, 2, 3), (2, 3, 1)), part(1, 2, (2, 3, 1), (2, 3, 1))], at=3.0
    )
    assert [e.message for e in diff(killed, back)] == [
        "broker 1 joined",
        "t-0: ISR grew to {1,2,3}",
        "t-1: ISR grew to {1,2,3}",
    ]
    assert diff(None, back) == []
    assert diff(back, back) == []


def test_diff_offline_topics_and_timeline() -> None:
    one = snap([part(0, 3, (3,), (3,))])
    gone = snap([part(0, None, (3,), (3,), live=(1, 2))], brokers=BROKERS[:2], at=2.0)
    other = TopicState("u", False, (), TopicConfig())
    created = snap([part(0, 3, (3,), (3,))], at=3.0, extra={"u": other})
    timeline = Timeline(capacity=3)
    timeline.extend(diff(one, gone))
    timeline.extend(diff(gone, created))
    messages = [e.message for e in timeline.events()]
    assert messages == [
        "broker 3 joined",
        "topic u created with 0 partitions",
        "t-0: back online, leader 3",
    ]
    assert [e.kind for e in diff(one, gone)] == ["broker-left", "partition-offline"]
    assert [e.message for e in timeline.events(since=2.5)] == messages
    assert timeline.events(since=3.0) == []
    assert len(timeline) == 3


def _big_kill(topics: int, partitions: int) -> list[str]:
    """A broker kill on a cluster of ``topics`` x ``partitions``: the events."""

    def cluster(leader: int, isr: tuple[int, ...], brokers: tuple[Broker, ...]):
        states = {
            f"topic-{t:03d}": TopicState(
                f"topic-{t:03d}",
                False,
                tuple(
                    PartitionState(f"topic-{t:03d}", p, leader, (1, 2, 3), isr)
                    for p in range(partitions)
                ),
                TopicConfig(2),
            )
            for t in range(topics)
        }
        return ClusterSnapshot("cid", 1, brokers, states, 1.0)

    before = cluster(1, (1, 2, 3), BROKERS)
    after = cluster(2, (2, 3), BROKERS[1:])
    return diff(before, after)


def test_a_big_batch_keeps_the_broker_event_and_summarises_partitions() -> None:
    events = _big_kill(topics=40, partitions=10)  # 400 partitions changed
    assert len(events) == 1 + 2 * 400

    lines = readable_batch(events, focus="", detail_limit=100)
    # Oldest first: summaries, then the broker event last (on top of the view).
    assert lines == [
        "leader moved: 400 partitions of 40 topics "
        "(filter the topic list to list them here)",
        "ISR shrank: 400 partitions of 40 topics "
        "(filter the topic list to list them here)",
        "broker 1 left",
    ]

    # The topic the person filtered on is still listed partition by partition.
    focused = readable_batch(events, focus="TOPIC-007", detail_limit=100)
    detail = [line for line in focused if line.startswith("topic-007-")]
    assert len(detail) == 20
    assert "topic-007-3: leader moved from 1 to 2" in detail
    assert "topic-007-3: ISR shrank to {2,3}" in detail
    assert focused[-1] == "broker 1 left"


def test_a_small_batch_is_listed_event_by_event() -> None:
    events = _big_kill(topics=2, partitions=3)
    lines = readable_batch(events, focus="", detail_limit=100)
    assert len(lines) == 1 + 2 * 6
    assert lines[0] == "topic-000-0: leader moved from 1 to 2"
    assert lines[-1] == "broker 1 left"


def test_counts_read_as_english() -> None:
    from core.kafka.cluster import counted

    assert [counted(n, "topic") for n in (0, 1, 2)] == [
        "0 topics",
        "1 topic",
        "2 topics",
    ]
