"""The `cluster`, `monitor` and `topic` commands: layout, exporter and topic actions."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from core.cli import emit, positive_seconds, table
from core.errors import SettingsError
from core.kafka.cluster import ClusterSnapshot, counted
from core.kafka.exporter import Exporter, parse_listen
from core.kafka.inspector import ClusterInspector
from core.kafka.lag import LagReader
from core.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser(
        "cluster", help="the cluster layout: brokers, topics, leaders, ISR, offsets"
    )
    _connection_options(cluster)
    cluster.add_argument("--internal", action="store_true", help="show __ topics too")
    cluster.add_argument("--topic", action="append", help="only this topic (repeat)")
    cluster.add_argument("--json", action="store_true")
    cluster.set_defaults(handler=_cmd_cluster)

    monitor = sub.add_parser("monitor", help="a headless Prometheus exporter")
    _connection_options(monitor)
    monitor.add_argument(
        "--prometheus",
        required=True,
        metavar="HOST:PORT",
        help="where to serve /metrics (loopback only unless --allow-remote)",
    )
    monitor.add_argument(
        "--interval", type=positive_seconds, default=2.0, help="refresh, s"
    )
    monitor.add_argument("--internal", action="store_true", help="export __ topics")
    monitor.add_argument(
        "--no-lag", action="store_true", help="do not export consumer group lag"
    )
    monitor.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback listen address",
    )
    monitor.set_defaults(handler=_cmd_monitor)

    topic = sub.add_parser(
        "topic", help="create, alter, elect leaders of, delete topics"
    )
    actions = topic.add_subparsers(dest="topic_action", required=True)
    create = actions.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument("--partitions", type=int, default=3)
    create.add_argument("--replication-factor", type=int, default=3)
    create.add_argument(
        "--config",
        dest="topic_configs",  # not the global --config (the settings file)
        action="append",
        default=[],
        metavar="KEY=VALUE",
    )
    alter = actions.add_parser("alter", help="set topic configs (KEY= resets one)")
    alter.add_argument("name")
    alter.add_argument("configs", nargs="+", metavar="KEY=VALUE")
    elect = actions.add_parser(
        "elect-leaders", help="preferred leader election (all topics if none given)"
    )
    elect.add_argument("names", nargs="*", metavar="TOPIC")
    delete = actions.add_parser("delete", help="delete a topic")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    for action in (create, alter, elect, delete):
        _connection_options(action)
        action.add_argument("--json", action="store_true")
    topic.set_defaults(handler=_cmd_topic)

    profile = sub.add_parser("profile", help="connection profiles of external clusters")
    profile_actions = profile.add_subparsers(dest="profile_action", required=True)
    add = profile_actions.add_parser("add", help="add or replace a profile")
    add.add_argument("name")
    add.add_argument("--bootstrap", required=True, metavar="HOST:PORT[,...]")
    add.add_argument(
        "--security-protocol",
        default="PLAINTEXT",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
    )
    add.add_argument(
        "--sasl-mechanism",
        default="",
        choices=["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    )
    add.add_argument("--user", default="", help="SASL user name")
    add.add_argument("--ca-file", default="", help="PEM file of the brokers' CA")
    add.add_argument("--cert-file", default="", help="client certificate (PEM)")
    add.add_argument("--key-file", default="", help="client key (PEM)")
    add.add_argument(
        "--no-hostname-check",
        action="store_true",
        help="do not check the broker certificate's host name",
    )
    add.add_argument(
        "--read-only",
        action="store_true",
        help="offer nothing that writes to the cluster",
    )
    add.add_argument(
        "--save-password",
        action="store_true",
        help="ask for the SASL password now and keep it in the OS keyring",
    )
    listing = profile_actions.add_parser("list", help="the profiles (no passwords)")
    remove = profile_actions.add_parser("remove", help="remove a profile")
    remove.add_argument("name")
    check = profile_actions.add_parser("test", help="connect once and report")
    check.add_argument("name")
    check.add_argument("--timeout", type=positive_seconds, default=10.0)
    for action in (add, listing, remove, check):
        action.add_argument("--json", action="store_true")
    profile.set_defaults(handler=_cmd_profile)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="a connection profile (external cluster); default: the embedded stack",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds per cluster request",
    )


def open_inspector(
    args: argparse.Namespace, conf: Settings, **kwargs: Any
) -> ClusterInspector:
    """The inspector of ``--profile``'s cluster, or of the embedded stack."""
    kwargs.setdefault("timeout", args.timeout)
    if getattr(args, "profile", None):
        from core.kafka import profiles

        path = profiles.profiles_path(args.config)
        return profiles.open_inspector(conf, args.profile, path=path, **kwargs)
    return ClusterInspector.for_settings(conf, **kwargs)


def _cmd_cluster(args: argparse.Namespace, conf: Settings) -> int:
    inspector = open_inspector(args, conf, include_internal=args.internal)
    try:
        snapshot = inspector.snapshot()
    finally:
        inspector.close()
    if args.topic:
        missing = sorted(set(args.topic) - set(snapshot.topics))
        if missing:
            raise SettingsError(
                f"No topic named {', '.join(missing)}",
                hint="run `cdc-studio cluster` to list the topics",
            )
        keep = {name: snapshot.topics[name] for name in args.topic}
        snapshot = ClusterSnapshot(
            snapshot.cluster_id,
            snapshot.controller_id,
            snapshot.brokers,
            keep,
            snapshot.taken_at,
        )
    emit(args.json, snapshot.to_json(), lambda: cluster_text(snapshot))
    return 0


def _dash(value: object) -> object:
    """An offset for people: "-" when unknown (None, or librdkafka's negative
    markers such as -1001 while a partition's leader is gone)."""
    if value is None or (isinstance(value, int) and value < 0):
        return "-"
    return value


def cluster_text(snapshot: ClusterSnapshot) -> str:
    """The layout as readable text: brokers, then one table per topic."""
    counts = snapshot.leader_counts()
    lines = [
        f"cluster id:   {snapshot.cluster_id}",
        f"brokers:      {len(snapshot.brokers)}   leader skew: "
        f"{snapshot.leader_skew():.0%}",
        "",
        table(
            ["BROKER", "HOST", "PORT", "RACK", "LEADERS"],
            [
                [b.id, b.host, b.port, _dash(b.rack), counts.get(b.id, 0)]
                for b in snapshot.brokers
            ],
        ),
    ]
    for name in sorted(snapshot.topics):
        topic = snapshot.topics[name]
        config = topic.config
        lines += [
            "",
            f"topic {name}: {len(topic.partitions)} partitions, replication factor "
            f"{topic.replication_factor}, min.insync.replicas "
            f"{_dash(config.min_insync_replicas)}, cleanup.policy "
            f"{_dash(config.cleanup_policy)}, retention.ms "
            f"{_dash(config.retention_ms)}",
            table(
                [
                    "PARTITION",
                    "LEADER",
                    "REPLICAS",
                    "ISR",
                    "OFFLINE",
                    "LOG START",
                    "HW",
                    "LSO",
                    "FLAGS",
                ],
                [
                    [
                        p.partition,
                        _dash(p.leader),
                        ",".join(map(str, p.replicas)),
                        ",".join(map(str, p.isr)),
                        ",".join(map(str, p.offline_replicas)) or "-",
                        _dash(p.log_start_offset),
                        _dash(p.high_watermark),
                        _dash(p.last_stable_offset),
                        " ".join(p.flags()) or "-",
                    ]
                    for p in topic.partitions
                ],
            ),
        ]
    if not snapshot.topics:
        lines += ["", "(no topics; `--internal` shows Kafka's own)"]
    return "\n".join(lines)


def _cmd_monitor(args: argparse.Namespace, conf: Settings) -> int:
    host, port = parse_listen(args.prometheus, allow_remote=args.allow_remote)
    inspector = open_inspector(args, conf, include_internal=args.internal)
    lag = None if args.no_lag else LagReader(inspector.client_config())
    exporter = Exporter(inspector, host, port, interval=args.interval, lag_reader=lag)
    try:
        exporter.start()
        print(
            f"serving Prometheus metrics on {exporter.url} (Ctrl+C stops)", flush=True
        )
        exporter.wait()
    finally:
        inspector.close()
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(
                f"Expected KEY=VALUE, got {item!r}",
                hint="for example retention.ms=86400000",
            )
        pairs[key] = value
    return pairs


def _cmd_topic(args: argparse.Namespace, conf: Settings) -> int:
    action = args.topic_action
    if action == "delete" and not args.yes:
        raise SettingsError(
            f"Deleting topic {args.name} needs confirmation",
            hint="add --yes to delete it and all its records",
        )
    inspector = open_inspector(args, conf)
    try:
        if action == "create":
            inspector.create_topic(
                args.name,
                args.partitions,
                args.replication_factor,
                _pairs(args.topic_configs),
            )
            data: dict[str, Any] = {"created": args.name}
            text = f"created topic {args.name}"
        elif action == "alter":
            changes = {k: (v or None) for k, v in _pairs(args.configs).items()}
            inspector.alter_topic_config(args.name, changes)
            data = {"altered": args.name, "configs": changes}
            text = f"changed {', '.join(changes)} of {args.name}"
        elif action == "elect-leaders":
            partitions = None
            if args.names:
                snapshot = inspector.snapshot(offsets=False, configs=False)
                missing = sorted(set(args.names) - set(snapshot.topics))
                if missing:
                    raise SettingsError(
                        f"No topic named {', '.join(missing)}",
                        hint="run `cdc-studio cluster` to list the topics",
                    )
                partitions = [
                    (p.topic, p.partition)
                    for name in args.names
                    for p in snapshot.topics[name].partitions
                ]
            outcome = inspector.elect_preferred_leaders(partitions)
            moved = sorted(f"{t}-{p}" for (t, p), err in outcome.items() if err is None)
            data = {"moved": moved}
            text = f"moved to their preferred leader: {', '.join(moved) or 'none'}"
        else:
            inspector.delete_topic(args.name)
            data, text = {"deleted": args.name}, f"deleted topic {args.name}"
    finally:
        inspector.close()
    emit(args.json, data, lambda: text)
    return 0


def _cmd_profile(args: argparse.Namespace, conf: Settings) -> int:
    import getpass

    from core.kafka import profiles

    path = profiles.profiles_path(args.config)
    known = profiles.load(path)
    action = args.profile_action
    if action == "add":
        profile = profiles.ConnectionProfile(
            args.name,
            args.bootstrap,
            args.security_protocol,
            args.sasl_mechanism,
            args.user,
            args.ca_file,
            args.cert_file,
            args.key_file,
            not args.no_hostname_check,
            args.read_only,
        )
        profile.validate()
        known[args.name] = profile
        profiles.save(path, known)
        if args.save_password and profile.uses_sasl:
            profiles.store_password(
                profile, getpass.getpass(f"Password for {args.user}: ")
            )
        data: dict[str, Any] = {"saved": args.name, "file": str(path)}
        text = f"saved profile {args.name} in {path}"
    elif action == "list":
        rows = [dataclasses.asdict(p) for p in known.values()]
        data = {"profiles": rows}
        columns = [
            "name",
            "bootstrap_servers",
            "security_protocol",
            "sasl_username",
            "read_only",
        ]
        text = table(columns, [[r[c] for c in columns] for r in rows])
    elif action == "remove":
        profile = profiles.get(path, args.name)
        profiles.forget_password(profile)
        del known[args.name]
        profiles.save(path, known)
        data, text = {"removed": args.name}, f"removed profile {args.name}"
    else:
        inspector = profiles.open_inspector(
            conf, args.name, timeout=args.timeout, path=path
        )
        try:
            snapshot = inspector.snapshot(offsets=False, configs=False)
        finally:
            inspector.close()
        data = {
            "profile": args.name,
            "cluster_id": snapshot.cluster_id,
            "brokers": len(snapshot.brokers),
            "topics": len(snapshot.topics),
        }
        text = (
            f"{args.name}: connected to cluster {snapshot.cluster_id}, "
            f"{counted(len(snapshot.brokers), 'broker')}, "
            f"{counted(len(snapshot.topics), 'topic')}"
        )
    emit(args.json, data, lambda: text)
    return 0
