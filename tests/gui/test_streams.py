"""The GUI's stream helpers: bounded table model, batches by signal, immortal None."""

from __future__ import annotations

import sys

import pytest
from pytestqt.qtbot import QtBot

from gui.streams import BoundedTableModel, Pump

pytestmark = pytest.mark.gui


def test_singletons_survive_what_pyside_takes_from_them() -> None:
    if sys.version_info >= (3, 12):
        pytest.skip("None, True and False are immortal from CPython 3.12 on")
    assert min(sys.getrefcount(v) for v in (None, True, False)) > 1 << 59


def test_bounded_model_keeps_the_newest_rows_and_formats_each_once() -> None:
    formatted: list[int] = []

    def cells(row: int) -> list[object]:
        formatted.append(row)
        return [row, None]

    model = BoundedTableModel(["n", "empty"], cells, capacity=3)
    model.extend([1, 2, 3, 4, 5])
    assert list(model.rows) == [3, 4, 5] and model.total == 5
    assert [model.data(model.index(r, c)) for r in range(3) for c in range(2)] == [
        "3",
        "",
        "4",
        "",
        "5",
        "",
    ]
    assert formatted == [3, 4, 5]


def test_pump_batches_and_closes_on_its_thread(qtbot: QtBot) -> None:
    feed = iter([[1, 2], [], [3]])
    closed: list[bool] = []
    pump = Pump(
        lambda: next(feed, []), lambda: closed.append(True), "pump-test", every_s=0.0
    )
    got: list[int] = []
    pump.batch.connect(got.extend)
    pump.start()
    qtbot.waitUntil(lambda: got == [1, 2, 3], timeout=5000)
    pump.stop()
    assert closed == [True]
