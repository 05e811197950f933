"""GUI tests run offscreen: no display is needed or used."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
