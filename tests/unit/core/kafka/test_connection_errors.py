"""Connection failures are told apart: unreachable, auth failed, TLS mismatch."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from core.errors import KafkaAuthError, KafkaTlsError, KafkaUnreachableError
from core.kafka.connection import classify, redacted

BOOT = "127.0.0.1:9093"


def test_refused_connection_is_unreachable_and_names_the_reason() -> None:
    refused = KafkaError(KafkaError._TRANSPORT, "Connect to 127.0.0.1:9093 failed")
    timed_out = KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out"))
    error = classify(BOOT, timed_out, [refused])
    assert isinstance(error, KafkaUnreachableError)
    assert str(error.args[0]) == (
        f"No broker answers at {BOOT}: Connect to 127.0.0.1:9093 failed"
    )
    assert isinstance(classify(BOOT, None, []), KafkaUnreachableError)


def test_sasl_failure_is_an_auth_error() -> None:
    failed = KafkaError(
        KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials"
    )
    error = classify(BOOT, None, [failed])
    assert isinstance(error, KafkaAuthError)
    assert "invalid credentials" in error.args[0]
    assert "password" in (error.hint or "")


def test_certificate_mismatch_is_a_tls_error() -> None:
    mismatch = KafkaError(
        KafkaError._SSL,
        "SSL handshake failed: certificate verify failed: Hostname mismatch",
    )
    refused = KafkaError(KafkaError._TRANSPORT, "Disconnected")
    error = classify(BOOT, None, [refused, mismatch])
    assert isinstance(error, KafkaTlsError)
    assert error.args[0].endswith("Hostname mismatch")
    assert "host name" in (error.hint or "")


def test_secrets_are_redacted_for_logs() -> None:
    config = {"bootstrap.servers": BOOT, "sasl.password": "pw", "ssl.key.password": "k"}
    assert redacted(config) == {
        "bootstrap.servers": BOOT,
        "sasl.password": "***",
        "ssl.key.password": "***",
    }
