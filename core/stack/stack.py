"""The embedded stack as a whole: up, status, down, and per-broker control."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from core import jvm
from core.errors import (
    DataDirError,
    NodeDiedError,
    SettingsError,
    StackError,
    UnknownNodeError,
)
from core.settings import MAX_BROKERS, MIN_BROKERS, Settings
from core.stack import h2_node, kafka_node, process
from core.stack.process import NodeRecord

log = logging.getLogger(__name__)
# librdkafka's own lines (brokers not up yet, ...) go here, not to stderr.
_client_log = logging.getLogger(__name__ + ".librdkafka")

Progress = Callable[[str], None]
STATE_VERSION = 1
# What `down --wipe` deletes from the data folder: the stack's nodes and state,
# and the folders features write. jvm/ (the build) and logs/ stay.
WIPED_ENTRIES = (
    "kafka",
    "h2",
    "stack.json",
    "relay",
    "consumers",
    "demos",
    "screenshots",
)


@dataclass(frozen=True)
class NodeStatus:
    """One node as the status shows it."""

    name: str
    role: str
    node_id: int | None
    pid: int | None
    port: int
    rack: str | None
    up: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "node_id": self.node_id,
            "pid": self.pid if self.up else None,
            "port": self.port,
            "rack": self.rack,
            "state": "up" if self.up else "down",
        }


@dataclass(frozen=True)
class StackStatus:
    """The recorded stack and which of its nodes are up."""

    data_dir: Path
    cluster_id: str | None
    bootstrap_servers: str
    h2_url: str
    nodes: list[NodeStatus]

    @property
    def running(self) -> bool:
        return any(node.up for node in self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "cluster_id": self.cluster_id,
            "bootstrap_servers": self.bootstrap_servers,
            "h2_url": self.h2_url,
            "running": self.running,
            "nodes": [n.to_json() for n in self.nodes],
        }


class Stack:
    """The embedded Kafka cluster (a controller, N brokers) and the H2 server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_path
        self.state_file = self.data_dir / "stack.json"
        self._lock = threading.RLock()

    # -- state ---------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {"version": STATE_VERSION, "cluster_id": None, "nodes": {}}
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(
                f"The stack state file {self.state_file} is unreadable: {exc}",
                hint="stop stray nodes by hand, then delete that file",
            ) from exc
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _records(self, state: dict[str, Any]) -> dict[str, NodeRecord]:
        return {
            name: NodeRecord.from_json(data) for name, data in state["nodes"].items()
        }

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise changes to the stack across threads and processes."""
        self._check_data_dir()
        with self._lock, open(self.data_dir / "stack.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _check_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise DataDirError(
                f"The data folder {self.data_dir} cannot be written: "
                f"{exc.strerror or exc}",
                hint="set data_dir in the settings file (or CDC_STUDIO_DATA_DIR) "
                "to a folder you can write, or fix its permissions",
            ) from exc

    # -- status --------------------------------------------------------

    def status(self) -> StackStatus:
        """Every recorded node, with whether its process is up."""
        state = self._load_state()
        records = self._records(state)
        # The ports the nodes were set up with, even if the settings now differ.
        brokers = sorted(
            (r for r in records.values() if r.role == "broker"),
            key=lambda r: r.node_id or 0,
        )
        bootstrap = (
            ",".join(f"127.0.0.1:{r.port}" for r in brokers)
            or self.settings.bootstrap_servers
        )
        h2_record = records.get("h2")
        h2_url = h2_node.url(self.settings)
        if h2_record is not None and not self.settings.h2.url:
            h2_url = h2_url.replace(f":{self.settings.h2.port}/", f":{h2_record.port}/")
        nodes = [
            NodeStatus(
                r.name, r.role, r.node_id, r.pid, r.port, r.rack, process.is_running(r)
            )
            for r in records.values()
        ]
        return StackStatus(
            self.data_dir,
            state.get("cluster_id"),
            bootstrap,
            h2_url,
            nodes,
        )

    def broker_ids(self) -> list[int]:
        records = self._records(self._load_state())
        return sorted(
            r.node_id
            for r in records.values()
            if r.role == "broker" and r.node_id is not None
        )

    # -- up --------------------------------------------------------------

    def up(
        self,
        brokers: int | None = None,
        progress: Progress | None = None,
        timeout: float | None = None,
    ) -> tuple[StackStatus, bool]:
        """Start whatever is not running; return the status and whether it was reused.

        A stack that is already fully up is reused as it is. Ready means every
        broker answers a metadata request that reports all brokers, and the
        H2 server accepts connections.
        """
        say = progress or (lambda message: None)
        timeout = timeout or self.settings.kafka.start_timeout_s
        with self._locked():
            state = self._load_state()
            records = self._records(state)
            recorded_brokers = [r for r in records.values() if r.role == "broker"]
            if brokers is None:
                brokers = len(recorded_brokers) or self.settings.kafka.brokers
            if not MIN_BROKERS <= brokers <= MAX_BROKERS:
                raise SettingsError(
                    f"A stack of {brokers} brokers is not possible",
                    hint=f"choose between {MIN_BROKERS} and {MAX_BROKERS} brokers",
                )
            if recorded_brokers and len(recorded_brokers) != brokers:
                running = any(process.is_running(r) for r in records.values())
                raise StackError(
                    f"The stack in {self.data_dir} has {len(recorded_brokers)} "
                    f"brokers ({'running' if running else 'stopped'}); it cannot "
                    f"become one of {brokers}: its topics would lose replicas",
                    hint=f"start it as it is (--brokers {len(recorded_brokers)}), or "
                    "`cdc-studio stack down --wipe` first to start afresh",
                )
            self._check_recorded_ports(records)

            wanted = self._plan(brokers, records)
            if all(process.is_running(r) for r in wanted.values()):
                say("stack already running: reusing it")
                log.info("reusing the running stack in %s", self.data_dir)
                if state.get("jvm_build") not in (None, jvm.current_build_name()):
                    say(
                        "the running stack uses an older build of the JVM module; "
                        "restart it to use the new one: `cdc-studio stack down` "
                        "then `cdc-studio stack up`"
                    )
                    log.info("the running stack uses an older JVM module build")
                return self.status(), True

            for record in wanted.values():
                if not process.is_running(record):
                    self._check_port(record)
            say("checking Java and the JVM module")
            java = jvm.find_java(self.settings)
            build = jvm.ensure_built(self.settings, java)

            state["nodes"] = {name: r.to_json() for name, r in wanted.items()}
            state["jvm_build"] = build.root.name
            first_time = state.get("cluster_id") is None
            if first_time:
                state["cluster_id"] = kafka_node.new_cluster_id()
            self._save_state(state)

            already = {n for n, r in wanted.items() if process.is_running(r)}
            h2_error: list[BaseException] = []
            h2_thread = threading.Thread(
                target=self._start_h2_guarded,
                args=(wanted["h2"], java, build, h2_error),
                name="h2-start",
                daemon=True,
            )
            h2_thread.start()
            try:
                self._start_kafka(
                    state["cluster_id"], wanted, brokers, java, build, say
                )
                self._save_state(
                    state | {"nodes": {n: r.to_json() for n, r in wanted.items()}}
                )
                h2_thread.join()
                self._save_state(
                    state | {"nodes": {n: r.to_json() for n, r in wanted.items()}}
                )
                if h2_error:
                    raise h2_error[0]

                self._wait_ready(wanted, brokers, timeout, say)
                if not state.get("internal_topics_configured"):
                    self._configure_internal_topics(brokers)
                    state["internal_topics_configured"] = True
            except BaseException:
                h2_thread.join()
                self._undo_start(state, wanted, already)
                raise
            state["nodes"] = {n: r.to_json() for n, r in wanted.items()}
            self._save_state(state)
            say("stack ready")
            log.info(
                "stack up: %d brokers, H2 on port %d", brokers, self.settings.h2.port
            )
            return self.status(), False

    def _check_recorded_ports(self, records: dict[str, NodeRecord]) -> None:
        """Refuse to act when the settings' ports differ from the recorded nodes'."""
        fresh = self._plan_fresh(
            len([r for r in records.values() if r.role == "broker"])
        )
        moved = [
            f"{name} {record.port} (settings: {fresh[name].port})"
            for name, record in records.items()
            if name in fresh and record.port != fresh[name].port
        ]
        if moved:
            raise StackError(
                f"The stack in {self.data_dir} was set up on other ports than the "
                f"settings give: {', '.join(moved)}",
                hint="use the settings it was set up with, or stop and wipe it "
                "(`cdc-studio --data-dir DIR stack down --wipe`) to start afresh",
            )

    def _plan_fresh(self, brokers: int) -> dict[str, NodeRecord]:
        return self._plan(brokers, {})

    def _plan(
        self, brokers: int, records: dict[str, NodeRecord]
    ) -> dict[str, NodeRecord]:
        """The node records the stack should have, keeping running ones as they are."""
        s = self.settings
        wanted: dict[str, NodeRecord] = {}

        def keep_or_new(record: NodeRecord) -> None:
            old = records.get(record.name)
            wanted[record.name] = old if old and process.is_running(old) else record

        ctl_dir = kafka_node.node_dir(s, "controller")
        keep_or_new(
            NodeRecord(
                "controller",
                "controller",
                kafka_node.CONTROLLER_ID,
                s.kafka.controller_port,
                None,
                log_file=str(ctl_dir / "controller.log"),
            )
        )
        for broker_id in range(1, brokers + 1):
            name = f"broker-{broker_id}"
            keep_or_new(
                NodeRecord(
                    name,
                    "broker",
                    broker_id,
                    s.broker_port(broker_id),
                    f"rack-{broker_id}",
                    log_file=str(kafka_node.node_dir(s, name) / f"{name}.log"),
                )
            )
        keep_or_new(
            NodeRecord(
                "h2",
                "h2",
                None,
                s.h2.port,
                None,
                log_file=str(h2_node.h2_dir(s) / "h2-server.log"),
            )
        )
        return wanted

    def _check_port(self, record: NodeRecord) -> None:
        setting = {
            "controller": "kafka.controller_port",
            "broker": "kafka.base_port",
            "h2": "h2.port",
        }[record.role]
        process.check_port_free(record.port, setting, record.name)

    def _start_kafka(
        self,
        cluster_id: str,
        wanted: dict[str, NodeRecord],
        brokers: int,
        java: jvm.Java,
        build: jvm.JvmBuild,
        say: Progress,
    ) -> None:
        s = self.settings
        configs: dict[str, tuple[dict[str, str], int]] = {
            "controller": (kafka_node.controller_config(s), s.kafka.controller_heap_mb)
        }
        for broker_id in range(1, brokers + 1):
            configs[f"broker-{broker_id}"] = (
                kafka_node.broker_config(s, broker_id, brokers),
                s.kafka.broker_heap_mb,
            )
        files = {
            name: kafka_node.write_config(
                kafka_node.node_dir(s, name) / "server.properties", config
            )
            for name, (config, _) in configs.items()
        }
        unformatted = [
            files[name]
            for name, (config, _) in configs.items()
            if not kafka_node.is_formatted(config)
        ]
        if unformatted:
            say(f"formatting storage of {len(unformatted)} Kafka nodes")
            kafka_node.format_storage(java, build, cluster_id, unformatted)

        for name, (_, heap) in configs.items():
            record = wanted[name]
            if process.is_running(record):
                continue
            say(f"starting {name}")
            command = kafka_node.java_command(
                java, build, heap, "kafka.Kafka", str(files[name])
            )
            record.pid, record.create_time = process.spawn(
                command, Path(record.log_file), kafka_node.node_dir(s, name)
            )
            log.info("started %s (pid %s, port %s)", name, record.pid, record.port)

    def _start_h2_guarded(
        self,
        record: NodeRecord,
        java: jvm.Java,
        build: jvm.JvmBuild,
        errors: list[BaseException],
    ) -> None:
        try:
            if process.is_running(record):
                return
            h2_node.ensure_database(self.settings, java, build)
            command = h2_node.server_command(self.settings, java, build)
            record.pid, record.create_time = process.spawn(
                command, Path(record.log_file), h2_node.h2_dir(self.settings)
            )
            log.info("started H2 server (pid %s, port %s)", record.pid, record.port)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    def _wait_ready(
        self,
        wanted: dict[str, NodeRecord],
        brokers: int,
        timeout: float,
        say: Progress,
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = {n for n, r in wanted.items() if r.role in ("broker", "h2")}
        admin: AdminClient | None = None
        say(f"waiting for {brokers} brokers and H2")
        while pending:
            for record in wanted.values():
                if not process.is_running(record):
                    raise NodeDiedError(
                        f"{record.name} exited during start-up. Last lines of "
                        f"{record.log_file}:\n{process.log_tail(Path(record.log_file))}",
                        hint="fix the cause above, then `cdc-studio stack up` again",
                    )
            for name in sorted(pending):
                record = wanted[name]
                if record.role == "h2":
                    ready = process.port_answers(record.port)
                else:
                    admin = admin or self._admin()
                    ready = _broker_ready(admin, record.node_id, record.port, brokers)
                if ready:
                    pending.discard(name)
                    say(f"{name} ready ({brokers + 1 - len(pending)}/{brokers + 1})")
            if not pending:
                break
            if time.monotonic() > deadline:
                raise StackError(
                    f"The stack was not ready within {timeout:.0f} s; still waiting "
                    f"for {', '.join(sorted(pending))}",
                    hint="see the node logs under "
                    f"{self.data_dir}, or raise kafka.start_timeout_s",
                )
            time.sleep(0.3)

    def _admin(self) -> AdminClient:
        config: dict[str, Any] = {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "logger": _client_log,
            "socket.connection.setup.timeout.ms": 2000,
        }
        return AdminClient(config)

    def _configure_internal_topics(self, brokers: int) -> None:
        """Create the offsets topic now and give it min.insync.replicas=2."""
        if brokers < 2:
            return
        admin = self._admin()
        deadline = time.monotonic() + 60
        while "__consumer_offsets" not in admin.list_topics(timeout=5).topics:
            if time.monotonic() > deadline:
                raise StackError("The offsets topic was not created within 60 s")
            # Looking up a group's coordinator makes the cluster create it.
            # (list_consumer_group_offsets would do too, but confluent-kafka
            # 2.16 crashes on its error path while the topic does not exist.)
            futures = admin.describe_consumer_groups(["cdc-studio-setup"])
            for future in futures.values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout=5)
            time.sleep(0.2)
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            "__consumer_offsets",
            incremental_configs=[
                ConfigEntry(
                    "min.insync.replicas",
                    "2",
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)
        log.info("set min.insync.replicas=2 on __consumer_offsets")

    # -- down ----------------------------------------------------------

    def _undo_start(
        self, state: dict[str, Any], wanted: dict[str, NodeRecord], already: set[str]
    ) -> None:
        """After a failed start, stop the nodes it started: no half stack stays
        behind holding ports, and the state file still names every node."""
        stopped = []
        for name, record in wanted.items():
            if name not in already and process.is_running(record):
                process.stop(record)
                stopped.append(name)
        self._save_state(state | {"nodes": {n: r.to_json() for n, r in wanted.items()}})
        if stopped:
            log.info(
                "start failed; stopped what it had started: %s", ", ".join(stopped)
            )

    def down(self, wipe: bool = False) -> list[str]:
        """Stop every node this stack started (and nothing else); wipe on request."""
        stopped: list[str] = []
        with self._locked():
            state = self._load_state()
            records = self._records(state)
            order = sorted(
                records.values(), key=lambda r: {"broker": 0, "h2": 1}.get(r.role, 2)
            )
            for record in order:
                if process.is_running(record):
                    process.stop(record)
                    stopped.append(record.name)
                    log.info("stopped %s", record.name)
            if wipe:
                self._wipe()
        return stopped

    def _wipe(self) -> list[str]:
        """Remove what the stack and its features wrote, keeping jvm/ and logs/.

        Only a folder with a stack state file is wiped, and only the entries
        the application writes: anything else a user keeps there stays.
        """
        if not self.state_file.exists():
            raise DataDirError(
                f"{self.data_dir} holds no stack (no {self.state_file.name}): "
                "nothing was wiped",
                hint="check --data-dir / data_dir; wipe only a Kafka CDC Studio "
                "data folder",
            )
        removed = []
        for name in WIPED_ENTRIES:
            path = self.data_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(name)
        log.info("wiped %s: %s", self.data_dir, ", ".join(removed))
        return removed

    # -- per broker ----------------------------------------------------

    def _broker(self, broker_id: int) -> tuple[dict[str, Any], NodeRecord]:
        state = self._load_state()
        record = self._records(state).get(f"broker-{broker_id}")
        if record is None:
            known = (
                ", ".join(str(b) for b in self.broker_ids())
                or "none (stack not set up)"
            )
            controller = self._records(state).get("controller")
            if controller is not None and controller.node_id == broker_id:
                raise UnknownNodeError(
                    f"Node {broker_id} is the controller, not a broker: the demos "
                    "keep it up so the cluster keeps its quorum",
                    hint=f"brokers are: {known}; `cdc-studio stack down` stops "
                    "everything",
                )
            raise UnknownNodeError(
                f"There is no broker {broker_id}", hint=f"brokers are: {known}"
            )
        return state, record

    def stop_broker(self, broker_id: int) -> bool:
        """Stop a broker cleanly (controlled shutdown); False if it was down."""
        with self._locked():
            _, record = self._broker(broker_id)
            was_up = process.is_running(record)
            process.stop(record)
        if was_up:
            log.info("stopped broker %d", broker_id)
        return was_up

    def kill_broker(self, broker_id: int) -> bool:
        """Kill a broker with SIGKILL; False if it was down."""
        with self._locked():
            _, record = self._broker(broker_id)
            was_up = process.is_running(record)
            process.kill(record)
        if was_up:
            log.info("killed broker %d", broker_id)
        return was_up

    def start_broker(self, broker_id: int, timeout: float | None = None) -> bool:
        """Start a stopped broker and wait until it is back; False if it was up."""
        timeout = timeout or self.settings.kafka.start_timeout_s
        with self._locked():
            state, record = self._broker(broker_id)
            if process.is_running(record):
                return False
            self._check_recorded_ports(self._records(state))
            java = jvm.find_java(self.settings)
            build = jvm.ensure_built(self.settings, java)
            self._check_port(record)
            name = record.name
            command = kafka_node.java_command(
                java,
                build,
                self.settings.kafka.broker_heap_mb,
                "kafka.Kafka",
                str(kafka_node.node_dir(self.settings, name) / "server.properties"),
            )
            record.pid, record.create_time = process.spawn(
                command, Path(record.log_file), kafka_node.node_dir(self.settings, name)
            )
            state["nodes"][name] = record.to_json()
            self._save_state(state)
            # Ready once the cluster lists it beside the brokers running now:
            # others may be down on purpose (a demo's outage).
            running = [
                r
                for r in self._records(state).values()
                if r.role == "broker" and process.is_running(r)
            ]
            self._wait_ready({name: record}, len(running), timeout, lambda m: None)
        log.info("started broker %d (pid %s)", broker_id, record.pid)
        return True


def _broker_ready(
    admin: AdminClient, broker_id: int | None, port: int, brokers: int
) -> bool:
    """Whether the cluster's metadata lists at least ``brokers`` brokers, this one
    among them, and this broker itself answers a request on its own port."""
    try:
        metadata = admin.list_topics(timeout=1)
    except KafkaException:
        return False
    if len(metadata.brokers) < brokers or broker_id not in metadata.brokers:
        return False
    return api_versions_ok(port)


def api_versions_ok(port: int, timeout: float = 1.0) -> bool:
    """Send one ApiVersions (v0) request to 127.0.0.1:``port``; True on a good answer.

    librdkafka answers metadata from whichever broker it likes, so this is how
    we know that this very broker serves requests.
    """
    client_id = b"cdc-studio"
    correlation_id = 7
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 10)
    except OSError:
        return False
    if header is None:
        return False
    _, answered_id, error_code = struct.unpack(">iih", header)
    return answered_id == correlation_id and error_code == 0


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
