"""The `cdc-studio` entry point: the command line, which opens the window if asked."""

from __future__ import annotations

import sys
from typing import Any

from core import cli
from core.settings import Settings


def main() -> int:
    return cli.main(sys.argv[1:], open_gui=_open_gui)


def _open_gui(settings: Settings, **options: Any) -> int:
    from gui.app import run_gui  # Qt loads only when a window is wanted

    return run_gui(settings, **options)


if __name__ == "__main__":
    sys.exit(main())
