"""The `cdc-studio` command: the scriptable face of everything the GUI does."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import logging.handlers
import math
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import jvm, settings
from core.errors import H2Error, StudioError

log = logging.getLogger(__name__)

# Feature modules that add subcommands. Each has `register(sub)`, which adds
# its parsers and sets `handler=fn(args, conf) -> int` as their default. Every
# `core/<package>/cli.py` is found by itself; FEATURES names any others.
FEATURES: tuple[str, ...] = ("core.kafka.cluster_cli", "core.kafka.consumers_cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdc-studio",
        description="Kafka CDC Studio. With no command it opens the GUI on the "
        "embedded stack.",
    )
    parser.add_argument("--config", type=Path, help="settings file (TOML)")
    parser.add_argument(
        "--data-dir", type=Path, help="data folder (overrides settings)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log INFO to stderr"
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="GUI: save a picture of the window once the stack is up",
    )
    parser.add_argument(
        "--no-stack",
        action="store_true",
        help="GUI: do not start the embedded stack on opening",
    )
    parser.add_argument(
        "--workload",
        action="store_true",
        help="GUI: once the stack is up, start the relay and the shop workload so "
        "changes flow",
    )
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="GUI: full screen, large type, no editing controls (a wall display)",
    )
    sub = parser.add_subparsers(dest="command")

    stack = sub.add_parser(
        "stack", help="the embedded stack: up, status, down, stop/kill/start a broker"
    )
    stack_sub = stack.add_subparsers(dest="action", required=True)
    up = stack_sub.add_parser("up", help="start the stack (reuses a running one)")
    up.add_argument(
        "--brokers",
        type=_broker_count,
        help="number of brokers, 1-9 (default: as the stack was set up, else the "
        "setting kafka.brokers, 3)",
    )
    up.add_argument("--json", action="store_true")
    status = stack_sub.add_parser("status", help="every node: role, pid, port, state")
    status.add_argument("--json", action="store_true")
    down = stack_sub.add_parser("down", help="stop every node the stack started")
    down.add_argument(
        "--wipe",
        action="store_true",
        help="also delete the stack's data (topics, database, runs); keeps jvm/ "
        "and logs/",
    )
    down.add_argument("--json", action="store_true")
    for action, text in (
        ("kill-broker", "kill a broker with SIGKILL"),
        ("stop-broker", "stop a broker cleanly"),
        ("start-broker", "start a stopped broker"),
    ):
        node = stack_sub.add_parser(action, help=text)
        node.add_argument("broker_id", type=int, metavar="ID")
        node.add_argument("--json", action="store_true")

    sql = sub.add_parser("sql", help="run one SQL statement against the configured H2")
    sql.add_argument("statement")
    sql.add_argument("--json", action="store_true")

    jvm_cmd = sub.add_parser("jvm", help="the JVM module (Kafka, H2, our classes)")
    jvm_sub = jvm_cmd.add_subparsers(dest="action", required=True)
    jvm_sub.add_parser("build", help="build it with Maven unless up to date")

    for name in _feature_modules():
        importlib.import_module(name).register(sub)
    return parser


def _feature_modules() -> list[str]:
    core_dir = Path(__file__).parent
    found = sorted(f"core.{p.parent.name}.cli" for p in core_dir.glob("*/cli.py"))
    return list(dict.fromkeys([*found, *FEATURES]))


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds: give one above 0, such as 2 or 0.5"
        )
    return seconds


def positive_count(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count: give a whole number of 1 or more"
        )
    return count


def _broker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not settings.MIN_BROKERS <= count <= settings.MAX_BROKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a broker count: give {settings.MIN_BROKERS} to "
            f"{settings.MAX_BROKERS}"
        )
    return count


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(data_dir: Path, verbose: bool) -> None:
    """Log to stderr (warnings, or INFO with -v) and to the data folder's log file.

    Calling it again (main() run twice in one process) replaces its handlers.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_cdc_studio", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    console = _StderrHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console._cdc_studio = True  # type: ignore[attr-defined]
    root.addHandler(console)
    try:
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            data_dir / "logs" / "cdc-studio.log", maxBytes=5_000_000, backupCount=3
        )
    except OSError:
        return
    file_handler.setLevel(logging.INFO)
    file_handler._cdc_studio = True  # type: ignore[attr-defined]
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(file_handler)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as strings: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return (
            "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        )
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def emit(as_json: bool, data: dict[str, Any], text: Callable[[], str]) -> None:
    if as_json:
        print(
            json.dumps(
                _json_safe(data),
                default=_json_default,
                ensure_ascii=False,
                allow_nan=False,
            )
        )
    else:
        print(text())


def _status_text(status: Any) -> str:
    lines = [
        f"data folder:  {status.data_dir}",
        f"cluster id:   {status.cluster_id or '(not formatted yet)'}",
        f"bootstrap:    {status.bootstrap_servers}",
        f"H2:           {status.h2_url}",
        "",
        f"{'NODE':<12}{'ROLE':<12}{'ID':>4}  {'STATE':<6}{'PID':>8}  {'PORT':>6}  RACK",
    ]
    for node in status.nodes:
        lines.append(
            f"{node.name:<12}{node.role:<12}"
            f"{'' if node.node_id is None else node.node_id:>4}  "
            f"{'up' if node.up else 'down':<6}"
            f"{node.pid if node.up and node.pid else '-':>8}  {node.port:>6}  "
            f"{node.rack or '-'}"
        )
    if not status.nodes:
        lines.append("(no stack here yet: start one with `cdc-studio stack up`)")
    return "\n".join(lines)


def _cmd_stack(args: argparse.Namespace, conf: settings.Settings) -> int:
    from core.stack import Stack

    stack = Stack(conf)
    if args.action == "up":
        progress = (
            None if args.json else (lambda message: print(f"  {message}", flush=True))
        )
        status, reused = stack.up(brokers=args.brokers, progress=progress)
        emit(
            args.json,
            status.to_json() | {"reused": reused},
            lambda: _status_text(status),
        )
    elif args.action == "status":
        status = stack.status()
        emit(args.json, status.to_json(), lambda: _status_text(status))
    elif args.action == "down":
        stopped = stack.down(wipe=args.wipe)
        emit(
            args.json,
            {"stopped": stopped, "wiped": args.wipe},
            lambda: (
                f"stopped: {', '.join(stopped) or 'nothing was running'}"
                + (
                    f"\nwiped the stack's data in {conf.data_path} "
                    "(kept jvm/ and logs/)"
                    if args.wipe
                    else ""
                )
            ),
        )
    else:
        verb = args.action.split("-")[0]
        action = {
            "kill": stack.kill_broker,
            "stop": stack.stop_broker,
            "start": stack.start_broker,
        }[verb]
        changed = action(args.broker_id)
        done = {"kill": "killed", "stop": "stopped", "start": "started"}[verb]
        emit(
            args.json,
            {"broker": args.broker_id, "action": verb, "changed": changed},
            lambda: (
                f"broker {args.broker_id} {done}"
                if changed
                else f"broker {args.broker_id} was already "
                f"{'up' if verb == 'start' else 'down'}"
            ),
        )
    return 0


def _cmd_sql(args: argparse.Namespace, conf: settings.Settings) -> int:
    from core.h2.connection import H2Connection

    if not args.statement.strip():
        raise H2Error("No SQL statement was given", hint='cdc-studio sql "SELECT 1"')
    with H2Connection(conf) as conn:
        result = conn.run(args.statement)
    if result.update_count is not None:
        emit(
            args.json,
            {"update_count": result.update_count},
            lambda: f"{result.update_count} row(s) affected",
        )
        return 0
    emit(
        args.json,
        {"columns": result.columns, "types": result.types, "rows": result.rows},
        lambda: table(result.columns, result.rows),
    )
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and not math.isfinite(value):
        return str(_json_safe(value))
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide characters take two."""
    return sum(
        0
        if unicodedata.combining(c)
        else 2
        if unicodedata.east_asian_width(c) in "WF"
        else 1
        for c in text
    )


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max([_width(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)
    ]
    line = " | ".join(_pad(c, w) for c, w in zip(columns, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    out += [
        " | ".join(_pad(v, w) for v, w in zip(r, widths, strict=True)) for r in cells
    ]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


OpenGui = Callable[..., int]


def main(argv: Sequence[str] | None = None, open_gui: OpenGui | None = None) -> int:
    """Run the command in ``argv``; with no command, call ``open_gui``.

    The GUI comes in from outside (``gui.launch``) so that `core` never
    imports Qt, and commands without a window never load it.
    """
    args = _parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        conf = settings.load(args.config)
        if args.data_dir:
            conf.data_dir = str(args.data_dir)
        _setup_logging(conf.data_path, args.verbose)

        if args.command is None:
            if open_gui is None:
                raise StudioError(
                    "This entry point has no GUI",
                    hint="run the `cdc-studio` command to open the window",
                )
            return open_gui(
                conf,
                screenshot=args.screenshot,
                start_stack=not args.no_stack,
                dashboard=args.dashboard,
                workload=args.workload,
            )
        if hasattr(args, "handler"):
            return int(args.handler(args, conf))
        if args.command == "stack":
            return _cmd_stack(args, conf)
        if args.command == "sql":
            return _cmd_sql(args, conf)
        if args.command == "jvm":
            build = jvm.ensure_built(conf)
            print(f"JVM module ready: {build.root} ({len(build.jars())} jars)")
            return 0
    except StudioError as exc:
        log.info("command failed: %s", exc.args[0] if exc.args else exc)
        if as_json:
            print(json.dumps({"error": str(exc.args[0]), "hint": exc.hint}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): say nothing more, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        log.info("command failed: %s", exc)
        message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        hint = "check the data folder (--data-dir, data_dir) and its permissions"
        if as_json:
            print(json.dumps({"error": message, "hint": hint}))
        else:
            print(f"error: {message}\n  -> {hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
