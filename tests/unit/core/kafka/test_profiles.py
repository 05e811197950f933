"""Connection profiles: file round trip without secrets, keyring, client configs."""

from __future__ import annotations

from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from core.errors import ProfileError
from core.kafka import profiles
from core.kafka.profiles import ConnectionProfile
from tests.keyring_fake import MemoryKeyring, memory_keyring

__all__ = ["memory_keyring"]  # the fixture, used by name


def sasl_profile(tmp_path: Path) -> ConnectionProfile:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return ConnectionProfile(
        "prod",
        "127.0.0.1:9093",
        "SASL_SSL",
        "SCRAM-SHA-512",
        "alice",
        ssl_ca_location=str(ca),
        ssl_check_hostname=False,
        read_only=True,
    )


def test_file_round_trip_keeps_no_password(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    path = tmp_path / "profiles.toml"
    profile = sasl_profile(tmp_path)
    profiles.save(path, {"prod": profile})
    profiles.store_password(profile, "s3cret-pw")

    assert profiles.load(path) == {"prod": profile}
    assert "s3cret-pw" not in path.read_text()
    assert memory_keyring.secrets == {("kafka-cdc-studio", "prod:alice"): "s3cret-pw"}
    assert profiles.password_for(profile, ask=None) == "s3cret-pw"

    config = profile.client_config("s3cret-pw")
    assert config == {
        "bootstrap.servers": "127.0.0.1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret-pw",
        "ssl.endpoint.identification.algorithm": "none",
        "ssl.ca.location": profile.ssl_ca_location,
    }
    profiles.forget_password(profile)
    assert memory_keyring.secrets == {}


def test_password_is_asked_for_when_not_stored(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    profile = sasl_profile(tmp_path)
    prompts: list[str] = []
    answer = profiles.password_for(profile, lambda p: prompts.append(p) or "typed")
    assert answer == "typed"
    assert prompts == ["Password for alice (prod): "]
    with pytest.raises(ProfileError, match="No password for profile prod"):
        profiles.password_for(profile, lambda p: "")
    plain = ConnectionProfile("dev", "127.0.0.1:9092")
    assert profiles.password_for(plain, ask=None) is None


def test_without_an_os_keyring_storing_says_so(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        with pytest.raises(ProfileError, match="No OS keyring") as caught:
            profiles.store_password(sasl_profile(tmp_path), "pw")
        assert "asked for at each connection" in (caught.value.hint or "")
    finally:
        keyring.set_keyring(previous)


def test_bad_profiles_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="security protocol"):
        ConnectionProfile("x", "h:1", "SASL").validate()
    with pytest.raises(ProfileError, match="SASL mechanism"):
        ConnectionProfile("x", "h:1", "SASL_PLAINTEXT", sasl_username="u").validate()
    with pytest.raises(ProfileError, match="does not exist"):
        ConnectionProfile("x", "h:1", "SSL", ssl_ca_location="/nope.pem").validate()

    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.x]\nbootstrap_servers = "h:1"\npassword = "pw"\n')
    with pytest.raises(ProfileError, match="unknown keys: password"):
        profiles.load(path)
    with pytest.raises(ProfileError, match="no connection profile 'y'"):
        profiles.get(path.with_name("none.toml"), "y")
