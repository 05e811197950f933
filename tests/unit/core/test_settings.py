"""Settings: defaults, TOML round trip, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import settings
from core.errors import SettingsError


def test_defaults_avoid_usual_ports() -> None:
    conf = settings.Settings()
    assert conf.kafka.brokers == 3
    assert conf.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert 9092 not in (conf.kafka.controller_port, conf.h2.port, conf.kafka.base_port)
    settings.validate(conf)


def test_round_trip(tmp_path: Path) -> None:
    conf = settings.Settings(data_dir=str(tmp_path / "d"))
    conf.kafka.base_port = 20092
    conf.h2.port = 20190
    path = settings.save(conf, tmp_path / "s.toml")
    loaded = settings.load(path)
    assert loaded == conf
    assert loaded.data_path == tmp_path / "d"


def test_data_dir_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(settings.ENV_DATA_DIR, str(tmp_path / "env"))
    assert settings.Settings().data_path == tmp_path / "env"
    assert (
        settings.Settings(data_dir=str(tmp_path / "own")).data_path == tmp_path / "own"
    )


def test_missing_default_file_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDC_STUDIO_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings.load() == settings.Settings()


def test_missing_named_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SettingsError, match=r"absent\.toml does not exist") as info:
        settings.load(tmp_path / "absent.toml")
    assert "--config" in (info.value.hint or "")

    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(SettingsError, match=r"none\.toml does not exist"):
        settings.load()


def test_a_bad_value_names_the_file_and_an_example(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[kafka]\nbrokers = 'three'\n")
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert str(info.value.args[0]).startswith(f"{path}: Setting kafka.brokers")
    assert info.value.hint == "for example: brokers = 3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[kafka]\nbrokerz = 3\n", "Unknown setting kafka.brokerz"),
        ("[kafka]\nbrokers = 'three'\n", "Setting kafka.brokers must be int, not str"),
        ("[kafka]\nbrokers = 12\n", "kafka.brokers is 12"),
        ("[h2]\nport = 19092\n", "both use port 19092"),
        ("[h2]\nport = 80\n", "h2.port is 80"),
        ("kafka = [", "Cannot read settings file"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        settings.load(path)
    assert expected in str(info.value)
