"""Capture triggers in the real H2 server: exact values, rules, policies."""

from __future__ import annotations

import json

import pytest

from core.errors import CaptureError
from core.h2 import catalog, triggers
from core.h2.catalog import quote
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from tests.integration.capture.conftest import outbox_rows

# (column type, SQL literal, exact JSON text the trigger must write)
TYPES = [
    ("DECIMAL(12,3)", "12.500", '"12.500"'),
    ("NUMERIC(20,0)", "12345678901234567890", '"12345678901234567890"'),
    ("BIGINT", "-9223372036854775808", "-9223372036854775808"),
    ("DOUBLE PRECISION", "0.1", "0.1"),
    ("REAL", "0.1", "0.1"),
    ("BOOLEAN", "FALSE", "false"),
    ("DATE", "DATE '0999-12-31'", '"0999-12-31"'),
    ("TIME(9)", "TIME '23:59:59.000000001'", '"23:59:59.000000001"'),
    ("TIMESTAMP(9)", "TIMESTAMP '2024-02-29 00:00:00.09'", '"2024-02-29T00:00:00.09"'),
    (
        "TIMESTAMP(6) WITH TIME ZONE",
        "TIMESTAMP WITH TIME ZONE '2024-03-31 02:30:00.5-09:30'",
        '"2024-03-31T02:30:00.5-09:30"',
    ),
    ("TIME WITH TIME ZONE", "TIME WITH TIME ZONE '10:11:12+01'", '"10:11:12+01:00"'),
    ("VARBINARY", "X'00FF10'", '"AP8Q"'),
    ("BLOB", "X'DEADBEEF'", '"3q2+7w=="'),
    ("CLOB", "'line1' || CHAR(10) || 'line2'", '"line1\\nline2"'),
    ("JSON", """JSON '{"a": [1, 2.50, null]}'""", '{"a":[1,2.50,null]}'),
    ("INTEGER ARRAY", "ARRAY[3, NULL, 1]", "[3,null,1]"),
    ("DECIMAL(5,2) ARRAY", "ARRAY[1.10, 2.00]", '["1.10","2.00"]'),
    (
        "UUID",
        "'123e4567-e89b-12d3-a456-426614174000'",
        '"123e4567-e89b-12d3-a456-426614174000"',
    ),
    ("GEOMETRY", "'POINT (30 10)'", '"POINT (30 10)"'),
    ("VARCHAR", "U&'\\00e9\\+01f600\\4e2d \"q\" \\005c'", '"é😀中 \\"q\\" \\\\"'),
    ("VARCHAR", "NULL", "null"),
]


@pytest.mark.parametrize(("sql_type", "literal", "expected"), TYPES)
def test_each_type_is_written_exactly(
    h2: H2Connection, table_name: str, sql_type: str, literal: str, expected: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V {sql_type})")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name))

    h2.run(f"INSERT INTO {table_name} VALUES (1, {literal})")

    [[op, key, before, after]] = outbox_rows(h2, "PUBLIC", table_name)
    assert (op, key, before) == ("c", '{"ID":1}', None)
    assert after == '{"ID":1,"V":' + expected + "}"
    json.loads(after)


def test_rollback_leaves_nothing(h2: H2Connection, table_name: str) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name))

    h2.set_autocommit(False)
    try:
        h2.run(f"INSERT INTO {table_name} VALUES (1), (2)")
        h2.rollback()
    finally:
        h2.set_autocommit(True)

    assert outbox_rows(h2, "PUBLIC", table_name) == []


def test_multi_row_merge_and_primary_key_update(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, N INT)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name))

    h2.run(f"INSERT INTO {table_name} VALUES (1, 10), (2, 20)")
    h2.run(f"UPDATE {table_name} SET N = N + 1")
    h2.run(
        f"MERGE INTO {table_name} T USING (VALUES (2, 0), (3, 30)) S(ID, N) "
        "ON T.ID = S.ID WHEN MATCHED THEN UPDATE SET N = S.N "
        "WHEN NOT MATCHED THEN INSERT VALUES (S.ID, S.N)"
    )
    h2.run(f"UPDATE {table_name} SET ID = 4 WHERE ID = 3")

    assert outbox_rows(h2, "PUBLIC", table_name) == [
        ["c", '{"ID":1}', None, '{"ID":1,"N":10}'],
        ["c", '{"ID":2}', None, '{"ID":2,"N":20}'],
        ["u", '{"ID":1}', '{"ID":1,"N":10}', '{"ID":1,"N":11}'],
        ["u", '{"ID":2}', '{"ID":2,"N":20}', '{"ID":2,"N":21}'],
        ["u", '{"ID":2}', '{"ID":2,"N":21}', '{"ID":2,"N":0}'],
        ["c", '{"ID":3}', None, '{"ID":3,"N":30}'],
        ["d", '{"ID":3}', '{"ID":3,"N":30}', None],
        ["c", '{"ID":4}', None, '{"ID":4,"N":30}'],
    ]


def test_table_without_primary_key_has_null_key(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (A INT, B INT)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name))

    h2.run(f"INSERT INTO {table_name} VALUES (1, 1), (1, 1)")
    h2.run(f"DELETE FROM {table_name}")

    rows = outbox_rows(h2, "PUBLIC", table_name)
    assert [(op, key) for op, key, _, _ in rows] == [
        ("c", None),
        ("c", None),
        ("d", None),
        ("d", None),
    ]


def test_columns_changed_and_predicate(h2: H2Connection, table_name: str) -> None:
    h2.run(
        f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, STATUS VARCHAR, "
        "TOTAL DECIMAL(10,2), NOTE VARCHAR)"
    )
    triggers.add_rule(
        h2,
        CaptureRule(
            "PUBLIC",
            table_name,
            operations=("insert", "update"),
            changed_columns=("STATUS", "TOTAL"),
            predicate="STATUS = 'PAID' AND TOTAL > 100",
        ),
    )

    h2.run(
        f"INSERT INTO {table_name} VALUES (1, 'NEW', 500, 'a'), (2, 'PAID', 50, 'b')"
    )
    h2.run(f"UPDATE {table_name} SET STATUS = 'PAID' WHERE ID = 1")
    h2.run(f"UPDATE {table_name} SET NOTE = 'changed' WHERE ID = 1")
    h2.run(f"UPDATE {table_name} SET STATUS = STATUS, TOTAL = TOTAL")
    h2.run(f"DELETE FROM {table_name}")

    assert outbox_rows(h2, "PUBLIC", table_name) == [
        [
            "u",
            '{"ID":1}',
            '{"ID":1,"STATUS":"NEW","TOTAL":"500.00","NOTE":"a"}',
            '{"ID":1,"STATUS":"PAID","TOTAL":"500.00","NOTE":"a"}',
        ],
    ]


def test_exact_identifiers_and_rule_lifecycle(
    h2: H2Connection, table_name: str
) -> None:
    schema, table = "Shop ü", f"Ordér {table_name.lower()}"
    h2.run(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    h2.run(
        f'CREATE TABLE {quote(schema)}.{quote(table)} ("Id" INT PRIMARY KEY, '
        '"wert ✓" VARCHAR)'
    )
    rule = CaptureRule(schema, table, operations=("insert",))

    triggers.add_rule(h2, rule)
    triggers.add_rule(h2, rule)
    h2.run(f"INSERT INTO {quote(schema)}.{quote(table)} VALUES (7, 'x')")
    listed = [s for s in triggers.list_rules(h2) if s.rule.table == table]
    removed = triggers.remove_rule(h2, schema, table)
    h2.run(f"INSERT INTO {quote(schema)}.{quote(table)} VALUES (8, 'y')")

    assert [(s.rule, s.installed) for s in listed] == [(rule, True)]
    assert removed is True
    assert outbox_rows(h2, schema, table) == [
        ["c", '{"Id":7}', None, '{"Id":7,"wert ✓":"x"}'],
    ]
    found = catalog.find(h2, schema, table)
    assert found is not None and found.primary_key == ("Id",)


def test_unknown_table_and_bad_predicate_are_errors(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY)")

    with pytest.raises(CaptureError, match="does not exist"):
        triggers.add_rule(h2, CaptureRule("PUBLIC", table_name.lower()))
    with pytest.raises(CaptureError, match="Cannot install"):
        triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, predicate="NOPE > 1"))
    assert triggers.get_rule(h2, "PUBLIC", table_name) is None


def test_a_failed_rule_change_keeps_the_working_rule(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    working = CaptureRule("PUBLIC", table_name, predicate="V > 5")
    triggers.add_rule(h2, working)

    with pytest.raises(CaptureError, match="Cannot install"):
        triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, predicate="BOGUS > 5"))

    assert triggers.get_rule(h2, "PUBLIC", table_name) == working
    statuses = [s for s in triggers.list_rules(h2) if s.rule.table == table_name]
    assert [s.installed for s in statuses] == [True]
    h2.run(f"INSERT INTO {table_name} VALUES (1, 9), (2, 1)")
    rows = outbox_rows(h2, "PUBLIC", table_name)
    assert [(op, key) for op, key, _, _ in rows] == [("c", '{"ID":1}')]


def test_changes_after_alter_table_keep_the_table_name(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, predicate="V > 5"))

    h2.run(f"ALTER TABLE {table_name} ADD COLUMN NEWC INT")  # H2 rebuilds the table
    h2.run(f"INSERT INTO {table_name} VALUES (1, 9, 5), (2, 1, 5)")

    rows = outbox_rows(h2, "PUBLIC", table_name)
    assert [(op, key) for op, key, _, _ in rows] == [("c", '{"ID":1}')]
    assert json.loads(rows[0][3]) == {"ID": 1, "V": 9, "NEWC": 5}
    others = h2.query(
        f"SELECT COUNT(*) FROM {triggers.OUTBOX} WHERE TABLE_NAME LIKE ?",
        [f"{table_name}_COPY%"],
    )
    assert others == [[0]]
