"""Closing a relay whose producer failed fatally does not raise again."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from core.cdc.relay import Relay


class _FencedProducer:
    def flush(self, timeout: float) -> int:
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))


def test_close_after_a_fatal_error_is_quiet() -> None:
    relay = Relay.__new__(Relay)  # only the parts close() touches
    relay._producer = _FencedProducer()
    relay._conn = None

    relay.close()

    assert relay._producer is None


def test_relay_status_says_when_a_relay_is_gone() -> None:
    from core.cdc.cli import shown_state

    assert shown_state({"state": "publishing", "alive": True}) == "publishing"
    assert shown_state({"state": "stopped", "alive": False}) == "stopped"
    assert shown_state({"state": "failed", "alive": False}) == "failed"
    assert (
        shown_state({"state": "publishing", "alive": False})
        == "gone (last said: publishing)"
    )
    # As read_statuses hands it over: "dead", with the state it last wrote.
    dead = {"state": "dead", "last_state": "idle", "alive": False}
    assert shown_state(dead) == "gone (last said: idle)"


def test_a_new_relay_state_is_written_at_once() -> None:
    from core.cdc.cli import status_due

    assert status_due("publishing", "idle", 0.01)  # was skipped before
    assert not status_due("publishing", "publishing", 0.2)
    assert status_due("publishing", "publishing", 0.6)
