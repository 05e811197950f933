"""Background readers for the GUI: a loop on its own thread, batches back by signal."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

log = logging.getLogger(__name__)


class Pump(QObject):
    """Calls ``poll()`` in a loop on a thread; sends what it returns in batches.

    A batch goes out at most every ``every_s`` (about 20 per second), so a
    fast topic cannot flood the GUI thread with signals. ``close()`` runs on
    the same thread when the loop ends (clients are closed where they ran).
    """

    batch = Signal(object)  # list of whatever poll() returned, concatenated
    failed = Signal(object)  # the exception that ended the loop

    def __init__(
        self,
        poll: Callable[[], list[Any]],
        close: Callable[[], None],
        name: str,
        every_s: float = 0.05,
    ) -> None:
        super().__init__()
        self._poll = poll
        self._close = close
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Any] = []
        sent = time.monotonic()
        try:
            while not self._stop.is_set():
                pending += self._poll()
                if pending and time.monotonic() - sent >= self._every_s:
                    self.batch.emit(pending)
                    pending, sent = [], time.monotonic()
            if pending:
                self.batch.emit(pending)
        except Exception as exc:  # noqa: BLE001 - shown to the user by the panel
            log.info("%s stopped: %s", self._thread.name, exc)
            self.failed.emit(exc)
        finally:
            self._close()


class BoundedTableModel(QAbstractTableModel):
    """The newest ``capacity`` rows; cells are formatted only when shown."""

    def __init__(
        self,
        columns: list[str],
        cells: Callable[[Any], list[Any]],
        capacity: int = 2000,
    ) -> None:
        super().__init__()
        self.columns = columns
        self._cells = cells
        self.rows: deque[Any] = deque(maxlen=capacity)
        self.total = 0
        self._shown: dict[int, list[Any]] = {}  # formatted rows, until the next batch

    def extend(self, items: list[Any]) -> None:
        self.beginResetModel()
        self.rows.extend(items)
        self.total += len(items)
        self._shown.clear()
        self.endResetModel()

    def clear(self) -> None:
        self.beginResetModel()
        self.rows.clear()
        self._shown.clear()
        self.total = 0
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return len(self.rows)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        row = index.row()
        cells = self._shown.get(row)
        if cells is None:
            cells = self._shown[row] = self._cells(self.rows[row])
        value = cells[index.column()]
        return "" if value is None else str(value)

    def headerData(  # noqa: N802 - Qt's name
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
        ):
            return self.columns[section]
        return None
