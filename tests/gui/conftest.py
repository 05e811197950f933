"""GUI tests run offscreen: no display is needed or used."""

import os
from collections.abc import Iterator

from PySide6.QtWidgets import QApplication

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread(qapp: QApplication) -> Iterator[None]:
    """As in the application: garbage is collected on the GUI thread only
    (gui/workarounds.py says why), and once more at the end of each test."""
    from gui.workarounds import GuiThreadCollector

    collector = GuiThreadCollector()
    collector.start()
    yield
    collector.stop()
