"""The catalog of an H2 database: schemas, tables, columns, primary keys."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.errors import CaptureError
from core.h2.connection import H2Connection

log = logging.getLogger(__name__)

# Schemas that hold H2's own metadata or ours, never user tables to capture.
SYSTEM_SCHEMAS = ("INFORMATION_SCHEMA", "CDC_STUDIO")


@dataclass(frozen=True)
class Column:
    """One column as the catalog spells it, with H2's name for its type."""

    name: str
    type_name: str
    nullable: bool
    position: int


@dataclass(frozen=True)
class Table:
    """A base table: exact schema and name, columns in order, primary key."""

    schema: str
    name: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    primary_key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def qualified(self) -> str:
        """``"SCHEMA"."TABLE"``, quoted so that any spelling survives."""
        return f"{quote(self.schema)}.{quote(self.name)}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def quote(identifier: str) -> str:
    """An identifier quoted for H2: exact case, any character."""
    return '"' + identifier.replace('"', '""') + '"'


def schemas(conn: H2Connection) -> list[str]:
    """User schemas, in name order."""
    rows = conn.query(
        "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA ORDER BY SCHEMA_NAME"
    )
    return [r[0] for r in rows if r[0] not in SYSTEM_SCHEMAS]


def tables(conn: H2Connection, schema: str | None = None) -> list[Table]:
    """Every base table (of ``schema``, or of all user schemas) with its columns."""
    sql = (
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_TYPE = 'BASE TABLE'"
    )
    params: list[str] = []
    if schema is not None:
        sql += " AND TABLE_SCHEMA = ?"
        params.append(schema)
    rows = conn.query(sql + " ORDER BY TABLE_SCHEMA, TABLE_NAME", params)
    found = [(s, t) for s, t in rows if s not in SYSTEM_SCHEMAS]
    return [describe(conn, s, t) for s, t in found]


def find(conn: H2Connection, schema: str, name: str) -> Table | None:
    """The table ``schema``.``name`` spelled exactly, or None."""
    rows = conn.query(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
        [schema, name],
    )
    if not rows[0][0]:
        return None
    return describe(conn, schema, name)


def require(conn: H2Connection, schema: str, name: str) -> Table:
    """Like :func:`find`, but a missing table is an error naming near matches."""
    table = find(conn, schema, name)
    if table is not None:
        return table
    near = [
        f"{t.schema}.{t.name}"
        for t in tables(conn)
        if t.name.casefold() == name.casefold()
        or t.schema.casefold() == schema.casefold()
    ]
    raise CaptureError(
        f"Table {schema}.{name} does not exist (names are case-sensitive)",
        hint=f"did you mean one of: {', '.join(near[:8])}"
        if near
        else "list tables with `cdc-studio capture tables`",
    )


def describe(conn: H2Connection, schema: str, name: str) -> Table:
    """Columns and primary key of one table."""
    columns = conn.query(
        "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, ORDINAL_POSITION "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
        "ORDER BY ORDINAL_POSITION",
        [schema, name],
    )
    key = conn.query(
        "SELECT K.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS C "
        "JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE K "
        "ON K.CONSTRAINT_SCHEMA = C.CONSTRAINT_SCHEMA "
        "AND K.CONSTRAINT_NAME = C.CONSTRAINT_NAME "
        "WHERE C.CONSTRAINT_TYPE = 'PRIMARY KEY' "
        "AND C.TABLE_SCHEMA = ? AND C.TABLE_NAME = ? ORDER BY K.ORDINAL_POSITION",
        [schema, name],
    )
    return Table(
        schema=schema,
        name=name,
        columns=tuple(
            Column(n, t, nullable == "YES", int(pos)) for n, t, nullable, pos in columns
        ),
        primary_key=tuple(r[0] for r in key),
    )
