"""Runs blocking calls off the GUI thread and brings their results back by signal."""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from core.h2.connection import release_thread

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[BaseException], None]
Progress = Callable[[str], None]


class _Call:
    """One blocking call on a worker thread; reports through the bridge's signals."""

    def __init__(
        self,
        bridge: Bridge,
        token: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        with_progress: bool,
    ) -> None:
        self.bridge = bridge
        self.token = token
        self.fn = fn
        self.args = args
        self.with_progress = with_progress

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def run(self) -> None:
        bridge, token = self.bridge, self.token
        args = self.args
        if self.with_progress:
            args = (*args, lambda message: bridge.progressed.emit(token, str(message)))
        try:
            try:
                result = self.fn(*args)
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

    The workers are Python daemon threads, started when calls are waiting
    and gone when none are left. Nothing on the GUI thread ever waits for
    them without a bound: not closing the window, not destroying the bridge
    (a QThreadPool's destructor would wait forever for a call stuck in a
    client library, freezing the window and, in a test, the whole run).
    """

    finished = Signal(int, object)
    failed = Signal(int, object)
    progressed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, max_threads: int = 6) -> None:
        super().__init__(parent)
        self._max_threads = max_threads
        self._tokens = itertools.count(1)
        self._names = itertools.count(1)
        self._pending: dict[
            int, tuple[Done | None, Failed | None, Progress | None]
        ] = {}
        self._queue: deque[_Call] = deque()
        self._workers = 0  # live worker threads
        self._active: dict[int, _Call] = {}  # worker ident -> the call it runs
        self._lock = threading.Condition()
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
        """Call ``fn(*args)`` on a worker thread; with ``on_progress`` it gets a
        progress callable as its last argument."""
        token = next(self._tokens)
        self._pending[token] = (on_done, on_error, on_progress)
        call = _Call(self, token, fn, args, on_progress is not None)
        with self._lock:
            self._queue.append(call)
            between_calls = self._workers - len(self._active)
            start = (
                len(self._queue) > between_calls and self._workers < self._max_threads
            )
            if start:
                self._workers += 1
        if start:
            name = f"bridge-{next(self._names)}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return token

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._lock:
                if not self._queue:
                    self._workers -= 1
                    self._lock.notify_all()
                    return
                call = self._queue.popleft()
                self._active[me] = call
            try:
                call.run()
            finally:
                with self._lock:
                    del self._active[me]

    @property
    def busy(self) -> int:
        """Calls started and not yet answered."""
        return len(self._pending)

    def running_calls(self) -> list[str]:
        """Names of the calls waiting or running now (for logs and tests)."""
        with self._lock:
            return [c.name for c in [*self._active.values(), *self._queue]]

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Wait, at most ``timeout_ms``, until no call waits or runs.

        False when calls are still out; they are named in the log, and left
        to finish on their own (their results then go nowhere).
        """
        with self._lock:
            idle = self._lock.wait_for(
                lambda: not self._workers and not self._queue, timeout_ms / 1000
            )
        if not idle:
            log.warning(
                "background calls still running after %.0f s: %s",
                timeout_ms / 1000,
                ", ".join(self.running_calls()),
            )
        return idle

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
