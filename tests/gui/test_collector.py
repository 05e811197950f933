"""Qt objects are garbage-collected on the GUI thread, never on another one."""

from __future__ import annotations

import ctypes
import gc
import threading
import weakref

from PySide6.QtCore import QObject

from pytestqt.qtbot import QtBot

from gui.workarounds import GuiThreadCollector


def _qt_garbage(seen: dict[str, int]) -> None:
    """An unreachable cycle holding a QObject: only the cyclic collector
    frees it. ``seen`` gets the thread that freed it."""

    class Holder:
        pass

    holder = Holder()
    holder.me = holder  # type: ignore[attr-defined]
    holder.widget = QObject()  # type: ignore[attr-defined]
    weakref.finalize(holder, lambda: seen.setdefault("freed on", threading.get_ident()))


def test_a_collection_asked_from_another_thread_frees_no_qt_object(
    qtbot: QtBot,
) -> None:
    # The GUI tests' fixture runs one collector already; this one is the app's.
    collector = GuiThreadCollector()
    collector.start()
    seen: dict[str, int] = {}
    try:
        _qt_garbage(seen)
        # What JPype does from its Java reference thread after a Java GC.
        collect = ctypes.pythonapi.PyGC_Collect
        collect.restype = ctypes.c_ssize_t
        answers: list[int] = []
        worker = threading.Thread(target=lambda: answers.append(collect()))
        worker.start()
        worker.join(30)
        assert answers == [0]
        assert "freed on" not in seen
        assert not gc.isenabled()
    finally:
        collector.stop()  # collects here, on the GUI thread
    assert seen["freed on"] == threading.get_ident()
    assert not gc.isenabled()  # still the GUI tests' fixture's choice


def test_the_timer_collects_by_the_interpreters_thresholds(qtbot: QtBot) -> None:
    collector = GuiThreadCollector(interval_ms=20)
    collector.start()
    seen: dict[str, int] = {}
    try:
        _qt_garbage(seen)
        # Enough new containers to pass the youngest generation's threshold.
        kept = [[] for _ in range(gc.get_threshold()[0] + 10)]
        qtbot.waitUntil(lambda: "freed on" in seen, timeout=10_000)
        assert len(kept) > gc.get_threshold()[0]
        assert seen["freed on"] == threading.get_ident()
    finally:
        collector.stop()
