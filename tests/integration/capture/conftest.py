"""Fixtures for capture tests: a JDBC connection and throwaway tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.h2 import triggers
from core.h2.connection import H2Connection
from core.settings import Settings
from core.stack import Stack


@pytest.fixture(scope="session")
def h2(stack: Stack, stack_settings: Settings) -> Iterator[H2Connection]:
    """One autocommit JDBC connection to the stack's H2, metadata in place."""
    conn = H2Connection(stack_settings)
    triggers.ensure_metadata(conn)
    yield conn
    conn.close()


@pytest.fixture
def table_name() -> str:
    """A unique table name for one test."""
    return f"T_{uuid.uuid4().hex[:10].upper()}"


def outbox_rows(conn: H2Connection, schema: str, table: str) -> list[list[object]]:
    """OP, KEY_JSON, BEFORE_JSON, AFTER_JSON of a table's outbox rows, in order."""
    return conn.query(
        f"SELECT OP, KEY_JSON, BEFORE_JSON, AFTER_JSON FROM {triggers.OUTBOX} "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY SEQ",
        [schema, table],
    )
