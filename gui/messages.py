"""One path for messages to the user: logged, shown, and held until a window exists."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import StudioError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """Something the user should read: a level, a text and what to do about it."""

    level: int
    text: str
    hint: str | None = None

    def full_text(self) -> str:
        return f"{self.text}\n{self.hint}" if self.hint else self.text


class Messages:
    """Logs each message and shows it, or holds it until something can show it."""

    def __init__(self, held: int = 200) -> None:
        self._held: deque[Message] = deque(maxlen=held)
        self._sink: Callable[[Message], None] | None = None

    def attach(self, sink: Callable[[Message], None]) -> None:
        """Show messages with ``sink`` from now on, starting with the held ones."""
        self._sink = sink
        while self._held:
            sink(self._held.popleft())

    def say(self, level: int, text: str, hint: str | None = None) -> None:
        log.log(level, "%s%s", text, f" ({hint})" if hint else "")
        message = Message(level, text, hint)
        if self._sink is None:
            self._held.append(message)
        else:
            self._sink(message)

    def error(self, error: BaseException, doing: str) -> None:
        """Report a failed action: our errors by their message and hint, bugs with a
        traceback in the log."""
        if isinstance(error, StudioError):
            self.say(logging.ERROR, f"{doing} failed: {error.args[0]}", error.hint)
        elif isinstance(error, TimeoutError):
            self.say(
                logging.WARNING,
                f"{doing} failed: no answer in time",
                "check that the brokers and H2 are up (Stack panel); it is retried",
            )
        else:
            log.error("%s failed with an unexpected error", doing, exc_info=error)
            self.say(
                logging.ERROR,
                f"{doing} failed: {type(error).__name__}: {error}",
                "this is a bug; the log has the traceback",
            )
