"""A topic action that times out while brokers answer blames the controller."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from core.errors import ClusterActionError, KafkaConnectionError
from core.kafka.inspector import ClusterInspector


class _Admin:
    """Stands in for AdminClient: creates never confirm; metadata per ``answers``."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers

    def create_topics(self, topics: list[Any], **_: Any) -> dict[str, Future[None]]:
        return {t.topic: Future() for t in topics}  # never completed

    def list_topics(self, *_: Any, **__: Any) -> object:
        if not self.answers:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))
        return object()

    def poll(self, _: float) -> int:
        return 0


def _inspector(answers: bool) -> ClusterInspector:
    # A closed loopback port: the real client is replaced before any call.
    inspector = ClusterInspector({"bootstrap.servers": "127.0.0.1:1"}, timeout=0.1)
    inspector._admin = _Admin(answers)  # type: ignore[assignment]
    return inspector


def test_brokers_answer_but_the_create_is_not_confirmed() -> None:
    with pytest.raises(ClusterActionError) as refused:
        _inspector(answers=True).create_topic("t", 1, 1)
    assert refused.value.args[0] == (
        "Kafka did not confirm that it could create topic t in time, though its "
        "brokers answer: the controller may be down (`cdc-studio stack status`)"
    )
    assert "may still take effect" in (refused.value.hint or "")


def test_no_broker_answers_is_still_a_connection_error() -> None:
    with pytest.raises(KafkaConnectionError):
        _inspector(answers=False).create_topic("t", 1, 1)
