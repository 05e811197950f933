"""Run Kafka's own command-line tools from the same jars as the brokers."""

from __future__ import annotations

import logging
import subprocess

from core import jvm
from core.errors import StackError
from core.settings import Settings
from core.stack import kafka_node

log = logging.getLogger(__name__)

# The shell scripts of a Kafka distribution and the classes they run.
TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    ),
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
    "kafka-verifiable-consumer": "org.apache.kafka.tools.VerifiableConsumer",
}


def run_tool(settings: Settings, tool: str, *args: str, timeout: float = 120) -> str:
    """Run ``tool`` (e.g. ``kafka-topics``) with ``args``; return its stdout."""
    if tool not in TOOLS:
        raise StackError(
            f"Unknown Kafka tool {tool}", hint=f"known: {', '.join(TOOLS)}"
        )
    java = jvm.find_java(settings)
    build = jvm.ensure_built(settings, java)
    command = kafka_node.java_command(
        java,
        build,
        256,
        TOOLS[tool],
        *args,
        log_config=kafka_node.TOOLS_LOG4J_CONFIG,
    )
    log.debug("running %s %s", tool, " ".join(args))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{tool} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise StackError(
            f"{tool} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        )
    return done.stdout


def describe_topic(
    settings: Settings, bootstrap: str, topic: str
) -> dict[int, dict[str, object]]:
    """Leader, replicas and ISR per partition, as `kafka-topics --describe` says."""
    out = run_tool(
        settings,
        "kafka-topics",
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--topic",
        topic,
    )
    partitions: dict[int, dict[str, object]] = {}
    for line in out.splitlines():
        fields = dict(
            part.split(": ", 1) for part in line.strip().split("\t") if ": " in part
        )
        if "Partition" not in fields:
            continue
        partitions[int(fields["Partition"])] = {
            # An offline partition's leader is printed as "none".
            "leader": None if fields["Leader"] == "none" else int(fields["Leader"]),
            "replicas": [int(r) for r in fields["Replicas"].split(",") if r],
            "isr": [int(r) for r in fields["Isr"].split(",") if r],
        }
    return partitions
