"""A JDBC connection to H2 through JPype that reads every value exactly."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import jvm
from core.errors import H2AuthError, H2Error
from core.settings import Settings
from core.stack import h2_node

log = logging.getLogger(__name__)

ENV_PASSWORD = "CDC_STUDIO_H2_PASSWORD"
_FORBIDDEN_URL_PARTS = (
    "INIT=",
    "RUNSCRIPT",
    "FORBID_CREATION",
    "IGNORE_UNKNOWN_SETTINGS",
)
_jvm_lock = threading.Lock()

# H2 error codes (org.h2.api.ErrorCode) that mean something to a user.
_WRONG_USER_OR_PASSWORD = 28000
_CONNECTION_BROKEN = 90067
_DATABASE_NOT_FOUND = (90146, 90013)


@dataclass
class Result:
    """What a statement returned: columns and rows, or an update count."""

    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    update_count: int | None = None


def check_url(url: str) -> None:
    """Refuse URLs that are not H2 over TCP or that carry dangerous settings."""
    if not url.lower().startswith("jdbc:h2:tcp://"):
        raise H2Error(
            f"Unsupported H2 URL {url!r}",
            hint="use a server URL of the form jdbc:h2:tcp://HOST:PORT/DATABASE",
        )
    upper = url.upper()
    for part in _FORBIDDEN_URL_PARTS:
        if part in upper:
            raise H2Error(
                f"The H2 URL carries {part.rstrip('=')}, which can run code on the "
                "server",
                hint="remove that setting from h2.url",
            )


def start_jvm(settings: Settings) -> None:
    """Start this process's one JVM with H2 and our classes, if not yet started."""
    import jpype

    with _jvm_lock:
        if jpype.isJVMStarted():
            return
        java = jvm.find_java(settings)
        build = jvm.ensure_built(settings, java)
        java_home = java.executable.resolve().parent.parent
        candidates = [java_home / "lib" / "server" / "libjvm.so"]
        libjvm = next((c for c in candidates if c.exists()), None)
        jpype.startJVM(
            str(libjvm) if libjvm else jpype.getDefaultJVMPath(),
            "-Xmx256m",
            # SIGTERM/SIGINT stay Python's, so a worker process stops cleanly.
            "-Xrs",
            classpath=[str(build.jar("h2-")), str(build.module_jar)],
            convertStrings=False,
        )
        log.debug("started the in-process JVM for JDBC")


def release_thread() -> None:
    """Detach the calling worker thread from this process's JVM, if attached.

    JPype attaches a thread to the JVM the first time it touches Java, as a
    non-daemon thread, and the JVM's shutdown at exit waits for every such
    thread: a pooled thread left attached keeps the process from ever ending.
    Pooled workers call this after each task.
    """
    jpype = sys.modules.get("jpype")
    started = getattr(jpype, "isJVMStarted", None)  # None while being imported
    if jpype is None or started is None or not started():
        return
    thread = jpype.JClass("java.lang.Thread")
    if thread.isAttached() and not thread.currentThread().isDaemon():
        thread.detach()


def embedded_password(settings: Settings) -> str:
    """The password of the configured database, never logged."""
    if settings.h2.url:
        return os.environ.get(ENV_PASSWORD, "")
    path = h2_node.password_file(settings)
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if h2_node.database_file(settings).exists():
        raise H2Error(
            f"The embedded H2 database exists but its password file {path} is gone",
            hint="the password cannot be recovered: wipe the stack "
            "(`cdc-studio stack down --wipe`) to create a new database",
        )
    raise H2Error(
        f"The embedded H2 database in {settings.data_path} has not been created yet",
        hint="start the stack with `cdc-studio stack up`",
    )


class H2Connection:
    """One JDBC connection; values come back exact (see ``_read_value``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        url: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url or h2_node.url(settings)
        self.user = user or settings.h2.user
        check_url(self.url)
        if password is None:
            password = embedded_password(settings)
        start_jvm(settings)
        self._jconn = self._connect(password)

    def _connect(self, password: str) -> Any:
        """Connect through jaydebeapi; keep its java.sql.Connection for exact reads.

        jaydebeapi's own cursors convert DECIMAL to float and can misread
        fractional seconds, so statements run on the JDBC connection itself.
        """
        import jaydebeapi
        import jpype

        sql_exception = jpype.JClass("java.sql.SQLException")
        try:
            self.dbapi = jaydebeapi.connect(
                "org.h2.Driver", self.url, [self.user, password]
            )
        except sql_exception as exc:
            raise _wrap_connect_error(exc, self.url, self.user) from None
        log.debug("connected to %s as %s", self.url, self.user)
        return self.dbapi.jconn

    def close(self) -> None:
        if self._jconn is not None:
            self._jconn.close()
            self._jconn = None

    def __enter__(self) -> H2Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def jdbc(self) -> Any:
        """The underlying java.sql.Connection, for code that needs more."""
        return self._jconn

    def set_autocommit(self, value: bool) -> None:
        self._jconn.setAutoCommit(value)

    def commit(self) -> None:
        self._jconn.commit()

    def rollback(self) -> None:
        self._jconn.rollback()

    @contextmanager
    def transaction(self) -> Iterator[H2Connection]:
        """The block's statements in one transaction: committed at its end,
        rolled back if it raises; autocommit again afterwards."""
        self.set_autocommit(False)
        try:
            yield self
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            self.set_autocommit(True)

    def run(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Result:
        """Run one statement; a query gives rows, anything else an update count.

        H2 checks ``IF NOT EXISTS`` before it creates, so two sessions creating
        the same object at once can both pass the check, and the second then
        fails with "already exists" (seen: the GUI and a relay both setting up
        the capture schema). Such a statement is run again: it then finds the
        object and does nothing.
        """
        retries = _RACE_RETRIES if _IF_NOT_EXISTS.search(sql) else 0
        attempt = 0
        while True:
            try:
                return self._run_once(sql, params)
            except H2Error as exc:
                if attempt >= retries or "already exists" not in str(exc.args[0]):
                    raise
                attempt += 1
                log.debug("lost a race creating an object, again: %s", exc.args[0])
                time.sleep(0.05 * attempt)

    def _run_once(self, sql: str, params: list[Any] | tuple[Any, ...]) -> Result:
        import jpype

        sql_exception = jpype.JClass("java.sql.SQLException")
        try:
            stmt = self._jconn.prepareStatement(sql)
            try:
                for index, value in enumerate(params, start=1):
                    _bind(stmt, index, value)
                if stmt.execute():
                    return _read_result_set(stmt.getResultSet())
                return Result(update_count=int(stmt.getUpdateCount()))
            finally:
                stmt.close()
        except sql_exception as exc:
            raise H2Error(
                f"H2 refused the statement: {exc.getMessage()}",
                hint=_hint_for_sql_state(str(exc.getSQLState() or "")),
            ) from None

    def query(
        self, sql: str, params: list[Any] | tuple[Any, ...] = ()
    ) -> list[list[Any]]:
        return self.run(sql, params).rows


_IF_NOT_EXISTS = re.compile(r"\bIF\s+NOT\s+EXISTS\b", re.IGNORECASE)
_RACE_RETRIES = 5


def _hint_for_sql_state(state: str) -> str:
    """What to do about a refused statement, by its SQLSTATE class."""
    if state.startswith("42"):
        return "check the SQL against H2's grammar and the table and column names"
    if state.startswith("23"):
        return (
            "the data breaks a constraint (key, unique, not null, check): "
            "change the values or the constraint"
        )
    if state.startswith("22"):
        return "a value is out of range or of the wrong type for its column"
    if state.startswith("40"):
        return "the transaction was rolled back (deadlock or timeout): run it again"
    return "see H2's message above"


def _wrap_connect_error(exc: Any, url: str, user: str) -> H2Error:
    code = int(exc.getErrorCode())
    message = str(exc.getMessage())
    if code == _WRONG_USER_OR_PASSWORD:
        return H2AuthError(
            f"H2 at {url} rejected user {user!r}: wrong user name or password",
            hint="for the embedded server the password is in the data folder's "
            f"h2/password file; for another server set {ENV_PASSWORD}",
        )
    if code == _CONNECTION_BROKEN:
        return H2Error(
            f"Cannot reach H2 at {url}: {message.splitlines()[0]}",
            hint="start the stack with `cdc-studio stack up`, or fix h2.url",
        )
    if code in _DATABASE_NOT_FOUND:
        return H2Error(
            f"The database in {url} does not exist on that server",
            hint="check the database name in h2.url (servers here never create "
            "databases for remote clients)",
        )
    return H2Error(f"Cannot connect to H2 at {url}: {message.splitlines()[0]}")


def _bind(stmt: Any, index: int, value: Any) -> None:
    import jpype

    if value is None:
        stmt.setObject(index, None)
    elif isinstance(value, bool):
        stmt.setBoolean(index, value)
    elif isinstance(value, int):
        stmt.setLong(index, value)
    elif isinstance(value, float):
        stmt.setDouble(index, value)
    elif isinstance(value, Decimal):
        stmt.setBigDecimal(index, jpype.JClass("java.math.BigDecimal")(str(value)))
    elif isinstance(value, bytes):
        stmt.setBytes(index, jpype.JArray(jpype.JByte)(value))
    else:
        stmt.setString(index, str(value))


def _read_result_set(rs: Any) -> Result:
    meta = rs.getMetaData()
    count = int(meta.getColumnCount())
    result = Result(
        columns=[str(meta.getColumnLabel(i)) for i in range(1, count + 1)],
        types=[str(meta.getColumnTypeName(i)) for i in range(1, count + 1)],
    )
    kinds = [int(meta.getColumnType(i)) for i in range(1, count + 1)]
    while rs.next():
        result.rows.append(
            [
                _read_value(rs, i, kinds[i - 1], result.types[i - 1])
                for i in range(1, count + 1)
            ]
        )
    rs.close()
    return result


# java.sql.Types codes
_INTEGERS = {-6, 5, 4, -5}  # TINYINT SMALLINT INTEGER BIGINT
_DECIMALS = {2, 3}  # NUMERIC DECIMAL
_FLOATS = {6, 7, 8}  # FLOAT REAL DOUBLE
_BOOLEANS = {16, -7}  # BOOLEAN BIT
_BINARIES = {-2, -3, -4, 2004}  # BINARY VARBINARY LONGVARBINARY BLOB


_ARRAY = 2003


def _read_value(rs: Any, index: int, kind: int, type_name: str = "") -> Any:
    """One value, exactly: integers as int, DECIMAL as Decimal with its scale,
    binary as bytes, UUID as its text, ARRAY as a list, temporal values as ISO
    text (nanoseconds and zone kept), everything else as the text H2 gives."""
    if type_name == "UUID":
        text = rs.getString(index)
        return None if text is None else str(text)
    if kind == _ARRAY:
        array = rs.getArray(index)
        return None if array is None else [_from_java(v) for v in array.getArray()]
    if kind in _INTEGERS:
        number = rs.getLong(index)
        return None if rs.wasNull() else int(number)
    if kind in _DECIMALS:
        big = rs.getBigDecimal(index)
        return None if big is None else Decimal(str(big.toPlainString()))
    if kind in _FLOATS:
        number = rs.getDouble(index)
        return None if rs.wasNull() else float(number)
    if kind in _BOOLEANS:
        flag = rs.getBoolean(index)
        return None if rs.wasNull() else bool(flag)
    if kind in _BINARIES:
        data = rs.getBytes(index)
        return None if data is None else bytes(data)
    text = rs.getString(index)
    return None if text is None else str(text)


def _from_java(value: Any) -> Any:
    """An array element as a Python value, exactly (see ``_read_value``)."""
    import jpype

    if value is None:
        return None
    if isinstance(value, jpype.JArray):
        return [_from_java(v) for v in value]
    name = str(value.getClass().getName())
    if name in (
        "java.lang.Integer",
        "java.lang.Long",
        "java.lang.Short",
        "java.lang.Byte",
    ):
        return int(value.longValue())
    if name == "java.math.BigDecimal":
        return Decimal(str(value.toPlainString()))
    if name in ("java.lang.Double", "java.lang.Float"):
        return float(value.doubleValue())
    if name == "java.lang.Boolean":
        return bool(value.booleanValue())
    return str(value.toString())


def password_file(settings: Settings) -> Path:
    return h2_node.password_file(settings)
