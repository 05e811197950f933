"""Committed offsets while a group's coordinator moves: asked again, not failed."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from core.errors import LagError
from core.kafka.offset_probe import CommittedReader


class _Answers:
    """Stands in for the group's Consumer: raises, then answers."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def committed(self, asked: list[TopicPartition], timeout: float) -> Any:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, KafkaError):
            raise KafkaException(answer)
        return answer


def _reader(consumer: _Answers, timeout: float = 5.0) -> CommittedReader:
    reader = CommittedReader({"bootstrap.servers": "127.0.0.1:1"}, timeout=timeout)
    reader._consumers["g"] = consumer  # type: ignore[assignment]
    return reader


def test_not_coordinator_is_asked_again() -> None:
    consumer = _Answers(
        KafkaError(KafkaError.NOT_COORDINATOR),
        KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
        [TopicPartition("t", 0, 7), TopicPartition("t", 1, -1001)],
    )

    offsets = _reader(consumer).committed("g", [("t", 0), ("t", 1)])

    assert offsets == {("t", 0): 7, ("t", 1): None}
    assert consumer.calls == 3


def test_a_lasting_error_is_reported_with_the_group() -> None:
    consumer = _Answers(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))

    with pytest.raises(LagError) as info:
        _reader(consumer).committed("g", [("t", 0)])

    assert "Cannot read the committed offsets of group g" in str(info.value)
    assert consumer.calls == 1
