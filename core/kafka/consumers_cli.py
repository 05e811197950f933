"""CLI for consumers: `lag`, `consume`, `group start|stop`, `isolation`, `txn`."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from core.cli import emit, positive_count, positive_seconds, table
from core.errors import ConsumerError
from core.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    lag = sub.add_parser("lag", help="consumer lag per group and partition")
    lag.add_argument("--group", action="append", help="a group (default: all)")
    lag.add_argument("--topic", action="append", help="only these topics")
    lag.add_argument(
        "--isolation",
        choices=("read_committed", "read_uncommitted"),
        default="read_uncommitted",
        help="the groups' isolation level (Kafka cannot tell)",
    )
    lag.add_argument(
        "--reset",
        choices=("earliest", "latest", "none"),
        default="latest",
        help="the groups' auto.offset.reset",
    )
    lag.add_argument(
        "--watch",
        type=positive_seconds,
        metavar="SECONDS",
        help="sample again every SECONDS until Ctrl-C",
    )
    lag.add_argument(
        "--producers",
        action="store_true",
        help="name the producer of each open transaction (runs Kafka's "
        "kafka-transactions tool: a few seconds per pinned partition)",
    )
    _client_options(lag)
    lag.set_defaults(handler=_cmd_lag)

    for name in ("consume",):  # `tail` (no group, no headers) is the capture CLI's
        tail = sub.add_parser(
            name, help="print every record of a topic (key, value, headers, ...)"
        )
        tail.add_argument("topic")
        tail.add_argument("--group", help="read as a member of this group")
        tail.add_argument(
            "--isolation",
            default="read_uncommitted",
            choices=("read_committed", "read_uncommitted"),
        )
        tail.add_argument("--from-beginning", action="store_true")
        tail.add_argument(
            "--count", type=positive_count, help="stop after COUNT records"
        )
        _client_options(tail)
        tail.set_defaults(handler=_cmd_tail)

    iso = sub.add_parser(
        "isolation", help="a topic through read_committed and read_uncommitted"
    )
    iso.add_argument("topic")
    iso.add_argument("--seconds", type=positive_seconds, help="stop after SECONDS")
    _client_options(iso)
    iso.set_defaults(handler=_cmd_isolation)

    txn = sub.add_parser("txn", help="a transaction a trainer commits or aborts")
    txn.add_argument("topic")
    txn.add_argument("--count", type=positive_count, default=5, help="records to write")
    txn.add_argument("--partition", type=int)
    txn.add_argument(
        "--then",
        choices=("commit", "abort", "hold", "ask"),
        default="ask",
        help="what to do once written (ask: prompt)",
    )
    txn.add_argument(
        "--hold-seconds",
        type=positive_seconds,
        default=30.0,
        help="with --then hold: keep it open this long, then abort",
    )
    _client_options(txn)
    txn.set_defaults(handler=_cmd_txn)

    group = sub.add_parser("group", help="consumer groups of member processes")
    actions = group.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="run a group here until Ctrl-C")
    start.add_argument("--group", required=True)
    start.add_argument("--topic", action="append", required=True)
    start.add_argument("--members", type=int, default=1)
    start.add_argument(
        "--semantics",
        default="at-least-once",
        choices=(
            "at-most-once",
            "at-least-once",
            "exactly-once-kafka",
            "exactly-once-h2",
        ),
    )
    start.add_argument(
        "--isolation",
        default="read_committed",
        choices=("read_committed", "read_uncommitted"),
    )
    start.add_argument("--output-path", help="processed records (JSON lines)")
    start.add_argument("--output-topic", help="exactly-once-kafka: where to write")
    start.add_argument("--sink-table", default="CONSUMER_SINK")
    start.add_argument("--batch-size", type=int, default=10)
    start.add_argument("--delay-ms", type=float, default=0.0)
    start.add_argument("--failure-rate", type=float, default=0.0)
    start.add_argument("--crash-point")
    start.add_argument("--crash-after", type=int, default=0)
    _client_options(start)
    stop = actions.add_parser("stop", help="stop the members `group start` runs")
    stop.add_argument("--group", required=True)
    stop.add_argument("--json", action="store_true")
    for action in (start, stop):
        action.set_defaults(handler=_cmd_group)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="bootstrap servers (default: the stack)")
    parser.add_argument(
        "--profile", metavar="NAME", help="a connection profile (external cluster)"
    )
    parser.add_argument("--json", action="store_true", help="JSON output")


def client_config(args: argparse.Namespace, conf: Settings) -> dict[str, Any]:
    """librdkafka settings for ``--profile``, ``--bootstrap`` or the stack."""
    if getattr(args, "profile", None):
        from core.kafka import profiles

        profile = profiles.get(profiles.profiles_path(args.config), args.profile)
        return profile.client_config(profiles.password_for(profile, None))
    return {"bootstrap.servers": args.bootstrap or conf.bootstrap_servers}


def _cmd_lag(args: argparse.Namespace, conf: Settings) -> int:
    from core.kafka.lag import (
        GroupTarget,
        LagReader,
        LagSample,
        PinningProducer,
        name_pinning_producers,
    )

    client = client_config(args, conf)
    reader = LagReader(client)
    known: dict[tuple[str, int, int], PinningProducer | None] = {}
    try:
        while True:
            names = args.group or reader.groups()
            topics = tuple(args.topic) if args.topic else None
            targets = [
                GroupTarget(g, topics, args.isolation, args.reset) for g in names
            ]
            sample: LagSample = reader.sample(targets)
            if topics and not args.group:
                # Every group was asked: show those with an offset in the topics.
                sample.groups[:] = [
                    g
                    for g in sample.groups
                    if any(p.committed is not None for p in g.partitions)
                ]
            if args.producers:
                bootstrap = str(client["bootstrap.servers"])
                sample = name_pinning_producers(sample, conf, bootstrap, known)
            emit(args.json, sample.to_json(), functools.partial(_lag_text, sample))
            if not args.watch:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def _lag_text(sample: Any) -> str:
    from core.kafka.lag import CELL_NAMES

    rows = [[g.group, *p.cells()] for g in sample.groups for p in g.partitions]
    columns = ["group", *CELL_NAMES]
    return table(columns, rows) + f"\nsampled in {sample.took_s:.3f} s"


def _cmd_tail(args: argparse.Namespace, conf: Settings) -> int:
    from core.kafka.tail import Tail

    tail = Tail(
        client_config(args, conf),
        [args.topic],
        isolation=args.isolation,
        group_id=args.group,
        start="beginning" if args.from_beginning else "end",
    )
    seen = 0
    try:
        while args.count is None or seen < args.count:
            # Ask for no more than will be printed: with a group, what poll
            # hands over is what the group commits.
            wanted = 500 if args.count is None else args.count - seen
            for record in tail.poll(max_records=wanted, timeout=0.5):
                emit(
                    args.json, record.to_json(), functools.partial(_record_text, record)
                )
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        tail.close()
    return 0


def _text(value: object) -> str:
    return "(null)" if value is None else str(value)


def _record_text(record: Any) -> str:
    data = record.to_json()
    headers = f" headers={data['headers']}" if data["headers"] else ""
    return (
        f"{data['partition']}:{data['offset']} ts={data['timestamp_ms']} "
        f"key={_text(data['key'])} value={_text(data['value'])}{headers}"
    )


def _event_text(event: Any) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(event.at))
    return f"{at} {event.kind:<18} {event.message}"


def _cmd_isolation(args: argparse.Namespace, conf: Settings) -> int:
    from core.kafka.tail import IsolationPair

    pair = IsolationPair(client_config(args, conf), args.topic)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            update = pair.poll(0.3)
            for row in update.committed + update.uncommitted + update.settled:
                emit(args.json, row.to_json(), functools.partial(_pane_text, row))
    except KeyboardInterrupt:
        pass
    finally:
        pair.close()
    return 0


def _pane_text(row: Any) -> str:
    where = f"{row.pane:<11} {row.partition}:{row.offset}"
    if row.kind == "gap":
        return f"{where}-{row.until} gap (transaction marker or aborted records)"
    value = row.record.to_json()["value"] if row.record else None
    return f"{where} {row.status:<9} {value}"


def _cmd_txn(args: argparse.Namespace, conf: Settings) -> int:
    from core.kafka.txn_producer import TrainerProducer

    producer = TrainerProducer(client_config(args, conf), args.topic)
    try:
        values = producer.send(args.count, partition=args.partition)
        emit(
            args.json,
            {
                "transactional_id": producer.transactional_id,
                "written": values,
                "state": "open",
            },
            lambda: (
                f"wrote {', '.join(values)} in open transaction "
                f"{producer.transactional_id}"
            ),
        )
        then, why = args.then, None
        if then == "ask":
            then, why = _ask_commit_or_abort()
        if then == "hold":
            time.sleep(args.hold_seconds)
            then = "abort"
        getattr(producer, then)()
        state = "committed" if then == "commit" else "aborted"
        emit(
            args.json,
            {
                "transactional_id": producer.transactional_id,
                "state": state,
                "reason": why,
            },
            lambda: f"transaction {state}" + (f": {why}" if why else ""),
        )
    finally:
        producer.close()
    return 0


def _ask_commit_or_abort(tries: int = 3) -> tuple[str, str | None]:
    """The trainer's answer, "commit" or "abort", and why it is abort unasked.

    Prompts on stderr, so that stdout stays records (or JSON lines). The end
    of input, or no clear answer after ``tries``, aborts.
    """
    prompt = "commit or abort? [c/a] "
    for _ in range(tries):
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            return "abort", "no answer (end of input)"
        answer = line.strip().lower()
        if answer in ("c", "commit"):
            return "commit", None
        if answer in ("a", "abort"):
            return "abort", None
        prompt = "type c (commit) or a (abort): "
    return "abort", f"no answer of commit or abort after {tries} tries"


def _state_file(conf: Settings, group: str) -> Path:
    return conf.data_path / "consumers" / f"{group}.json"


def _cmd_group(args: argparse.Namespace, conf: Settings) -> int:
    if args.action == "stop":
        return _stop_group(args, conf)

    from core.kafka.consumers import ConsumerGroup
    from core.kafka.member import MemberSpec

    spec = MemberSpec(
        client=client_config(args, conf),
        group_id=args.group,
        topics=args.topic,
        semantics=args.semantics,
        isolation=args.isolation,
        output_path=args.output_path,
        output_topic=args.output_topic,
        sink_table=args.sink_table,
        batch_size=args.batch_size,
        delay_ms=args.delay_ms,
        failure_rate=args.failure_rate,
        crash_point=args.crash_point,
        crash_after=args.crash_after,
        settings=dataclasses.asdict(conf),
    )
    group = ConsumerGroup(spec, log_dir=conf.data_path / "logs" / "members")
    group.subscribe(
        lambda e: emit(args.json, e.to_json(), functools.partial(_event_text, e))
    )
    state = _state_file(conf, args.group)
    state.parent.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        group.start(args.members)
        state.write_text(
            json.dumps(
                {"pid": os.getpid(), "members": [m.pid for m in group.members()]}
            )
        )
        while not stopping.is_set() and any(m.alive for m in group.members()):
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        group.close()
        state.unlink(missing_ok=True)
    return 0


def _stop_group(args: argparse.Namespace, conf: Settings) -> int:
    state = _state_file(conf, args.group)
    if not state.exists():
        raise ConsumerError(
            f"No running `group start` for {args.group} here",
            hint=f"it records itself in {state.parent}",
        )
    pid = int(json.loads(state.read_text())["pid"])
    try:
        runner = psutil.Process(pid)
        ours = "group" in runner.cmdline() and args.group in runner.cmdline()
    except psutil.Error:
        ours = False
    if not ours:
        state.unlink(missing_ok=True)
        emit(
            args.json,
            {"group": args.group, "stopped": False},
            lambda: f"group {args.group} was not running",
        )
        return 0
    runner.send_signal(signal.SIGTERM)
    runner.wait(60)
    emit(
        args.json,
        {"group": args.group, "stopped": True},
        lambda: f"group {args.group} stopped",
    )
    return 0
