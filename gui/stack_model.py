"""The embedded stack as the GUI sees it: status polled off the GUI thread, actions."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.settings import Settings
from core.stack import Stack
from core.stack.stack import StackStatus
from gui.bridge import Bridge
from gui.messages import Messages

log = logging.getLogger(__name__)


class StackModel(QObject):
    """Polls the stack's status about once a second and runs node actions.

    Every call into `core.stack` goes through the bridge, so none of them
    blocks the GUI thread.
    """

    changed = Signal(object)  # StackStatus
    progressed = Signal(str)
    started = Signal(object)  # StackStatus, once the stack is ready
    start_failed = Signal(object)  # the error
    busy_changed = Signal(bool)

    def __init__(
        self,
        settings: Settings,
        bridge: Bridge,
        messages: Messages,
        poll_ms: int = 1000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.stack = Stack(settings)
        self.status: StackStatus | None = None
        self.starting = False
        self._bridge = bridge
        self._messages = messages
        self._polling = False
        self._actions = 0
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    @property
    def busy(self) -> bool:
        return self.starting or self._actions > 0

    @Slot()
    def refresh(self) -> None:
        """Ask for a fresh status unless the last request is still out."""
        if self._polling:
            return
        self._polling = True
        self._bridge.run(
            self.stack.status, on_done=self._on_status, on_error=self._on_status_error
        )

    def start(self, complete: bool = False) -> None:
        """Bring the stack up (reusing a running one), reporting progress.

        A stack found partly down (a broker stopped for a demo, say) is left
        as it is unless ``complete``: opening the window must not undo a crash
        someone made on purpose.
        """
        if self.starting:
            return
        self.starting = True
        self.busy_changed.emit(True)
        self.progressed.emit("starting the embedded stack")
        self._bridge.run(
            self._up,
            complete,
            on_done=self._on_started,
            on_error=self._on_start_failed,
            on_progress=self.progressed.emit,
        )

    def _up(self, complete: bool, progress: Any) -> StackStatus:
        status = self.stack.status()
        down = [n.name for n in status.nodes if not n.up]
        if not complete and down and len(down) < len(status.nodes):
            progress(
                f"the stack is partly down ({', '.join(down)}): left as it is; "
                "start brokers here, or everything with File > Start the "
                "embedded stack"
            )
            log.info("opened on a partly stopped stack: %s down", ", ".join(down))
            return status
        status, _ = self.stack.up(progress=progress)
        return status

    def stop_broker(self, broker_id: int) -> None:
        self._act(f"stopping broker {broker_id}", self.stack.stop_broker, broker_id)

    def kill_broker(self, broker_id: int) -> None:
        self._act(f"killing broker {broker_id}", self.stack.kill_broker, broker_id)

    def start_broker(self, broker_id: int) -> None:
        self._act(f"starting broker {broker_id}", self.stack.start_broker, broker_id)

    def _act(self, doing: str, fn: Any, *args: Any) -> None:
        log.info("%s", doing)
        self._actions += 1
        self.busy_changed.emit(True)
        self.progressed.emit(doing)

        def done(_: object) -> None:
            self._finish_action()
            self.progressed.emit(f"{doing}: done")

        def failed(error: BaseException) -> None:
            self._finish_action()
            self._messages.error(error, doing)

        self._bridge.run(fn, *args, on_done=done, on_error=failed)

    def _finish_action(self) -> None:
        self._actions -= 1
        self.busy_changed.emit(self.busy)
        self.refresh()

    def _on_status(self, status: object) -> None:
        self._polling = False
        assert isinstance(status, StackStatus)
        self.status = status
        self.changed.emit(status)

    def _on_status_error(self, error: BaseException) -> None:
        self._polling = False
        log.debug("stack status failed: %s", error)

    def _on_started(self, status: object) -> None:
        self.starting = False
        self.busy_changed.emit(self.busy)
        assert isinstance(status, StackStatus)
        self._on_status(status)
        if all(n.up for n in status.nodes):
            self.progressed.emit("stack ready")
        self.started.emit(status)

    def _on_start_failed(self, error: BaseException) -> None:
        self.starting = False
        self.busy_changed.emit(self.busy)
        self.progressed.emit("the stack did not start")
        self._messages.error(error, "starting the embedded stack")
        self.start_failed.emit(error)

    def stop_polling(self) -> None:
        self._timer.stop()
