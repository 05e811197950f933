"""The `cdc-studio` entry point: the window through the real command, Qt only then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

import pytest

from core import settings
from core.settings import Settings
from core.stack import Stack


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "gui.launch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_the_command_opens_the_window_and_saves_it(
    stack: Stack, stack_settings: Settings, tmp_path: Path
) -> None:
    config = settings.save(stack_settings, tmp_path / "settings.toml")
    picture = tmp_path / "window.png"

    done = _run(["--config", str(config), "--no-stack", "--screenshot", str(picture)])

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"screenshot saved to {picture}")
    image = QImage(str(picture))
    assert image.width() >= 800 and image.height() >= 600
    assert "Traceback" not in done.stderr


def test_commands_without_a_window_never_load_qt(tmp_path: Path) -> None:
    code = (
        "import sys; from gui import launch; "
        f"sys.argv = ['cdc-studio', '--data-dir', {str(tmp_path)!r}, 'stack', "
        "'status', '--json']; launch.main(); "
        "print('qt loaded' if 'PySide6' in sys.modules else 'no qt')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "no qt"


@pytest.mark.parametrize("argv", [[]])
def test_core_alone_has_no_window(argv: list[str], tmp_path: Path) -> None:
    from core.cli import main

    assert main(["--data-dir", str(tmp_path), *argv]) == 2
