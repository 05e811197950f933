"""Configuration, storage format and command line of one embedded KRaft node."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.errors import StackError
from core.jvm import Java, JvmBuild
from core.settings import Settings

log = logging.getLogger(__name__)

CONTROLLER_ID = 0
_RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources" / "kafka"
LOG4J_CONFIG = _RESOURCES / "log4j2.properties"
TOOLS_LOG4J_CONFIG = _RESOURCES / "tools-log4j2.properties"
RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding.

    Never one that starts with "-" (one in 64 would): command-line tools take
    such an id for an option, as Kafka's own generator knows.
    """
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def node_dir(settings: Settings, name: str) -> Path:
    return settings.data_path / "kafka" / name


def _common(settings: Settings) -> dict[str, str]:
    return {
        "controller.quorum.voters": (
            f"{CONTROLLER_ID}@127.0.0.1:{settings.kafka.controller_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    }


def controller_config(settings: Settings) -> dict[str, str]:
    """Properties of the controller node (kept apart from the brokers)."""
    port = settings.kafka.controller_port
    return {
        "process.roles": "controller",
        "node.id": str(CONTROLLER_ID),
        "listeners": f"CONTROLLER://127.0.0.1:{port}",
        "log.dirs": str(node_dir(settings, "controller") / "data"),
        **_common(settings),
    }


def broker_config(settings: Settings, broker_id: int, brokers: int) -> dict[str, str]:
    """Properties of broker ``broker_id`` in a cluster of ``brokers`` brokers."""
    port = settings.broker_port(broker_id)
    replication = str(min(3, brokers))
    min_isr = str(min(2, brokers))
    return {
        "process.roles": "broker",
        "node.id": str(broker_id),
        "broker.rack": f"rack-{broker_id}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node_dir(settings, f"broker-{broker_id}") / "data"),
        **_common(settings),
        "num.partitions": "3",
        "default.replication.factor": replication,
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "10",
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "replica.selector.class": RACK_AWARE_SELECTOR,
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
        "log.retention.hours": "168",
    }


def write_config(path: Path, config: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by Kafka CDC Studio at each start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in config.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def is_formatted(config: dict[str, str]) -> bool:
    return (Path(config["log.dirs"]) / "meta.properties").exists()


def java_command(
    java: Java,
    build: JvmBuild,
    heap_mb: int,
    main: str,
    *args: str,
    log_config: Path = LOG4J_CONFIG,
) -> list[str]:
    """The ``java`` command line of a Kafka node or tool."""
    return [
        str(java.executable),
        f"-Xms{min(heap_mb, 256)}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        build.class_path(),
        main,
        *args,
    ]


def format_storage(
    java: Java, build: JvmBuild, cluster_id: str, configs: list[Path]
) -> None:
    """Format the log directories of not yet formatted nodes, in parallel."""

    def run(config_file: Path) -> None:
        command = java_command(
            java,
            build,
            128,
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(config_file),
            f"--cluster-id={cluster_id}",  # one word, whatever the id starts with
            "--ignore-formatted",
            log_config=TOOLS_LOG4J_CONFIG,
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise StackError(
                f"Formatting Kafka storage for {config_file.parent.name} failed:"
                f"\n{tail}",
                hint="wipe the data folder with `cdc-studio stack down --wipe` "
                "and start again",
            )
        log.debug("formatted %s", config_file.parent.name)

    with ThreadPoolExecutor(max_workers=len(configs) or 1) as pool:
        list(pool.map(run, configs))
