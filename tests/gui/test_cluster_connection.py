"""The Cluster view switches clusters: a read-only profile, an unreachable one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.kafka import profiles
from core.kafka.inspector import ClusterInspector
from core.kafka.profiles import ConnectionProfile
from core.settings import Settings
from gui.bridge import Bridge
from gui.cluster_connection import EMBEDDED, ConnectionChooser
from gui.panels.cluster import ClusterPanel, ClusterRefresher
from tests.conftest import PORT_BASE
from tests.keyring_fake import MemoryKeyring, memory_keyring

pytestmark = pytest.mark.integration
__all__ = ["memory_keyring"]  # the fixture, used by name
CLOSED = f"127.0.0.1:{PORT_BASE + 272}"


@pytest.fixture
def chooser_and_panel(
    qtbot: QtBot, stack_settings: Settings, bootstrap: str, tmp_path: Path
) -> Iterator[tuple[ConnectionChooser, ClusterPanel]]:
    path = tmp_path / "profiles.toml"
    profiles.save(
        path,
        {
            "ro": ConnectionProfile("ro", bootstrap, read_only=True),
            "gone": ConnectionProfile("gone", CLOSED),
            "sasl": ConnectionProfile("sasl", CLOSED, "SASL_PLAINTEXT", "PLAIN", "bob"),
        },
    )
    bridge = Bridge()
    refresher = ClusterRefresher(
        ClusterInspector.for_settings(stack_settings), bridge, interval_ms=500
    )
    panel = ClusterPanel(refresher, bridge)
    chooser = ConnectionChooser(stack_settings, path)
    chooser.chosen.connect(panel.set_connection)
    chooser.refused.connect(panel.on_connection_refused)
    panel.header.addWidget(chooser)
    qtbot.addWidget(panel)
    panel.show()
    refresher.start()
    yield chooser, panel
    refresher.stop()
    bridge.wait_idle()
    refresher.inspector.close()


def test_read_only_unreachable_and_back_to_the_stack(
    qtbot: QtBot,
    chooser_and_panel: tuple[ConnectionChooser, ClusterPanel],
    memory_keyring: MemoryKeyring,
) -> None:
    chooser, panel = chooser_and_panel
    assert [chooser.combo.itemText(i) for i in range(chooser.combo.count())] == [
        EMBEDDED,
        "gone",
        "ro",
        "sasl",
    ]
    qtbot.waitUntil(lambda: panel.snapshot is not None, timeout=20_000)
    assert panel.delete_button.isVisible()

    chooser.choose("ro")
    assert not panel.delete_button.isVisible()
    assert not panel.create_button.isVisible()
    qtbot.waitUntil(lambda: panel.snapshot is not None, timeout=20_000)
    assert panel.refresher.inspector.read_only

    chooser.choose("gone")
    qtbot.waitUntil(
        lambda: panel.summary.text().startswith(
            f"cluster unreachable: No broker answers at {CLOSED}"
        ),
        timeout=30_000,
    )
    assert panel.snapshot is None

    asked: list[str] = []
    chooser.ask_password = lambda prompt: asked.append(prompt)  # type: ignore[method-assign]
    chooser.choose("sasl")
    assert asked == ["Password for bob (sasl): "]
    assert panel.summary.text().startswith(
        "not connected: No password for profile sasl"
    )

    chooser.choose(EMBEDDED)
    assert panel.delete_button.isVisible()
    qtbot.waitUntil(lambda: panel.snapshot is not None, timeout=20_000)
