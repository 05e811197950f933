"""Who holds a transaction open: Kafka's own kafka-transactions tool, parsed.

librdkafka has no admin API for listing or describing transactions and
producers (KIP-664 is not in it), so this runs the tool from our jars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.errors import StudioError
from core.settings import Settings
from core.stack.tools import run_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinningProducer:
    """The producer whose open transaction starts at a partition's LSO."""

    producer_id: int
    producer_epoch: int
    start_offset: int
    last_timestamp_ms: int | None
    transactional_id: str | None = None
    coordinator: int | None = None
    state: str | None = None
    started_ms: int | None = None
    timeout_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of the tool's tab-separated table, keyed by its header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [cell.strip() for cell in lines[0].split("\t")]
    rows = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("\t")]
        rows.append({h: c for h, c in zip(header, cells, strict=False) if h})
    return rows


def _int(value: str | None) -> int | None:
    try:
        return None if value in (None, "", "None") else int(str(value))
    except ValueError:
        return None


def find_pinning_producer(
    settings: Settings,
    bootstrap: str,
    topic: str,
    partition: int,
    last_stable_offset: int,
) -> PinningProducer | None:
    """The producer whose open transaction pins ``last_stable_offset``, if any.

    Three runs of the tool (a JVM each, a few seconds in all): the
    partition's producers, then the transactions, then the one found.
    Works against clusters the tool reaches with plain bootstrap servers.
    """
    # TODO: pass --command-config for SASL/SSL clusters (connection profiles
    # carry no Java-style client properties yet)
    base = ("--bootstrap-server", bootstrap)
    producers = parse_table(
        run_tool(
            settings,
            "kafka-transactions",
            *base,
            "describe-producers",
            "--topic",
            topic,
            "--partition",
            str(partition),
        )
    )
    found = [
        p
        for p in producers
        if _int(p.get("CurrentTransactionStartOffset")) == last_stable_offset
    ]
    if not found:
        return None
    row = found[0]
    pinning = PinningProducer(
        producer_id=int(row["ProducerId"]),
        producer_epoch=int(row["ProducerEpoch"]),
        start_offset=last_stable_offset,
        last_timestamp_ms=_int(row.get("LastTimestamp")),
    )

    transactions = parse_table(run_tool(settings, "kafka-transactions", *base, "list"))
    match = [
        t for t in transactions if _int(t.get("ProducerId")) == pinning.producer_id
    ]
    if not match:
        return pinning
    txn_id = match[0]["TransactionalId"]
    try:
        described = parse_table(
            run_tool(
                settings,
                "kafka-transactions",
                *base,
                "describe",
                "--transactional-id",
                txn_id,
            )
        )
    except StudioError as exc:
        log.info("cannot describe transaction %s: %s", txn_id, exc)
        described = []
    detail = described[0] if described else {}
    return PinningProducer(
        producer_id=pinning.producer_id,
        producer_epoch=pinning.producer_epoch,
        start_offset=last_stable_offset,
        last_timestamp_ms=pinning.last_timestamp_ms,
        transactional_id=txn_id,
        coordinator=_int(match[0].get("Coordinator")),
        state=detail.get("TransactionState") or match[0].get("TransactionState"),
        started_ms=_int(detail.get("CurrentTransactionStartTimeMs")),
        timeout_ms=_int(detail.get("TransactionTimeoutMs")),
    )
