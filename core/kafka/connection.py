"""Kafka client configuration and clear errors when a cluster cannot be reached."""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, TopicMetadata

from core.errors import (
    ConsumerError,
    KafkaAuthError,
    KafkaConnectionError,
    KafkaTlsError,
    KafkaUnreachableError,
)

log = logging.getLogger(__name__)
_client_log = logging.getLogger(__name__ + ".librdkafka")

SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password")


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with secrets replaced, fit for logs and error messages."""
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in config.items()}


class ClientLog:
    """Where librdkafka's own log lines go: DEBUG, never stderr.

    A broker that is down makes librdkafka log connection failures as errors;
    for an inspector that is the cluster's state, shown on the timeline, and
    the failures that matter reach the caller as exceptions.
    """

    def log(self, level: int, msg: str, *args: object) -> None:
        _client_log.debug(msg, *args)


class ErrorCollector:
    """Keeps the client-level errors librdkafka reports (served by ``poll``)."""

    def __init__(self, limit: int = 50) -> None:
        self._errors: list[KafkaError] = []
        self._lock = threading.Lock()
        self._limit = limit

    def __call__(self, error: KafkaError) -> None:
        with self._lock:
            self._errors.append(error)
            del self._errors[: -self._limit]

    def take(self) -> list[KafkaError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


def admin_client(config: dict[str, Any], errors: ErrorCollector) -> AdminClient:
    """An AdminClient for ``config`` whose errors go to ``errors``."""
    full = {
        "socket.connection.setup.timeout.ms": 5000,
        "reconnect.backoff.ms": 200,
        "reconnect.backoff.max.ms": 2000,
        **config,
        "logger": ClientLog(),
        "error_cb": errors,
    }
    log.debug("admin client for %s", redacted(config))
    return AdminClient(full)


def existing_topics(
    client: Consumer | Producer,
    topics: list[str],
    timeout: float,
    *,
    bootstrap: str,
    errors: ErrorCollector,
) -> dict[str, TopicMetadata]:
    """The metadata of ``topics``; a clear error for one the cluster lacks.

    ``errors`` is the ``error_cb`` of ``client``: when no broker answers at
    ``bootstrap``, its errors say why (see :func:`classify`).
    """
    try:
        # Every topic, not these: asking for one by name may create it.
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        client.poll(0)  # serves error_cb: the collector learns why
        raise classify(bootstrap, exc, errors.take()) from exc
    found = {}
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            raise ConsumerError(
                f"Topic {topic} does not exist",
                hint=f"check the name, or create it: cdc-studio topic create {topic}",
            )
        found[topic] = meta
    return found


_AUTH_CODES = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


def classify(
    bootstrap: str, exc: KafkaException | None, errors: list[KafkaError]
) -> KafkaConnectionError:
    """The error to show when a request to ``bootstrap`` failed.

    ``errors`` are the client-level errors reported meanwhile; they say
    why better than the request's own time-out does.
    """
    seen = list(errors)
    if exc is not None and exc.args and isinstance(exc.args[0], KafkaError):
        seen.append(exc.args[0])
    texts = [e.str() for e in seen]
    joined = " | ".join(dict.fromkeys(texts))

    def reason(codes: set[int], word: str) -> str:
        """The first message that says why, rather than a later time-out."""
        for error in seen:
            if error.code() in codes or word in error.str():
                return error.str()
        return texts[-1] if texts else "timed out"

    if any(e.code() in _AUTH_CODES for e in seen) or "SASL" in joined:
        return KafkaAuthError(
            f"The cluster at {bootstrap} refused our credentials: "
            f"{reason(_AUTH_CODES, 'SASL')}",
            hint="check the SASL mechanism, user name and password of the "
            "connection profile",
        )
    if any(e.code() == KafkaError._SSL for e in seen) or "SSL" in joined:
        return KafkaTlsError(
            f"TLS with {bootstrap} failed: {reason({KafkaError._SSL}, 'SSL')}",
            hint="check the CA file, and that the host name in the bootstrap "
            "servers matches the broker's certificate",
        )
    unreachable = {
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
    }
    if not seen or any(e.code() in unreachable for e in seen):
        return KafkaUnreachableError(
            f"No broker answers at {bootstrap}: "
            f"{reason({KafkaError._TRANSPORT, KafkaError._RESOLVE}, 'Connect')}",
            hint="check that the cluster is running and the bootstrap servers "
            "(host:port) are right; for the embedded stack run "
            "`cdc-studio stack up`",
        )
    return KafkaConnectionError(
        f"The cluster at {bootstrap} failed a request: {texts[-1]}",
        hint="see the application log for the client's messages",
    )
