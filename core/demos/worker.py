"""A demo worker process: produces or processes records and crashes on cue.

Run as ``python -m core.demos.worker SPEC.json``. The spec names the role and
everything it needs. The worker reports on its standard output, one JSON
object a line; at a named crash point it reports the point and then kills
itself with SIGKILL, so the crash is real. At a named hold point it reports
and waits for a line on its standard input before going on.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

# Exit statuses of a worker that did not crash.
EXIT_DONE = 0
EXIT_FENCED = 3
EXIT_FAILED = 4

_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}

Record = tuple[str, str, int]


class Reporter:
    """Writes the worker's events to stdout and handles crash and hold points."""

    def __init__(
        self, name: str, crash_at: str | None, hold_at: str | list[str] | None
    ) -> None:
        self.name = name
        self.crash_at = crash_at
        self.hold_at = [hold_at] if isinstance(hold_at, str) else list(hold_at or [])
        self.reached: dict[str, int] = {}

    def say(self, kind: str, text: str = "", **extra: Any) -> None:
        line = {"kind": kind, "worker": self.name, "text": text, **extra}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def point(self, name: str) -> None:
        """Pass the named point; ``name#n`` is its n-th passage (1-based)."""
        n = self.reached.get(name, 0) + 1
        self.reached[name] = n
        here = {name, f"{name}#{n}"}
        if self.crash_at in here:
            self.say("crash", f"crash point {name} reached: SIGKILL", point=name, n=n)
            os.kill(os.getpid(), signal.SIGKILL)
        if here & set(self.hold_at):
            self.say("hold", f"holding at {name}", point=name, n=n)
            sys.stdin.readline()
            self.say("go", f"going on from {name}", point=name, n=n)


def _value(record: Record) -> bytes:
    record_id, key, seq = record
    return json.dumps({"id": record_id, "key": key, "seq": seq}).encode()


def _ids(messages: list[Message]) -> list[str]:
    ids = []
    for message in messages:
        raw = message.value()
        if raw is not None:
            ids.append(json.loads(raw)["id"])
    return ids


def _producer_config(spec: dict[str, Any]) -> dict[str, Any]:
    config = {"bootstrap.servers": spec["bootstrap"], "client.id": spec["name"]}
    config.update(spec.get("config", {}))
    return config


def run_producer(spec: dict[str, Any], report: Reporter) -> int:
    """Produce the records in batches; flush after each and report acks."""
    producer = Producer(_producer_config(spec))
    acked: list[Message] = []
    failed: list[Message] = []

    def delivered(err: KafkaError | None, message: Message) -> None:
        (failed if err is not None else acked).append(message)

    records: list[Record] = [tuple(r) for r in spec["records"]]
    batch = int(spec.get("batch", 10))
    for start in range(0, len(records), batch):
        report.point("before_batch")
        for record in records[start : start + batch]:
            producer.produce(
                spec["topic"],
                key=record[1].encode(),
                value=_value(record),
                on_delivery=delivered,
            )
            producer.poll(0)
        producer.flush(float(spec.get("flush_timeout", 30)))
        report.say("produced", "acknowledged", count=len(acked), ids=_ids(acked))
        if failed:
            errors = sorted({str(m.error()) for m in failed})
            report.say(
                "refused",
                "not acknowledged: " + "; ".join(errors),
                count=len(failed),
                ids=_ids(failed),
            )
        acked.clear()
        failed.clear()
        report.point("after_batch")
    report.say("done", "all batches sent")
    return EXIT_DONE


def _retrying(call: Callable[[], Any], report: Reporter, what: str) -> Any:
    """Call a transactional API; retry while its error is retriable."""
    for _ in range(20):
        try:
            return call()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.retriable() and not error.fatal():
                report.say("retry", f"{what}: {error.str()}")
                time.sleep(0.2)
                continue
            raise
    return call()


def run_txn_producer(spec: dict[str, Any], report: Reporter) -> int:
    """Produce the records in transactions of ``txn_size`` records each."""
    config = _producer_config(spec) | {"transactional.id": spec["transactional_id"]}
    producer = Producer(config)
    try:
        report.point("before_init")
        _retrying(lambda: producer.init_transactions(60), report, "init_transactions")
        report.say("ready", f"transactional id {spec['transactional_id']} ready")
        report.point("after_init")

        records: list[Record] = [tuple(r) for r in spec["records"]]
        size = int(spec.get("txn_size", len(records) or 1))
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            producer.begin_transaction()
            for record in chunk:
                producer.produce(
                    spec["topic"], key=record[1].encode(), value=_value(record)
                )
                producer.poll(0)
            producer.flush(30)
            report.say(
                "produced",
                "written, not committed",
                count=len(chunk),
                ids=[r[0] for r in chunk],
            )
            report.point("before_commit")
            late: list[Record] = [tuple(r) for r in spec.get("late_records", [])]
            if late and report.reached.get("before_commit") == 1:
                for record in late:
                    producer.produce(
                        spec["topic"], key=record[1].encode(), value=_value(record)
                    )
                producer.flush(30)
                report.say(
                    "produced",
                    "late records written after the hold",
                    count=len(late),
                    ids=[r[0] for r in late],
                )
                chunk = chunk + late
            _retrying(lambda: producer.commit_transaction(30), report, "commit")
            report.say(
                "committed",
                "transaction committed",
                count=len(chunk),
                ids=[r[0] for r in chunk],
            )
            report.point("after_commit")
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() in _FENCED:
            report.say("fenced", f"fenced: {error.str()}", code=error.name())
            return EXIT_FENCED
        report.say("error", error.str(), code=error.name(), fatal=error.fatal())
        return EXIT_FAILED
    report.say("done", "all transactions committed")
    return EXIT_DONE


def _settings(spec: dict[str, Any]) -> Any:
    from core import settings as settings_module

    return settings_module.load(Path(spec["settings_file"]))


def run_workload(spec: dict[str, Any], report: Reporter) -> int:
    """Create and capture a shop schema; run seeded transactions on it.

    It runs ``transactions`` transactions at least, and on until ``stop_file``
    exists when one is given.

    Each committed transaction is reported with the outbox sequence numbers
    its changes got (read inside the transaction, just before the commit):
    that is the ledger of what the relay must publish.
    """
    from core import workload
    from core.h2 import outbox, triggers
    from core.h2.connection import H2Connection

    schema = spec["schema"]
    with H2Connection(_settings(spec)) as conn:
        triggers.ensure_metadata(conn)
        conn.run(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        # Claimed for the demo's relay from the start, before that relay runs:
        # a relay the user runs for all schemas never takes a demo's changes.
        outbox.claim(conn, (schema,), spec["claim_for"])
        workload.ensure_shop(conn, schema=schema)
        seeded = conn.query(
            f"SELECT SEQ FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ?", [schema]
        )
        if seeded:
            report.say(
                "committed",
                "seed rows captured",
                count=len(seeded),
                ids=[str(r[0]) for r in seeded],
            )
        report.say("ready", f"schema {schema} created and captured")
        report.point("before_workload")

        pending: list[str] = []

        def ledger(tx: H2Connection) -> None:
            rows = tx.query(
                f"SELECT SEQ FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ? "
                "AND TX_ID LIKE '%-' || CAST(TRANSACTION_ID() AS VARCHAR)",
                [schema],
            )
            pending[:] = [str(r[0]) for r in rows]

        shop = workload.Workload(
            conn,
            seed=int(spec.get("seed", 0)),
            schema=schema,
            before_commit=ledger,
            rollback_ratio=float(spec.get("rollback_ratio", 0.05)),
        )
        pause = 1.0 / float(spec.get("rate", 20))
        minimum = int(spec["transactions"])
        stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
        done = 0
        while done < minimum or (stop_file is not None and not stop_file.exists()):
            done += 1
            pending.clear()
            result = shop.step()
            if result.committed:
                report.say(
                    "committed",
                    "transaction committed",
                    count=len(pending),
                    ids=list(pending),
                )
            else:
                report.say("aborted", "transaction rolled back", count=1)
            time.sleep(pause)
    report.say("done", "workload finished")
    return EXIT_DONE


def run_workload_cleanup(spec: dict[str, Any], report: Reporter) -> int:
    """Remove a demo schema: capture rules, outbox rows, tables."""
    from core import workload
    from core.h2 import triggers
    from core.h2.connection import H2Connection

    schema = spec["schema"]
    with H2Connection(_settings(spec)) as conn:
        for table in spec.get("tables", workload.TABLES):
            triggers.remove_rule(conn, schema, table)
        conn.run(f"DELETE FROM {triggers.OUTBOX} WHERE TABLE_SCHEMA = ?", [schema])
        conn.run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.run(f"DELETE FROM {triggers.CLAIMS} WHERE TABLE_SCHEMA = ?", [schema])
    report.say("done", f"schema {schema} removed")
    return EXIT_DONE


def run_dual_capture(spec: dict[str, Any], report: Reporter) -> int:
    """The same changes captured by the webhook path and by the outbox.

    Tables HOOKED (webhook rule) and BOXED (outbox rule) get the same rows in
    the same transactions; each row carries a change id. The transactions run
    in phases (``phases``: how many in each), holding at ``phase`` between
    them. In each phase the first transaction commits and the second rolls
    back; the others roll back with probability ``rollback_ratio``.
    """
    import random

    from core.h2 import outbox, triggers
    from core.h2.connection import H2Connection
    from core.h2.triggers import CaptureRule

    schema = spec["schema"]
    quoted = f'"{schema}"'
    rng = random.Random(int(spec.get("seed", 0)))
    ratio = float(spec.get("rollback_ratio", 0.25))
    with H2Connection(_settings(spec)) as conn:
        triggers.ensure_metadata(conn)
        conn.run(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        # Claimed for the demo's relay from the start, before that relay runs:
        # a relay the user runs for all schemas never takes a demo's changes.
        outbox.claim(conn, (schema,), spec["claim_for"])
        for table in ("HOOKED", "BOXED"):
            conn.run(
                f"CREATE TABLE {quoted}.{table} (ID INT PRIMARY KEY, "
                "CHANGE_ID VARCHAR(64) NOT NULL)"
            )
        triggers.add_rule(
            conn,
            CaptureRule(
                schema,
                "HOOKED",
                mode="webhook",
                webhook_url=spec["url"],
                webhook_token=spec["token"],
            ),
        )
        triggers.add_rule(conn, CaptureRule(schema, "BOXED"))
        report.say("ready", f"schema {schema} captured by webhook and outbox")

        row = 0
        for phase, count in enumerate(spec["phases"], start=1):
            report.point("phase")
            for n in range(int(count)):
                conn.set_autocommit(False)
                ids = []
                for _ in range(rng.randint(1, 3)):
                    row += 1
                    change = f"p{phase}-c{row:05d}"
                    ids.append(change)
                    for table in ("HOOKED", "BOXED"):
                        conn.run(
                            f"INSERT INTO {quoted}.{table} VALUES (?, ?)", [row, change]
                        )
                commit = n == 0 or (n != 1 and rng.random() >= ratio)
                if commit:
                    conn.commit()
                else:
                    conn.rollback()
                conn.set_autocommit(True)
                kind = "committed" if commit else "aborted"
                report.say(kind, f"phase {phase}", count=len(ids), ids=ids, phase=phase)
    report.say("done", "all phases done")
    return EXIT_DONE


ROLES: dict[str, Callable[[dict[str, Any], Reporter], int]] = {
    "producer": run_producer,
    "txn-producer": run_txn_producer,
    "workload": run_workload,
    "workload-cleanup": run_workload_cleanup,
    "dual-capture": run_dual_capture,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    report = Reporter(spec["name"], spec.get("crash_at"), spec.get("hold_at"))
    report.say("started", f"{spec['role']} pid {os.getpid()}", pid=os.getpid())
    role = ROLES[spec["role"]]
    return role(spec, report)


if __name__ == "__main__":
    sys.exit(main())
