"""An optional SASL/SCRAM listener on one embedded broker, added and removed live.

For trying connection profiles with credentials against the embedded stack.
The user's credential is stored by the cluster as a salted SCRAM hash; no
password is written to any file. The listener is not advertised in metadata
(Kafka cannot change ``advertised.listeners`` without a restart), so its
clients see the cluster's topics but no broker addresses: enough to prove
that a profile authenticates, and to inspect topics.
"""

# TODO: a TLS listener the same way, to test a host name mismatch for real (a
# live-added SSL listener with a PEM keystore works, but Kafka 4.4 neither
# closes it nor lets its keystore go without a broker restart, which the
# shared test stack should not pay).

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from core.errors import StackError
from core.settings import Settings
from core.stack import process

log = logging.getLogger(__name__)

MECHANISM = "SCRAM-SHA-256"
_PREFIX = "listener.name.sasl_plaintext."
_PROTOCOL_MAP = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap_servers})


def _alter(settings: Settings, broker_id: int, entries: list[ConfigEntry]) -> None:
    resource = ConfigResource(
        ConfigResource.Type.BROKER, str(broker_id), incremental_configs=entries
    )
    admin = _admin(settings)  # kept referenced until the answers are in
    try:
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)
    except KafkaException as exc:
        raise StackError(
            f"Could not change the listeners of broker {broker_id}: {exc}",
            hint="check that the broker is up",
        ) from exc


def enable_sasl_listener(
    settings: Settings, broker_id: int, port: int, user: str, password: str
) -> None:
    """Open SASL_PLAINTEXT (SCRAM-SHA-256) on 127.0.0.1:``port`` of ``broker_id``."""
    process.check_port_free(port, "the SASL listener port", "the SASL listener")
    credential = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode()
    )
    admin = _admin(settings)
    for future in admin.alter_user_scram_credentials([credential]).values():
        future.result(timeout=30)

    plain = f"PLAINTEXT://127.0.0.1:{settings.broker_port(broker_id)}"
    values: dict[str, Any] = {
        "listeners": f"{plain},SASL_PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": _PROTOCOL_MAP,
        _PREFIX + "sasl.enabled.mechanisms": MECHANISM,
        _PREFIX + "scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    }
    _alter(
        settings,
        broker_id,
        [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in values.items()
        ],
    )
    log.info("SASL listener on broker %d, port %d, user %s", broker_id, port, user)


def disable_sasl_listener(settings: Settings, broker_id: int, user: str) -> None:
    """Close the listener again and delete the user's credential."""
    keys = (
        "listeners",
        "listener.security.protocol.map",
        _PREFIX + "sasl.enabled.mechanisms",
        _PREFIX + "scram-sha-256.sasl.jaas.config",
    )
    _alter(
        settings,
        broker_id,
        [
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
            for k in keys
        ],
    )
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)
    admin = _admin(settings)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        future.result(timeout=30)
    log.info("SASL listener of broker %d closed", broker_id)
