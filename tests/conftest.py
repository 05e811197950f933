"""Shared fixtures: one real embedded stack per test session."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack

log = logging.getLogger(__name__)

# Tests use their own ports (away from a user's running stack) and their own
# data folder. CDC_STUDIO_TEST_PORT_BASE moves the whole range; keep it below
# 32768, where Linux starts handing out ephemeral ports to outgoing connections.
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
    _SESSION_STACKS.append(stack)
    yield stack
    if not keep:
        stack.down(wipe=True)


@pytest.fixture(scope="session")
def bootstrap(stack: Stack) -> str:
    return stack.status().bootstrap_servers


# -- hygiene: every test leaves no warning, thread or process behind ----------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_warnings: the test provokes warning logs from core or gui on purpose",
    )


class _WarningCollector(logging.Handler):
    """Keeps WARNING and worse records from the project's own loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("core", "gui"):
            self.records.append(record)


def _own_children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _stack_pids() -> set[int]:
    """The session stack's nodes: restarted brokers are its children, not leaks."""
    return {
        node.pid
        for stack in _SESSION_STACKS
        for node in stack.status().nodes
        if node.pid is not None
    }


_SESSION_STACKS: list[Stack] = []


@pytest.fixture(autouse=True)
def _hygiene(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that logs an unexpected warning or leaves a thread or process."""
    collector = _WarningCollector()
    logging.getLogger().addHandler(collector)
    threads_before = set(threading.enumerate())
    children_before = _own_children()
    yield
    logging.getLogger().removeHandler(collector)

    if collector.records and not request.node.get_closest_marker("expect_warnings"):
        lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in collector.records]
        pytest.fail("unexpected warning logs:\n" + "\n".join(lines), pytrace=False)

    deadline = time.monotonic() + 10
    while True:
        threads = [
            t
            for t in set(threading.enumerate()) - threads_before
            if t.is_alive() and not isinstance(t, threading._DummyThread)
        ]
        children = _own_children() - children_before - _stack_pids()
        alive = [
            p
            for p in children
            if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if (not threads and not alive) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if threads:
        pytest.fail(f"threads left running: {[t.name for t in threads]}", pytrace=False)
    if alive:
        names = [" ".join(psutil.Process(p).cmdline()[:4]) for p in alive]
        pytest.fail(f"processes left running: {names}", pytrace=False)
