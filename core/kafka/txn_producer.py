"""A transactional producer a trainer drives by hand: begin, send, commit or abort."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from confluent_kafka import KafkaException, Producer

from core.errors import ConsumerError
from core.kafka import connection

log = logging.getLogger(__name__)
_TIMEOUT_S = 30.0


class TrainerProducer:
    """Writes records in a transaction that stays open until told otherwise.

    An open transaction pins the partitions' last stable offset: read_committed
    readers see nothing past it until :meth:`commit` or :meth:`abort` (or the
    broker aborts it after ``transaction_timeout_ms``).
    """

    def __init__(
        self,
        client: dict[str, Any],
        topic: str,
        *,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60000,
    ) -> None:
        self.topic = topic
        self.transactional_id = (
            transactional_id or f"cdc-studio-trainer-{uuid.uuid4().hex[:8]}"
        )
        self._bootstrap = str(client.get("bootstrap.servers", ""))
        self._errors = connection.ErrorCollector()
        self._producer = Producer(
            {
                **client,
                "transactional.id": self.transactional_id,
                "transaction.timeout.ms": transaction_timeout_ms,
                "message.timeout.ms": max(1000, transaction_timeout_ms - 1000),
                "logger": connection.ClientLog(),
                "error_cb": self._errors,
            }
        )
        self._partitions = self._read_partitions()
        self._call("start transactions", self._producer.init_transactions, _TIMEOUT_S)
        self.open = False
        self.sent = 0
        self._number = 0

    def _read_partitions(self) -> list[int]:
        """The topic's partitions, as the cluster has them now."""
        found = connection.existing_topics(
            self._producer,
            [self.topic],
            _TIMEOUT_S,
            bootstrap=self._bootstrap,
            errors=self._errors,
        )
        return sorted(found[self.topic].partitions)

    def _check_partition(self, partition: int) -> None:
        """Refuse a partition the topic lacks, before a transaction begins."""
        if partition not in self._partitions:
            # Partitions may have been added since: ask again before refusing.
            self._partitions = self._read_partitions()
        if partition in self._partitions:
            return
        count = len(self._partitions)
        span = "0" if count == 1 else f"0-{count - 1}"
        raise ConsumerError(
            f"Topic {self.topic} has no partition {partition}: it has {count} ({span})",
            hint=f"choose a partition in {span}, or none to let the partitioner choose",
        )

    def _call(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except KafkaException as exc:
            raise ConsumerError(
                f"Could not {what} as {self.transactional_id}: {exc.args[0].str()}",
                hint="check that the cluster is up; a fenced producer must be "
                "created again",
            ) from exc

    def begin(self) -> None:
        if not self.open:
            self._call("begin a transaction", self._producer.begin_transaction)
            self.open = True
            self.sent = 0

    def send(
        self, count: int = 1, *, partition: int | None = None, prefix: str = "txn"
    ) -> list[str]:
        """Write ``count`` records in the open transaction (begun if needed).

        They are on the brokers when this returns, visible at once to
        read_uncommitted readers. Values are ``<prefix>-<n>``, keys the same.
        """
        if partition is not None:
            self._check_partition(partition)
        self.begin()
        values = []
        for _ in range(count):
            self._number += 1
            value = f"{prefix}-{self._number}"
            self._producer.produce(
                self.topic,
                key=value.encode(),
                value=value.encode(),
                partition=-1 if partition is None else partition,  # -1: partitioner
            )
            values.append(value)
        if self._producer.flush(_TIMEOUT_S) != 0:
            raise ConsumerError(
                f"Records to {self.topic} were not acknowledged",
                hint="check that the topic's leaders are up",
            )
        self.sent += count
        return values

    def commit(self) -> None:
        self._call(
            "commit the transaction", self._producer.commit_transaction, _TIMEOUT_S
        )
        self.open = False

    def abort(self) -> None:
        """Abort; the records stay in the log, marked aborted by a marker."""
        self._call(
            "abort the transaction", self._producer.abort_transaction, _TIMEOUT_S
        )
        self.open = False

    def close(self) -> None:
        """Abort an open transaction and let the producer go."""
        if self.open:
            self.abort()
        self._producer.flush(5)
