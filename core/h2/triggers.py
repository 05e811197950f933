"""The trigger manager: capture rules in the database and the triggers they install.

API (used by the CLI, the GUI and the demos):

- ``ensure_metadata(conn)``: create the ``CDC_STUDIO`` schema (rule tables,
  outbox, rejected outbox rows, relay claims, ``CDC_HTTP_POST`` and version
  functions) if
  missing, and check that the server runs our capture classes; raises
  ``CaptureError`` otherwise. Idempotent.
- ``add_rule(conn, rule)``: store the rule and (re)install the table's
  trigger; adding the same rule twice is harmless, and adding a changed rule
  for a table replaces the old one ("change").
- ``remove_rule(conn, schema, table)``, ``list_rules(conn)``, ``get_rule``.

The rule is evaluated in the server by ``studio.cdc.capture.CaptureTrigger``:
operations; for updates, the columns of which at least one must really
change (compared on their exact serialised values); a predicate in SQL over
the new row (the old row for deletes) such as ``STATUS = 'PAID' AND TOTAL >
100``. Identifiers are used exactly as given (quoted), so mixed case and
non-ASCII names work; look them up with ``core.h2.catalog``.

Policies: an update that changes the primary key is captured as a delete of
the old key then a create of the new one (Debezium's choice), so compacted
topics and per-key consumers stay right. A table without a primary key is
captured with a null key; the relay sends all of its events to partition 0
so they keep their commit order, but there is no per-key order or
compaction for it.

A rule change keeps the trigger (it fires on every operation and filters
them itself) and hands it the new rule in place, so no change is missed while
a rule changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import CaptureError, H2Error
from core.h2 import catalog
from core.h2.catalog import quote
from core.h2.connection import H2Connection

log = logging.getLogger(__name__)

META = "CDC_STUDIO"
OUTBOX = f'"{META}"."OUTBOX"'
REJECTED = f'"{META}"."OUTBOX_REJECTED"'
RULES = f'"{META}"."CAPTURE_RULES"'
RULE_COLUMNS = f'"{META}"."CAPTURE_RULE_COLUMNS"'
CLAIMS = f'"{META}"."RELAY_CLAIMS"'
TRIGGER_CLASS = "studio.cdc.capture.CaptureTrigger"
EXPECTED_VERSION = "0.1.0/capture-2"
OPERATIONS = ("insert", "update", "delete")
MODES = ("outbox", "webhook")

_OUTBOX_COLUMNS = (
    "TX_ID CHARACTER VARYING, TABLE_SCHEMA CHARACTER VARYING NOT NULL, "
    "TABLE_NAME CHARACTER VARYING NOT NULL, OP CHARACTER(1) NOT NULL, "
    "KEY_JSON CHARACTER VARYING, BEFORE_JSON CHARACTER VARYING, "
    "AFTER_JSON CHARACTER VARYING, CHANGED_AT_MS BIGINT NOT NULL, "
    "TOMBSTONE BOOLEAN DEFAULT FALSE NOT NULL"
)
_DDL = (
    f'CREATE SCHEMA IF NOT EXISTS "{META}"',
    f"CREATE TABLE IF NOT EXISTS {RULES} ("
    "TABLE_SCHEMA CHARACTER VARYING NOT NULL, TABLE_NAME CHARACTER VARYING NOT NULL, "
    "OPS CHARACTER VARYING NOT NULL, PREDICATE CHARACTER VARYING, "
    "MODE CHARACTER VARYING DEFAULT 'outbox' NOT NULL, "
    "TOMBSTONE BOOLEAN DEFAULT FALSE NOT NULL, WEBHOOK_URL CHARACTER VARYING, "
    "WEBHOOK_TOKEN CHARACTER VARYING, "
    "PRIMARY KEY (TABLE_SCHEMA, TABLE_NAME))",
    f"CREATE TABLE IF NOT EXISTS {RULE_COLUMNS} ("
    "TABLE_SCHEMA CHARACTER VARYING NOT NULL, TABLE_NAME CHARACTER VARYING NOT NULL, "
    "COLUMN_NAME CHARACTER VARYING NOT NULL, "
    "PRIMARY KEY (TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME))",
    f"CREATE TABLE IF NOT EXISTS {OUTBOX} ("
    "SEQ BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, " + _OUTBOX_COLUMNS + ")",
    f"CREATE TABLE IF NOT EXISTS {REJECTED} ("
    "SEQ BIGINT PRIMARY KEY, " + _OUTBOX_COLUMNS + ", "
    "REASON CHARACTER VARYING, REJECTED_AT_MS BIGINT)",
    f"CREATE TABLE IF NOT EXISTS {CLAIMS} ("
    "TABLE_SCHEMA CHARACTER VARYING PRIMARY KEY, OWNER CHARACTER VARYING NOT NULL, "
    "CLAIMED_AT_MS BIGINT NOT NULL)",
    f'CREATE ALIAS IF NOT EXISTS "{META}"."CDC_CAPTURE_VERSION" '
    "FOR 'studio.cdc.capture.Probe.version'",
    f'CREATE ALIAS IF NOT EXISTS "{META}"."CDC_HTTP_POST" '
    "FOR 'studio.cdc.capture.Http.post'",
)

_CLASS_NOT_FOUND = ("[90086-", "ClassNotFound", "NoClassDefFound")


@dataclass(frozen=True)
class CaptureRule:
    """What to capture of one table, and where to (outbox or webhook)."""

    schema: str
    table: str
    operations: tuple[str, ...] = OPERATIONS
    changed_columns: tuple[str, ...] = ()
    predicate: str | None = None
    mode: str = "outbox"
    tombstone: bool = False
    webhook_url: str | None = None
    webhook_token: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "table": self.table,
            "operations": list(self.operations),
            "changed_columns": list(self.changed_columns),
            "predicate": self.predicate,
            "mode": self.mode,
            "tombstone": self.tombstone,
            "webhook_url": self.webhook_url,
        }


@dataclass(frozen=True)
class RuleStatus:
    """A stored rule and whether its trigger is installed."""

    rule: CaptureRule
    installed: bool


def trigger_name(table: str) -> str:
    """The name of a table's capture trigger (in the table's schema)."""
    return f"CDC$CAPTURE${table}"


def ensure_metadata(conn: H2Connection) -> None:
    """Create our schema and check that the server has our classes."""
    for statement in _DDL:
        try:
            conn.run(statement)
        except H2Error as exc:
            if _is_class_missing(exc):
                raise _classes_missing(exc) from exc
            raise
    try:
        version = conn.query(f'SELECT "{META}"."CDC_CAPTURE_VERSION"()')[0][0]
    except H2Error as exc:
        raise _classes_missing(exc) from exc
    if version != EXPECTED_VERSION:
        raise CaptureError(
            f"The H2 server runs capture classes {version}, this application needs "
            f"{EXPECTED_VERSION}",
            hint="restart the H2 server with this version's JVM module on its "
            "class path (`cdc-studio stack down` then `stack up` for the embedded one)",
        )
    # After the version check: an older server lacks the method behind it.
    conn.run(
        f'CREATE ALIAS IF NOT EXISTS "{META}"."CDC_RULE_CHANGED" '
        "FOR 'studio.cdc.capture.CaptureTrigger.ruleChanged'"
    )


def _is_class_missing(exc: H2Error) -> bool:
    return any(mark in str(exc) for mark in _CLASS_NOT_FOUND)


def _classes_missing(exc: H2Error) -> CaptureError:
    error = CaptureError(
        "The H2 server does not have Kafka CDC Studio's capture classes on its "
        "class path, so no trigger of ours could ever fire there",
        hint="add the JVM module jar (cdc-studio-jvm-*.jar from the data folder's "
        "jvm/ folder) to that server's class path and restart it, or use the "
        "embedded stack",
    )
    error.__cause__ = exc
    return error


def expression_problem(sql: str) -> str | None:
    """Why ``sql`` is not a single expression, or None.

    The predicate is pasted into the trigger's query, so a ``;`` would start
    another statement (run on every write), a comment could hide the rest,
    and an unbalanced ``)`` would close the trigger's own parenthesis.
    Quoted text ('...', "...") is skipped. The trigger checks the same.
    """
    depth = 0
    i = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"":
            end = sql.find(char, i + 1)
            while end != -1 and sql[end + 1 : end + 2] == char:  # doubled quote
                end = sql.find(char, end + 2)
            if end == -1:
                return "a quote is not closed"
            i = end + 1
            continue
        if char == ";":
            return "';' would start another statement"
        if sql.startswith(("--", "/*", "//"), i):
            return "comments are not allowed"
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "a ')' has no '('"
        i += 1
    return "a '(' is not closed" if depth else None


def validate(conn: H2Connection, rule: CaptureRule) -> catalog.Table:
    """Check a rule against the catalog; the table it is about."""
    table = catalog.require(conn, rule.schema, rule.table)
    bad_ops = [op for op in rule.operations if op not in OPERATIONS]
    if not rule.operations or bad_ops:
        raise CaptureError(
            f"Capture operations {list(rule.operations)} are not valid",
            hint=f"choose one or more of {', '.join(OPERATIONS)}",
        )
    if rule.mode not in MODES:
        raise CaptureError(
            f"Capture mode {rule.mode!r} is unknown", hint=f"use one of {MODES}"
        )
    if rule.mode == "webhook" and not rule.webhook_url:
        raise CaptureError(
            "A webhook capture rule needs the receiver's URL",
            hint="start the receiver (`cdc-studio webhook run`) and pass its URL",
        )
    problem = expression_problem(rule.predicate or "")
    if problem:
        raise CaptureError(
            f"The predicate is not one SQL expression: {problem}",
            hint="a condition over the row's columns only, e.g. "
            "STATUS = 'PAID' AND TOTAL > 100",
        )
    missing = [c for c in rule.changed_columns if table.column(c) is None]
    if missing:
        raise CaptureError(
            f"Table {rule.schema}.{rule.table} has no column(s) {missing}",
            hint="columns: " + ", ".join(c.name for c in table.columns),
        )
    return table


def add_rule(conn: H2Connection, rule: CaptureRule) -> catalog.Table:
    """Store ``rule`` and make its table's trigger use it; harmless when repeated.

    A table's first rule installs its trigger. A changed rule keeps that
    trigger, which fires on every operation and takes the new rule from its
    next row on (``CDC_RULE_CHANGED``), so no change goes uncaptured while
    the rule changes. Only a trigger installed by an older version, for some
    operations only, is replaced once.
    """
    ensure_metadata(conn)
    table = validate(conn, rule)
    previous = get_rule(conn, rule.schema, rule.table)
    in_place = _trigger_events(conn, rule.schema, rule.table) == set(OPERATIONS)
    _store_rule(conn, rule)
    try:
        if in_place:
            conn.query(
                f'SELECT "{META}"."CDC_RULE_CHANGED"(?, ?)', [rule.schema, rule.table]
            )
        else:
            # Only the first install, or the one-time upgrade of an older
            # trigger (changes between this drop and the create are missed).
            _drop_trigger(conn, rule.schema, rule.table)
            name = f"{quote(rule.schema)}.{quote(trigger_name(rule.table))}"
            conn.run(
                f"CREATE TRIGGER {name} AFTER INSERT, UPDATE, DELETE "
                f"ON {table.qualified} FOR EACH ROW CALL '{TRIGGER_CLASS}'"
            )
    except H2Error as exc:
        _undo_rule(conn, rule, previous, in_place)
        if _is_class_missing(exc):
            raise _classes_missing(exc) from exc
        raise CaptureError(
            f"Cannot install the capture rule on {rule.schema}.{rule.table}: "
            f"{exc.args[0]}",
            hint="check the predicate: it is SQL over the table's columns, e.g. "
            "STATUS = 'PAID' AND TOTAL > 100",
        ) from exc
    log.info(
        "capture rule on %s.%s %s (%s)",
        rule.schema,
        rule.table,
        "changed in place" if in_place else "installed",
        ", ".join(rule.operations),
    )
    return table


def _store_rule(conn: H2Connection, rule: CaptureRule) -> None:
    """Write the rule and its columns in one transaction."""
    with conn.transaction():
        conn.run(
            f"MERGE INTO {RULES} (TABLE_SCHEMA, TABLE_NAME, OPS, PREDICATE, MODE, "
            "TOMBSTONE, WEBHOOK_URL, WEBHOOK_TOKEN) KEY (TABLE_SCHEMA, TABLE_NAME) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                rule.schema,
                rule.table,
                ",".join(rule.operations),
                rule.predicate,
                rule.mode,
                rule.tombstone,
                rule.webhook_url,
                rule.webhook_token,
            ],
        )
        conn.run(
            f"DELETE FROM {RULE_COLUMNS} WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            [rule.schema, rule.table],
        )
        for column in rule.changed_columns:
            conn.run(
                f"INSERT INTO {RULE_COLUMNS} VALUES (?, ?, ?)",
                [rule.schema, rule.table, column],
            )


def _undo_rule(
    conn: H2Connection,
    rule: CaptureRule,
    previous: CaptureRule | None,
    in_place: bool,
) -> None:
    """A rule that could not be installed leaves the one before it in place."""
    if previous is None:
        remove_rule(conn, rule.schema, rule.table)
    elif in_place:
        _store_rule(conn, previous)  # the trigger never saw the failed rule
    elif previous != rule:
        remove_rule(conn, rule.schema, rule.table)
        add_rule(conn, previous)
    else:
        remove_rule(conn, rule.schema, rule.table)


def _trigger_events(conn: H2Connection, schema: str, table: str) -> set[str]:
    """The operations the table's capture trigger fires on (empty: none)."""
    rows = conn.query(
        "SELECT EVENT_MANIPULATION FROM INFORMATION_SCHEMA.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?",
        [schema, trigger_name(table)],
    )
    return {str(event).lower() for (event,) in rows}


def _drop_trigger(conn: H2Connection, schema: str, table: str) -> None:
    conn.run(f"DROP TRIGGER IF EXISTS {quote(schema)}.{quote(trigger_name(table))}")


def remove_rule(conn: H2Connection, schema: str, table: str) -> bool:
    """Drop the trigger and the rule; whether there was a rule."""
    ensure_metadata(conn)
    _drop_trigger(conn, schema, table)
    conn.run(
        f"DELETE FROM {RULE_COLUMNS} WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        [schema, table],
    )
    deleted = conn.run(
        f"DELETE FROM {RULES} WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        [schema, table],
    )
    log.info("capture rule on %s.%s removed", schema, table)
    return bool(deleted.update_count)


def list_rules(conn: H2Connection) -> list[RuleStatus]:
    """Every stored rule, with whether its trigger exists."""
    ensure_metadata(conn)
    rows = conn.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME, OPS, PREDICATE, MODE, TOMBSTONE, "
        f"WEBHOOK_URL, WEBHOOK_TOKEN FROM {RULES} ORDER BY TABLE_SCHEMA, TABLE_NAME"
    )
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in conn.query(
        f"SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM {RULE_COLUMNS} "
        "ORDER BY COLUMN_NAME"
    ):
        columns.setdefault((schema, table), []).append(column)
    installed = {
        (schema, name)
        for schema, name in conn.query(
            "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM INFORMATION_SCHEMA.TRIGGERS"
        )
    }
    result = []
    for schema, table, ops, predicate, mode, tombstone, url, token in rows:
        rule = CaptureRule(
            schema=schema,
            table=table,
            operations=tuple(op.lower() for op in ops.split(",")),
            changed_columns=tuple(columns.get((schema, table), ())),
            predicate=predicate,
            mode=mode,
            tombstone=bool(tombstone),
            webhook_url=url,
            webhook_token=token,
        )
        result.append(RuleStatus(rule, (schema, trigger_name(table)) in installed))
    return result


def get_rule(conn: H2Connection, schema: str, table: str) -> CaptureRule | None:
    for status in list_rules(conn):
        if (status.rule.schema, status.rule.table) == (schema, table):
            return status.rule
    return None


def capture_tables(conn: H2Connection, tables: Iterable[catalog.Table]) -> None:
    """Capture every operation of ``tables`` into the outbox (the default rule)."""
    for table in tables:
        add_rule(conn, CaptureRule(table.schema, table.name))
