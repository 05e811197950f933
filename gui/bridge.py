"""Runs blocking calls off the GUI thread and brings their results back by signal."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from core.h2.connection import release_thread

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]
Progress = Callable[[str], None]


class _Call(QRunnable):
    """One blocking call on a pool thread; reports through the bridge's signals."""

    def __init__(
        self,
        bridge: Bridge,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        with_progress: bool,
    ) -> None:
        super().__init__()
        self._bridge = bridge
        self._token = token
        self._fn = fn
        self._args = args
        self._with_progress = with_progress

    def run(self) -> None:
        bridge, token = self._bridge, self._token
        args = self._args
        if self._with_progress:
            args = (*args, lambda message: bridge.progressed.emit(token, str(message)))
        try:
            try:
                result = self._fn(*args)
            except BaseException as exc:  # noqa: BLE001 - every failure goes to the GUI
                bridge.failed.emit(token, exc)
            else:
                bridge.finished.emit(token, result)
        except RuntimeError:
            # The window (and its bridge) went away while the call ran: nobody
            # is left to tell, which is fine at shutdown.
            log.debug("result of a background call dropped: the bridge is gone")
        finally:
            release_thread()


class Bridge(QObject):
    """The one way the GUI calls into core: `run` off the GUI thread, results by signal.

    Callbacks given to `run` are called on the GUI thread, from queued signals,
    so they may touch widgets.
    """

    finished = Signal(int, object)
    failed = Signal(int, object)
    progressed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, max_threads: int = 6) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._tokens = itertools.count(1)
        self._pending: dict[
            int, tuple[Done | None, Failed | None, Progress | None]
        ] = {}
        self.gui_thread = threading.get_ident()
        self.finished.connect(self._on_finished)
        self.failed.connect(self._on_failed)
        self.progressed.connect(self._on_progressed)

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Done | None = None,
        on_error: Failed | None = None,
        on_progress: Progress | None = None,
    ) -> int:
        """Call ``fn(*args)`` on a pool thread; with ``on_progress`` it gets a
        progress callable as its last argument."""
        token = next(self._tokens)
        self._pending[token] = (on_done, on_error, on_progress)
        self._pool.start(_Call(self, token, fn, args, on_progress is not None))
        return token

    @property
    def busy(self) -> int:
        """Calls started and not yet answered."""
        return len(self._pending)

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Wait for the pool's threads (for shutdown and tests)."""
        return self._pool.waitForDone(timeout_ms)

    @Slot(int, object)
    def _on_finished(self, token: int, result: object) -> None:
        on_done, _, _ = self._pending.pop(token, (None, None, None))
        if on_done is not None:
            on_done(result)

    @Slot(int, object)
    def _on_failed(self, token: int, error: object) -> None:
        _, on_error, _ = self._pending.pop(token, (None, None, None))
        assert isinstance(error, BaseException)
        if on_error is not None:
            on_error(error)
        else:
            log.warning("background call failed: %s", error, exc_info=error)

    @Slot(int, str)
    def _on_progressed(self, token: int, message: str) -> None:
        _, _, on_progress = self._pending.get(token, (None, None, None))
        if on_progress is not None:
            on_progress(message)
