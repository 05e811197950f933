"""Finding Java: missing, too old, and version strings of all eras."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core import jvm
from core.errors import JavaError
from core.settings import JvmSettings, Settings


def fake_java(folder: Path, version: str) -> Path:
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


@pytest.mark.parametrize(
    ("version", "major"),
    [("17.0.15", 17), ("1.8.0_392", 8), ("21", 21), ("11.0.2", 11)],
)
def test_java_major(tmp_path: Path, version: str, major: int) -> None:
    assert jvm.java_major(fake_java(tmp_path, version)) == major


def test_too_old_java_is_refused_with_the_fix(tmp_path: Path) -> None:
    fake_java(tmp_path, "11.0.2")
    conf = Settings(jvm=JvmSettings(java_home=str(tmp_path)))
    with pytest.raises(JavaError) as info:
        jvm.find_java(conf)
    assert "Java 11" in str(info.value) and "too old" in str(info.value)
    assert "jvm.java_home" in str(info.value)


def test_java_home_pointing_nowhere(tmp_path: Path) -> None:
    conf = Settings(jvm=JvmSettings(java_home=str(tmp_path / "nope")))
    with pytest.raises(JavaError) as info:
        jvm.find_java(conf)
    assert "does not exist" in str(info.value)


def test_no_java_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError) as info:
        jvm.find_java(Settings())
    assert str(info.value).startswith("Java was not found on PATH")


def test_missing_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError) as info:
        jvm.find_maven(Settings())
    assert "Maven (mvn) was not found" in str(info.value)
    assert "jvm.maven" in str(info.value)


def test_real_java_is_new_enough() -> None:
    java = jvm.find_java(Settings())
    assert java.major >= jvm.MIN_JAVA
    assert os.access(java.executable, os.X_OK)
