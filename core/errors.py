"""The one exception family of Kafka CDC Studio, with messages a user can act on."""

from __future__ import annotations


class StudioError(Exception):
    """A fault of the environment or of the user's input, not a bug.

    The message says what failed, why, and what to do about it. The original
    exception, where there is one, is kept as ``__cause__``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        if self.hint:
            return f"{text}\n  -> {self.hint}"
        return text


class SettingsError(StudioError):
    """The settings file or a setting's value is wrong."""


class JavaError(StudioError):
    """Java or Maven is missing, too old, or the JVM module does not build."""


class DataDirError(StudioError):
    """The data folder cannot be created or written."""


class PortBusyError(StudioError):
    """A port the stack needs is taken by another process."""


class StackError(StudioError):
    """A node of the embedded stack failed to start, stop or answer."""


class NodeDiedError(StackError):
    """A node process exited during start-up; the message quotes its log."""


class UnknownNodeError(StackError):
    """A broker id or node name that the stack does not have."""


class KafkaConnectionError(StudioError):
    """The Kafka cluster cannot be reached or refused us."""


class H2Error(StudioError):
    """The H2 database refused a connection or a statement."""


class H2AuthError(H2Error):
    """H2 rejected the user name or password."""


class DemoError(StudioError):
    """A crash-and-recover demo could not be set up or run to its end."""


class UnknownScenarioError(DemoError):
    """A demo scenario name or knob that does not exist."""


class KafkaUnreachableError(KafkaConnectionError):
    """No broker of the cluster answers at the bootstrap servers."""


class KafkaAuthError(KafkaConnectionError):
    """The cluster rejected the SASL credentials."""


class KafkaTlsError(KafkaConnectionError):
    """The TLS handshake failed: unknown CA or a host name mismatch."""


class ClusterActionError(StudioError):
    """The cluster refused an action: create, alter, elect or delete."""


class ReadOnlyError(StudioError):
    """A write was asked of a read-only connection profile."""


class ProfileError(StudioError):
    """A connection profile is missing, malformed or lacks its password."""


class ConsumerError(StudioError):
    """A consumer group, one of its member processes or a tail failed."""


class ConsumerSpecError(ConsumerError):
    """A consumer group or member was asked for something that cannot work."""


class LagError(StudioError):
    """Consumer lag could not be sampled from the cluster."""


class CaptureError(StudioError):
    """A capture rule, trigger or outbox cannot be set up or used."""


class RelayError(StudioError):
    """The relay cannot move changes from the outbox to Kafka."""


class RelayFencedError(RelayError):
    """A newer relay with the same transactional id took over: this one stops."""
