"""Run `cdc-studio demo ...` against the session's stack and read its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import settings as settings_module
from core.settings import Settings
from core.stack import Stack

DemoCli = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture(scope="session")
def demo_config(
    stack: Stack, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A settings file that points the CLI at the test stack."""
    path = tmp_path_factory.mktemp("demo-config") / "settings.toml"
    return settings_module.save(stack_settings, path)


@pytest.fixture(scope="session")
def demo_cli(demo_config: Path) -> DemoCli:
    def run(*args: str, timeout: float = 240) -> tuple[int, dict[str, Any]]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "core.cli",
                "--config",
                str(demo_config),
                "demo",
                *args,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).resolve().parents[3],
        )
        assert done.stdout.strip(), done.stderr[-2000:]
        return done.returncode, json.loads(done.stdout)

    return run


def read_jsonl(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The JSON lines of ``<name>.jsonl`` in the run folder (a worker's own log)."""
    path = Path(result["run_dir"]) / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]
