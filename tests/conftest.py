"""Shared fixtures: one real embedded stack per test session."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack

log = logging.getLogger(__name__)

# Tests use their own ports (away from a user's running stack) and their own
# data folder. CDC_STUDIO_TEST_PORT_BASE moves the whole range.
PORT_BASE = int(os.environ.get("CDC_STUDIO_TEST_PORT_BASE", "29090"))


def test_settings(data_dir: Path, brokers: int = 3) -> Settings:
    """Settings for a stack in ``data_dir`` on the test port range."""
    return Settings(
        data_dir=str(data_dir),
        kafka=KafkaSettings(
            brokers=brokers, controller_port=PORT_BASE, base_port=PORT_BASE + 2
        ),
        h2=H2Settings(port=PORT_BASE + 100),
    )


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = os.environ.get("CDC_STUDIO_TEST_DATA_DIR")
    path = Path(data_dir) if data_dir else tmp_path_factory.mktemp("stack")
    return test_settings(path)


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Stack]:
    """The real stack (controller, 3 brokers, H2), started once per session.

    With CDC_STUDIO_TEST_DATA_DIR set, a stack already running there is reused
    and left running for the next session (stop it with `cdc-studio
    --data-dir DIR stack down`); otherwise the session starts and wipes its own.
    """
    keep = bool(os.environ.get("CDC_STUDIO_TEST_DATA_DIR"))
    stack = Stack(stack_settings)
    stack.up(progress=lambda message: log.info("stack: %s", message))
    yield stack
    if not keep:
        stack.down(wipe=True)


@pytest.fixture(scope="session")
def bootstrap(stack: Stack) -> str:
    return stack.status().bootstrap_servers
