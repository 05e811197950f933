"""The `capture`, `relay`, `tail` and `workload` subcommands of `cdc-studio`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from core.cli import emit, positive_count, table
from core.errors import H2Error, RelayError
from core.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the change-capture subcommands."""
    _register_capture(sub)
    _register_relay(sub)
    _register_tail(sub)
    _register_workload(sub)
    _register_webhook(sub)


# -- capture ------------------------------------------------------------------


def _register_capture(sub: argparse._SubParsersAction) -> None:
    capture = sub.add_parser("capture", help="capture rules: list, add, remove, tables")
    actions = capture.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the capture rules and their triggers")
    listing.add_argument("--json", action="store_true")
    tables = actions.add_parser("tables", help="tables of the database (catalog)")
    tables.add_argument("--schema", help="only this schema (exact spelling)")
    tables.add_argument("--json", action="store_true")
    add = actions.add_parser(
        "add", help="capture a table (again: change its rule; twice: harmless)"
    )
    add.add_argument("table", help="table name, exactly as the catalog spells it")
    add.add_argument("--schema", default="PUBLIC", help="schema (default PUBLIC)")
    add.add_argument(
        "--ops", default="insert,update,delete", help="operations, comma-separated"
    )
    add.add_argument(
        "--column",
        action="append",
        default=[],
        dest="columns",
        metavar="NAME",
        help="updates are captured only if one of these columns changes (repeat)",
    )
    add.add_argument(
        "--where",
        dest="predicate",
        help="SQL predicate over the new row (old row for deletes)",
    )
    add.add_argument("--tombstone", action="store_true", help="tombstone after deletes")
    add.add_argument("--mode", choices=("outbox", "webhook"), default="outbox")
    add.add_argument("--webhook-url", help="receiver URL for --mode webhook")
    add.add_argument("--webhook-token", help="receiver token for --mode webhook")
    add.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="stop capturing a table")
    remove.add_argument("table")
    remove.add_argument("--schema", default="PUBLIC")
    remove.add_argument("--json", action="store_true")
    capture.set_defaults(handler=_cmd_capture)


def _cmd_capture(args: argparse.Namespace, conf: Settings) -> int:
    from core.h2 import catalog, triggers
    from core.h2.connection import H2Connection

    with H2Connection(conf) as conn:
        if args.action == "list":
            rules = triggers.list_rules(conn)
            rows = [
                [
                    s.rule.schema,
                    s.rule.table,
                    ",".join(s.rule.operations),
                    ",".join(s.rule.changed_columns),
                    s.rule.predicate,
                    s.rule.mode,
                    s.installed,
                ]
                for s in rules
            ]
            emit(
                args.json,
                {
                    "rules": [
                        s.rule.to_json() | {"installed": s.installed} for s in rules
                    ]
                },
                lambda: table(
                    ["SCHEMA", "TABLE", "OPS", "COLUMNS", "WHERE", "MODE", "TRIGGER"],
                    rows,
                ),
            )
        elif args.action == "tables":
            found = catalog.tables(conn, args.schema)
            emit(
                args.json,
                {
                    "tables": [
                        {
                            "schema": t.schema,
                            "table": t.name,
                            "primary_key": list(t.primary_key),
                            "columns": [[c.name, c.type_name] for c in t.columns],
                        }
                        for t in found
                    ]
                },
                lambda: table(
                    ["SCHEMA", "TABLE", "PRIMARY KEY", "COLUMNS"],
                    [
                        [
                            t.schema,
                            t.name,
                            ",".join(t.primary_key) or "(none)",
                            len(t.columns),
                        ]
                        for t in found
                    ],
                ),
            )
        elif args.action == "add":
            rule = triggers.CaptureRule(
                schema=args.schema,
                table=args.table,
                operations=tuple(o.strip().lower() for o in args.ops.split(",") if o),
                changed_columns=tuple(args.columns),
                predicate=args.predicate,
                mode=args.mode,
                tombstone=args.tombstone,
                webhook_url=args.webhook_url,
                webhook_token=args.webhook_token,
            )
            found_table = triggers.add_rule(conn, rule)
            note = (
                ""
                if found_table.primary_key
                else (" (no primary key: null keys, all events on partition 0)")
            )
            from core.cdc.events import topic_for
            from core.cdc.relay import RelayConfig

            # With the relay's default prefix; `relay run --prefix P` changes it.
            topic = topic_for(RelayConfig().prefix, rule.schema, rule.table)
            emit(
                args.json,
                {"rule": rule.to_json(), "topic": topic},
                lambda: (
                    f"capturing {rule.schema}.{rule.table}{note}; the relay "
                    f"publishes it to {topic}"
                ),
            )
        else:
            removed = triggers.remove_rule(conn, args.schema, args.table)
            emit(
                args.json,
                {"removed": removed},
                lambda: (
                    f"removed rule on {args.schema}.{args.table}"
                    if removed
                    else f"no rule on {args.schema}.{args.table}"
                ),
            )
    return 0


# -- relay --------------------------------------------------------------------


def _register_relay(sub: argparse._SubParsersAction) -> None:
    from core.cdc.relay import MODES, RelayConfig

    defaults = RelayConfig()
    relay = sub.add_parser(
        "relay",
        help="the relay from the outbox to Kafka: run (default), status, or "
        "release SCHEMA (drop a schema's claim)",
    )
    relay.add_argument(
        "action", nargs="?", choices=("run", "status", "release"), default="run"
    )
    relay.add_argument(
        "schema_name", nargs="?", metavar="SCHEMA", help="with release: the schema"
    )
    relay.add_argument("--mode", choices=MODES, default=defaults.mode)
    relay.add_argument("--prefix", default=defaults.prefix, help="topic prefix")
    relay.add_argument("--partitions", type=positive_count, default=defaults.partitions)
    relay.add_argument(
        "--replication-factor", type=positive_count, default=defaults.replication_factor
    )
    relay.add_argument(
        "--relay-id", default=defaults.relay_id, help="also the transactional id"
    )
    relay.add_argument("--batch-size", type=positive_count, default=defaults.batch_size)
    relay.add_argument(
        "--schema",
        action="append",
        default=[],
        dest="schemas",
        help="relay only changes of this schema (repeat; default all)",
    )
    relay.add_argument("--bootstrap", default="", help="default: the embedded cluster")
    relay.add_argument(
        "--force",
        action="store_true",
        help="with release: drop the claim even though its relay is running",
    )
    relay.add_argument("--json", action="store_true")
    relay.set_defaults(handler=_cmd_relay)


def status_dir(conf: Settings) -> Path:
    """Where running relays write their status, one JSON file per relay id."""
    return conf.data_path / "relay"


def read_statuses(conf: Settings) -> list[dict[str, Any]]:
    """The status of every relay that ran from this data folder."""
    statuses = []
    for path in sorted(status_dir(conf).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = data.get("pid")
        alive = bool(pid) and psutil.pid_exists(pid)
        if alive and data.get("create_time"):
            try:
                process = psutil.Process(pid)
                alive = (
                    abs(process.create_time() - data["create_time"]) < 0.01
                    and process.status() != psutil.STATUS_ZOMBIE  # killed, not reaped
                )
            except psutil.Error:
                alive = False
        if not alive and data.get("state") not in ("stopped", "failed"):
            data["last_state"] = data.get("state")
            data["state"] = "dead"
        statuses.append(data | {"alive": alive})
    return statuses


def status_due(state: str, last_written: str, since_s: float) -> bool:
    """Whether a relay writes its status file now: a new state at once (the
    relay may then block for long, Kafka down say), counts at most twice a
    second."""
    return state != last_written or since_s >= 0.5


def shown_state(status: dict[str, Any]) -> str:
    """A relay's state for people: the last one it wrote, unless its process
    is gone without saying it stopped (killed, or the machine went down)."""
    state = str(status.get("state"))
    if status.get("alive") or state in ("stopped", "failed"):
        return state
    return f"gone (last said: {status.get('last_state', state)})"


def _cmd_relay(args: argparse.Namespace, conf: Settings) -> int:
    from core.cdc.relay import Relay, RelayConfig, RelayStats

    if args.action == "release":
        return _release(args, conf)
    if args.action == "status":
        from core.h2 import outbox
        from core.h2.connection import H2Connection

        statuses = read_statuses(conf)
        with H2Connection(conf) as conn:
            backlog = outbox.backlog(conn)
            try:
                claims = outbox.claims(conn)
            except H2Error:  # a database no relay of this version has seen yet
                claims = {}
        claimed = "".join(
            f"\nrelay {owner} publishes every schema not claimed by another relay"
            if schema == outbox.ALL_SCHEMAS
            else f"\nschema {schema} is claimed by {owner}: only it publishes there"
            for schema, owner in claims.items()
        )
        emit(
            args.json,
            {"relays": statuses, "backlog": backlog, "claims": claims},
            lambda: (
                table(
                    [
                        "RELAY",
                        "MODE",
                        "STATE",
                        "PID",
                        "PUBLISHED",
                        "REJECTED",
                        "LAST SEQ",
                    ],
                    [
                        [
                            s.get("relay_id"),
                            s.get("mode"),
                            shown_state(s),
                            s.get("pid"),
                            s.get("published"),
                            s.get("rejected"),
                            s.get("last_seq"),
                        ]
                        for s in statuses
                    ],
                )
                + f"\noutbox backlog: {backlog}"
                + claimed
            ),
        )
        return 0

    if args.schema_name:
        raise RelayError(
            f"`relay {args.action} {args.schema_name}`: a schema to relay is given "
            "with --schema",
            hint=f"cdc-studio relay run --schema {args.schema_name}",
        )
    config = RelayConfig(
        mode=args.mode,
        prefix=args.prefix,
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        relay_id=args.relay_id,
        batch_size=args.batch_size,
        schemas=tuple(args.schemas),
        bootstrap_servers=args.bootstrap,
    )
    for running in read_statuses(conf):
        if running.get("relay_id") == config.relay_id and running["alive"]:
            raise RelayError(
                f"Relay {config.relay_id} is already running (pid {running['pid']})",
                hint="stop it first: a second relay (whatever its id) would "
                "publish the same changes again; to share the work, give each "
                "relay its own --schema",
            )
    path = status_dir(conf) / f"{config.relay_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    create_time = psutil.Process().create_time()
    last_write = [0.0]

    last_state = [""]

    def write_status(stats: RelayStats, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not status_due(
            stats.state, last_state[0], now - last_write[0]
        ):
            return
        last_write[0], last_state[0] = now, stats.state
        data = stats.to_json() | {
            "relay_id": config.relay_id,
            "create_time": create_time,
        }
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay = Relay(conf, config, on_stats=write_status)
    if not args.json:
        print(
            f"relay {config.relay_id} running ({config.mode}); Ctrl+C stops it",
            flush=True,
        )
    try:
        relay.run(stop)
    except RelayError:
        write_status(relay.stats, force=True)
        raise
    write_status(relay.stats, force=True)
    emit(
        args.json,
        relay.stats.to_json(),
        lambda: f"relay stopped: {relay.stats.published} changes published",
    )
    return 0


# -- tail ---------------------------------------------------------------------


def _register_tail(sub: argparse._SubParsersAction) -> None:
    tail = sub.add_parser("tail", help="print key and value of each record of a topic")
    tail.add_argument("topic")
    tail.add_argument(
        "--isolation",
        choices=("read_committed", "read_uncommitted"),
        default="read_committed",
    )
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record"
    )
    tail.add_argument("--max", type=int, default=0, help="stop after N records")
    tail.add_argument(
        "--timeout", type=float, default=0, help="stop after S seconds of silence"
    )
    tail.add_argument("--bootstrap", default="")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(handler=_cmd_tail)


def _cmd_tail(args: argparse.Namespace, conf: Settings) -> int:
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaException,
        TopicPartition,
    )

    from core.errors import KafkaUnreachableError
    from core.kafka.connection import ClientLog

    bootstrap = args.bootstrap or conf.bootstrap_servers
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"cdc-studio-tail-{uuid.uuid4().hex[:8]}",
        "isolation.level": args.isolation,
        "enable.auto.commit": False,
        "logger": ClientLog(),  # brokers being down is said once, below
    }
    consumer = Consumer(config)
    count = 0
    try:
        try:
            listed = consumer.list_topics(
                args.topic, timeout=min(10, args.timeout or 10)
            )
        except KafkaException as exc:
            raise KafkaUnreachableError(
                f"No broker at {bootstrap} answers: {exc.args[0].str()}",
                hint="start the stack (`cdc-studio stack up`) or check --bootstrap",
            ) from exc
        metadata = listed.topics.get(args.topic)
        if metadata is None or metadata.error is not None:
            raise RelayError(
                f"Topic {args.topic} does not exist",
                hint="list topics with `cdc-studio cluster` or start the relay",
            )
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign(
            [TopicPartition(args.topic, p, start) for p in sorted(metadata.partitions)]
        )
        silent_since = time.monotonic()
        while not args.max or count < args.max:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                if args.timeout and time.monotonic() - silent_since > args.timeout:
                    break
                continue
            silent_since = time.monotonic()
            count += 1
            raw_key, raw_value = msg.key(), msg.value()
            key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
            value = raw_value.decode("utf-8", "replace") if raw_value else None
            if args.json:
                print(
                    json.dumps(
                        {
                            "partition": msg.partition(),
                            "offset": msg.offset(),
                            "key": key,
                            "value": value,
                        },
                        ensure_ascii=False,
                    ),
                    flush=True,
                )
            else:
                print(f"{_or_null(key)}\t{_or_null(value)}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


# -- workload -----------------------------------------------------------------


def _register_workload(sub: argparse._SubParsersAction) -> None:
    work = sub.add_parser(
        "workload", help="shop transactions against H2 (setup creates the schema)"
    )
    work.add_argument("action", nargs="?", choices=("run", "setup"), default="run")
    work.add_argument("--rate", type=float, default=20, help="transactions per second")
    work.add_argument("--duration", type=float, default=60, help="seconds")
    work.add_argument("--seed", type=int, default=0)
    work.add_argument("--rollback-ratio", type=float, default=0.05)
    work.add_argument("--schema", default="SHOP")
    work.add_argument(
        "--no-capture", action="store_true", help="setup: do not capture the tables"
    )
    work.add_argument("--json", action="store_true")
    work.set_defaults(handler=_cmd_workload)


def _cmd_workload(args: argparse.Namespace, conf: Settings) -> int:
    from core import workload
    from core.h2.connection import H2Connection

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with H2Connection(conf) as conn:
        tables = workload.ensure_shop(
            conn, capture=not args.no_capture, schema=args.schema
        )
        if args.action == "setup":
            emit(
                args.json,
                {"tables": [t.name for t in tables]},
                lambda: f"shop ready: {', '.join(t.name for t in tables)}",
            )
            return 0
        runner = workload.Workload(
            conn, seed=args.seed, rollback_ratio=args.rollback_ratio, schema=args.schema
        )
        stats = runner.run(args.rate, args.duration, stop)
    emit(
        args.json,
        {
            "committed": stats.committed,
            "rolled_back": stats.rolled_back,
            "rows": stats.rows,
            "by_kind": stats.by_kind,
        },
        lambda: (
            f"{stats.committed} transactions committed, {stats.rolled_back} "
            f"rolled back, {stats.rows} rows changed"
        ),
    )
    return 0


# -- webhook ------------------------------------------------------------------


def _register_webhook(sub: argparse._SubParsersAction) -> None:
    hook = sub.add_parser(
        "webhook", help="the webhook receiver (unreliable path, for comparison)"
    )
    hook.add_argument("action", nargs="?", choices=("run",), default="run")
    hook.add_argument("--port", type=int, default=0, help="default: any free port")
    hook.add_argument("--prefix", default="h2", help="topic prefix")
    hook.add_argument("--duration", type=float, default=0, help="seconds (0: until ^C)")
    hook.add_argument(
        "--table",
        action="append",
        default=[],
        help="create this table's topic before changes arrive (repeat)",
    )
    hook.add_argument("--schema", default="PUBLIC", help="schema of --table")
    hook.add_argument("--json", action="store_true")
    hook.set_defaults(handler=_cmd_webhook)


def _cmd_webhook(args: argparse.Namespace, conf: Settings) -> int:
    from core.cdc.webhook import WebhookReceiver

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    receiver = WebhookReceiver(conf, port=args.port, prefix=args.prefix)
    url = receiver.start()
    if args.table:
        try:
            receiver.prepare(args.schema, args.table)
        except BaseException:
            receiver.stop()
            raise
    emit(
        args.json,
        {"url": url, "token": receiver.token},
        lambda: (
            f"receiver at {url}\ntoken {receiver.token}\ncapture with: "
            f"cdc-studio capture add TABLE --mode webhook --webhook-url {url} "
            f"--webhook-token {receiver.token}"
        ),
    )
    sys.stdout.flush()
    try:
        stop.wait(args.duration or None)
    finally:
        receiver.stop()
    emit(
        args.json,
        receiver.to_json(),
        lambda: (
            f"received {receiver.stats.received}, produced "
            f"{receiver.stats.produced}, refused {receiver.stats.refused}"
        ),
    )
    return 0


def _release(args: argparse.Namespace, conf: Settings) -> int:
    """Drop a schema's claim, for a relay that will never run again."""
    from core.h2 import outbox
    from core.h2.connection import H2Connection

    if not args.schema_name:
        raise RelayError(
            "Which schema's claim should be released?",
            hint="cdc-studio relay release SCHEMA (see `cdc-studio relay status`)",
        )
    with H2Connection(conf) as conn:
        owner = outbox.claims(conn).get(args.schema_name)
        running = [
            s
            for s in read_statuses(conf)
            if owner and s.get("relay_id") == owner and s["alive"]
        ]
        if running and not args.force:
            raise RelayError(
                f"Relay {owner} is running (pid {running[0]['pid']}) and holds "
                f"{args.schema_name}: released, another relay would publish the "
                "same changes again",
                hint=f"stop relay {owner} (a clean stop gives the claim back); "
                "--force drops it anyway",
            )
        owner = outbox.release_schema(conn, args.schema_name)
    emit(
        args.json,
        {"schema": args.schema_name, "released_from": owner},
        lambda: (
            f"released {args.schema_name} from relay {owner}: relays for all "
            "schemas publish it again"
            if owner
            else f"{args.schema_name} was not claimed"
        ),
    )
    return 0


def _or_null(text: str | None) -> str:
    """A record's key or value for people: a null one as "(null)"."""
    return "(null)" if text is None else text
