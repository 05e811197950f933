"""Every demo scenario, by number and by name."""

from __future__ import annotations

from core.demos.scenario import Scenario
from core.demos.scenarios.broker_failure import BrokerFailure
from core.demos.scenarios.capture import RelayCrash, WebhookVersusOutbox
from core.demos.scenarios.consumers import (
    AtLeastOnce,
    AtMostOnce,
    ExactlyOnceH2,
    ExactlyOnceKafka,
)
from core.demos.scenarios.idempotence import IdempotentProducer
from core.demos.scenarios.transactions import TransactionCrash, ZombieFencing
from core.errors import UnknownScenarioError


def scenarios() -> list[Scenario]:
    """All scenarios, in their number order."""
    found: list[Scenario] = [
        AtMostOnce(),
        AtLeastOnce(),
        ExactlyOnceKafka(),
        ExactlyOnceH2(),
        IdempotentProducer(),
        TransactionCrash(),
        ZombieFencing(),
        BrokerFailure(),
        RelayCrash(),
        WebhookVersusOutbox(),
    ]
    return sorted(found, key=lambda s: s.number)


def find(name: str) -> Scenario:
    """The scenario called ``name`` (or numbered ``name``)."""
    for scenario in scenarios():
        if name in (scenario.name, str(scenario.number)):
            return scenario
    known = ", ".join(f"{s.number} {s.name}" for s in scenarios())
    raise UnknownScenarioError(
        f"There is no demo scenario {name!r}", hint=f"known: {known}"
    )
