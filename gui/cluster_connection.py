"""Choose which cluster the Cluster view watches: the embedded stack or a profile."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QWidget,
)

from core.errors import StudioError
from core.kafka import profiles
from core.kafka.inspector import ClusterInspector
from core.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED = "embedded stack"


class ConnectionChooser(QWidget):
    """A list of connections; choosing one builds its inspector.

    Passwords come from the OS keyring or are asked for here, on the GUI
    thread, before any client exists; nothing is written anywhere.
    """

    chosen = Signal(object, bool)  # ClusterInspector, read_only
    refused = Signal(str)

    def __init__(
        self,
        settings: Settings,
        path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings = settings
        self.path = path or profiles.profiles_path()
        self.combo = QComboBox()
        self.combo.setToolTip(f"connection profiles from {self.path}")
        box = QHBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(QLabel("Cluster:"))
        box.addWidget(self.combo, 1)
        self.reload()
        self.combo.activated.connect(self._on_activated)

    def reload(self) -> None:
        """Read the profiles file again (it may have changed from the CLI)."""
        try:
            names = sorted(profiles.load(self.path))
        except StudioError as exc:
            log.warning("profiles not read: %s", exc)
            names = []
        self.combo.clear()
        self.combo.addItems([EMBEDDED, *names])

    def ask_password(self, prompt: str) -> str | None:
        text, ok = QInputDialog.getText(
            self, "Password", prompt, QLineEdit.EchoMode.Password
        )
        return text if ok else None

    def choose(self, name: str) -> None:
        """Connect to ``name`` (a profile, or the embedded stack)."""
        if name == EMBEDDED:
            inspector = ClusterInspector.for_settings(self._settings, timeout=5)
            self.chosen.emit(inspector, False)
            return
        try:
            profile = profiles.get(self.path, name)
            profile.validate()
            password = profiles.password_for(profile, self.ask_password)
            config = profile.client_config(password)
        except StudioError as exc:
            self.refused.emit(str(exc))
            return
        inspector = ClusterInspector(config, read_only=profile.read_only, timeout=5)
        self.chosen.emit(inspector, profile.read_only)

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        self.choose(self.combo.itemText(index))
