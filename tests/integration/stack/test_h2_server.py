"""The embedded H2 server: exact values over JDBC, loopback only, wrong password."""

from __future__ import annotations

from decimal import Decimal

import psutil
import pytest

from core.errors import H2AuthError, H2Error
from core.h2.connection import H2Connection
from core.settings import Settings
from core.stack import Stack

pytestmark = pytest.mark.integration


def test_create_insert_select_exact_values(stack: Stack) -> None:
    with H2Connection(stack.settings) as conn:
        conn.run("DROP TABLE IF EXISTS STACK_EXACT")
        conn.run(
            "CREATE TABLE STACK_EXACT (ID BIGINT PRIMARY KEY, PRICE DECIMAL(12,4), "
            "AT TIMESTAMP(9), NAME VARCHAR(40), FLAG BOOLEAN, DATA VARBINARY(8))"
        )
        conn.run(
            "INSERT INTO STACK_EXACT VALUES"
            " (?, ?, TIMESTAMP '2024-02-29 23:59:59.090000001', ?, ?, ?)",
            [9007199254740993, Decimal("12.3400"), "Zoë ✓", True, b"\x00\x01\xff"],
        )
        conn.run("INSERT INTO STACK_EXACT (ID) VALUES (2)")
        result = conn.run("SELECT * FROM STACK_EXACT ORDER BY ID")

    assert result.columns == ["ID", "PRICE", "AT", "NAME", "FLAG", "DATA"]
    assert result.rows == [
        [2, None, None, None, None, None],
        [
            9007199254740993,
            Decimal("12.3400"),
            "2024-02-29 23:59:59.090000001",
            "Zoë ✓",
            True,
            b"\x00\x01\xff",
        ],
    ]
    assert str(result.rows[1][1]) == "12.3400"


def test_h2_listens_on_loopback_only(stack: Stack) -> None:
    h2 = next(n for n in stack.status().nodes if n.role == "h2")
    assert h2.up and h2.pid
    listening = [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.pid == h2.pid and c.status == psutil.CONN_LISTEN
    ]
    assert [c.laddr.port for c in listening] == [stack.settings.h2.port]
    assert listening[0].laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1")


def test_h2_password_file_private_and_wrong_password_refused(stack: Stack) -> None:
    password_file = stack.settings.data_path / "h2" / "password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(H2AuthError) as info:
        H2Connection(stack.settings, password="not-the-password")
    assert "wrong user name or password" in str(info.value)
    assert "h2/password" in str(info.value)


def test_sessions_racing_to_create_the_same_object_all_succeed(
    stack: Stack, stack_settings: Settings
) -> None:
    """H2 checks IF NOT EXISTS before it creates: racing sessions must not fail."""
    import threading
    import uuid

    schema = f"RACE_{uuid.uuid4().hex[:8].upper()}"
    sessions = [H2Connection(stack_settings) for _ in range(4)]
    errors: list[str] = []
    try:
        for round_ in range(15):
            start = threading.Barrier(len(sessions))

            def create(
                conn: H2Connection,
                round_: int = round_,
                start: threading.Barrier = start,
            ) -> None:
                start.wait(10)
                try:
                    conn.run(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    conn.run(
                        f'CREATE TABLE IF NOT EXISTS "{schema}".T{round_} '
                        "(ID INT PRIMARY KEY)"
                    )
                    conn.run(
                        f'CREATE ALIAS IF NOT EXISTS "{schema}".F{round_} '
                        "FOR 'java.lang.Math.sqrt'"
                    )
                except H2Error as exc:
                    errors.append(str(exc.args[0]))

            workers = [threading.Thread(target=create, args=(c,)) for c in sessions]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
        assert errors == []
        tables = sessions[0].query(
            "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ?",
            [schema],
        )
        aliases = sessions[0].query(
            "SELECT COUNT(*) FROM INFORMATION_SCHEMA.ROUTINES WHERE ROUTINE_SCHEMA = ?",
            [schema],
        )
        assert (tables, aliases) == ([[15]], [[15]])
    finally:
        sessions[0].run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for conn in sessions:
            conn.close()
