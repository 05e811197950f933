"""Changing a capture rule while rows change: in place, nothing missed."""

from __future__ import annotations

import threading

import pytest

from core.errors import CaptureError, H2Error
from core.h2 import triggers
from core.h2.connection import H2Connection
from core.h2.triggers import CaptureRule
from core.settings import Settings
from tests.integration.capture.conftest import outbox_rows

pytestmark = pytest.mark.integration


def _events(h2: H2Connection, table: str) -> list[tuple[str, str]]:
    return [(op, key) for op, key, _, _ in outbox_rows(h2, "PUBLIC", table)]


def test_rule_changes_while_rows_are_written_miss_no_change(
    h2: H2Connection, stack_settings: Settings, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, predicate="V >= 0"))
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with H2Connection(stack_settings) as writer:
                while not stop.is_set() or len(written) < 200:
                    row = len(written)
                    writer.run(f"INSERT INTO {table_name} VALUES (?, 1)", [row])
                    written.append(row)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=write, name="rule-change-writer")
    thread.start()
    try:
        # Both predicates hold for every row: each change must be captured,
        # whichever rule is in force when it commits.
        for turn in range(20):
            predicate = "V >= 0" if turn % 2 else "V > -1"
            triggers.add_rule(
                h2, CaptureRule("PUBLIC", table_name, predicate=predicate)
            )
    finally:
        stop.set()
        thread.join(120)

    assert errors == []
    captured = sorted(int(key[6:-1]) for _, key in _events(h2, table_name))
    assert captured == written


def test_operations_change_in_place(h2: H2Connection, table_name: str) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, operations=("insert",)))
    h2.run(f"INSERT INTO {table_name} VALUES (1, 1)")
    h2.run(f"UPDATE {table_name} SET V = 2")

    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, operations=("update",)))
    h2.run(f"INSERT INTO {table_name} VALUES (2, 1)")
    h2.run(f"UPDATE {table_name} SET V = 3 WHERE ID = 1")
    h2.run(f"DELETE FROM {table_name} WHERE ID = 2")

    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, operations=("delete",)))
    h2.run(f"DELETE FROM {table_name} WHERE ID = 1")

    assert _events(h2, table_name) == [
        ("c", '{"ID":1}'),
        ("u", '{"ID":1}'),
        ("d", '{"ID":1}'),
    ]
    events = h2.query(
        "SELECT EVENT_MANIPULATION FROM INFORMATION_SCHEMA.TRIGGERS "
        "WHERE TRIGGER_NAME = ? ORDER BY 1",
        [triggers.trigger_name(table_name)],
    )
    assert events == [["DELETE"], ["INSERT"], ["UPDATE"]]


def test_a_bad_predicate_changed_in_place_keeps_the_working_rule(
    h2: H2Connection, table_name: str
) -> None:
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    working = CaptureRule(
        "PUBLIC", table_name, operations=("insert",), predicate="V > 5"
    )
    triggers.add_rule(h2, working)

    with pytest.raises(CaptureError, match="Cannot install") as info:
        triggers.add_rule(
            h2, CaptureRule("PUBLIC", table_name, changed_columns=("V",), predicate="X")
        )
    h2.run(f"INSERT INTO {table_name} VALUES (1, 9), (2, 1)")
    h2.run(f"UPDATE {table_name} SET V = 10")

    assert "STATUS = 'PAID'" in (info.value.hint or "")
    assert triggers.get_rule(h2, "PUBLIC", table_name) == working
    assert _events(h2, table_name) == [("c", '{"ID":1}')]


@pytest.mark.parametrize(
    "predicate",
    [
        "1=1); UPDATE {other} SET V = 99; --",
        "V > 0 OR 1=1); DROP TABLE {other}; --",
        "V > 0 /* hidden */",
        "(V > 0",
    ],
)
def test_a_predicate_must_be_one_expression(
    h2: H2Connection, table_name: str, predicate: str
) -> None:
    other = f"{table_name}_O"
    h2.run(f"CREATE TABLE {table_name} (ID INT PRIMARY KEY, V INT)")
    h2.run(f"CREATE TABLE {other} (ID INT PRIMARY KEY, V INT)")
    h2.run(f"INSERT INTO {other} VALUES (1, 1)")
    triggers.add_rule(h2, CaptureRule("PUBLIC", table_name, predicate="V > 5"))

    with pytest.raises(CaptureError, match="not one SQL expression"):
        triggers.add_rule(
            h2,
            CaptureRule("PUBLIC", table_name, predicate=predicate.format(other=other)),
        )
    # The trigger checks too, for a rule written into its table by hand.
    h2.run(
        f"UPDATE {triggers.RULES} SET PREDICATE = ? WHERE TABLE_NAME = ?",
        [predicate.format(other=other), table_name],
    )
    with pytest.raises(H2Error, match="not one SQL expression"):
        h2.query(
            f'SELECT "{triggers.META}"."CDC_RULE_CHANGED"(?, ?)', ["PUBLIC", table_name]
        )
    h2.run(f"INSERT INTO {table_name} VALUES (1, 9), (2, 1)")

    assert _events(h2, table_name) == [("c", '{"ID":1}')]
    assert h2.query(f"SELECT ID, V FROM {other}") == [[1, 1]]
    h2.run(f"DROP TABLE {other}")
