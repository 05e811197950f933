"""Work-arounds for faults of the libraries under the GUI, applied once at import."""

from __future__ import annotations

import ctypes
import gc
import sys


def make_singletons_immortal() -> None:
    """Keep PySide6 6.12 from freeing None, True or False on CPython 3.11.

    Each None a Python ``headerData()`` override returns to Qt lowers None's
    reference count by one (measured: -600 for 200 repaints of a header) and
    bools returned from some overrides do the same to True and False. Where
    these objects are not yet immortal (CPython before 3.12) a count reaches
    zero after a while and the interpreter aborts ("deallocating None").
    Raising each count once by far more than a process can lose makes them as
    immortal as they are from CPython 3.12 on.
    """
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    for singleton in (None, True, False):
        refcount = ctypes.c_ssize_t.from_address(id(singleton))
        if refcount.value < 1 << 60:
            refcount.value += 1 << 60


class GuiThreadCollector:
    """Python's cyclic garbage collection, run on the GUI thread only.

    Left to itself, a collection runs on whichever thread happens to allocate,
    and JPype runs a full one from its Java reference thread after every Java
    garbage collection. Either way unreachable Qt objects get destroyed off
    the GUI thread: that thread then holds a Qt mutex while it waits for the
    GIL, the GUI thread holds the GIL while it waits for the same mutex (it
    was destroying widgets), and the window freezes for good. Found in a test
    run: the JPype thread in ~QObject, the GUI thread in ~QMenu.

    So while the GUI runs, automatic collection is off (JPype's call into the
    collector respects that) and a timer on the GUI thread collects instead,
    a generation at a time by the interpreter's own thresholds.
    """

    def __init__(self, interval_ms: int = 200) -> None:
        from PySide6.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Collect once more here, then give collection back to the interpreter."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    @staticmethod
    def collect() -> int:
        """One generation's collection if its threshold is passed (as the
        interpreter would have done), on the calling (GUI) thread."""
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                return gc.collect(generation)
        return 0
