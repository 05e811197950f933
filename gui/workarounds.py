"""Work-arounds for faults of the libraries under the GUI, applied once at import."""

from __future__ import annotations

import ctypes
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
