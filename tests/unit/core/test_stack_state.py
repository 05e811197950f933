"""The stack's recorded state guards: wipe, broker count and ports, no processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DataDirError, SettingsError, StackError
from core.settings import H2Settings, KafkaSettings, Settings
from core.stack import Stack


def _settings(data_dir: Path, base: int = 21090, brokers: int = 3) -> Settings:
    return Settings(
        data_dir=str(data_dir),
        kafka=KafkaSettings(brokers=brokers, controller_port=base, base_port=base + 2),
        h2=H2Settings(port=base + 100),
    )


def _stopped_stack(settings: Settings, brokers: int = 3) -> Stack:
    """A stack state file as a set-up stack leaves it, with every node down."""
    stack = Stack(settings)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    records = stack._plan(brokers, {})
    stack._save_state(
        {
            "version": 1,
            "cluster_id": "test-cluster-id-00000",
            "nodes": {name: r.to_json() for name, r in records.items()},
        }
    )
    return stack


def test_wipe_refuses_a_folder_without_a_stack(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("important")

    with pytest.raises(DataDirError, match="holds no stack") as info:
        Stack(_settings(tmp_path)).down(wipe=True)

    assert "nothing was wiped" in str(info.value)
    assert (tmp_path / "docs" / "thesis.txt").read_text() == "important"


def test_wipe_removes_only_what_the_application_wrote(tmp_path: Path) -> None:
    stack = _stopped_stack(_settings(tmp_path))
    for folder in (
        "kafka/broker-1",
        "h2",
        "relay",
        "consumers",
        "demos/runs",
        "jvm/b",
        "logs",
        "screenshots",
    ):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "file").write_text("x")
    (tmp_path / "notes.md").write_text("mine")

    assert stack.down(wipe=True) == []

    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["jvm", "logs", "notes.md", "stack.lock"]
    assert (tmp_path / "jvm" / "b" / "file").exists()


def test_a_stopped_stack_keeps_its_broker_count(tmp_path: Path) -> None:
    stack = _stopped_stack(_settings(tmp_path))

    with pytest.raises(StackError) as info:
        stack.up(brokers=1)

    assert "has 3 brokers (stopped); it cannot become one of 1" in str(info.value)
    assert info.value.hint is not None and "--brokers 3" in info.value.hint


@pytest.mark.parametrize("brokers", [0, -2, 10])
def test_impossible_broker_counts_are_refused(tmp_path: Path, brokers: int) -> None:
    with pytest.raises(SettingsError, match=f"A stack of {brokers} brokers"):
        Stack(_settings(tmp_path)).up(brokers=brokers)
    assert not (tmp_path / "kafka").exists()


def test_status_shows_recorded_ports_and_acting_on_other_ports_is_refused(
    tmp_path: Path,
) -> None:
    _stopped_stack(_settings(tmp_path, base=21090))
    moved = Stack(_settings(tmp_path, base=21190))

    status = moved.status()
    assert status.bootstrap_servers == "127.0.0.1:21092,127.0.0.1:21093,127.0.0.1:21094"
    assert status.h2_url == "jdbc:h2:tcp://127.0.0.1:21190/studio"
    assert [n.port for n in status.nodes] == [21090, 21092, 21093, 21094, 21190]

    with pytest.raises(StackError, match="other ports than the settings give") as info:
        moved.up()
    assert "broker-2 21093 (settings: 21193)" in str(info.value)
    with pytest.raises(StackError, match="other ports"):
        moved.start_broker(2)
