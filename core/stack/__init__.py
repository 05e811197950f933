"""The embedded default stack: a KRaft Kafka cluster and an H2 server."""

from core.stack.stack import NodeStatus, Stack, StackStatus

__all__ = ["NodeStatus", "Stack", "StackStatus"]
