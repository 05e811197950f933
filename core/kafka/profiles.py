"""Connection profiles for external clusters; passwords live in the OS keyring only.

Profiles are kept in ``profiles.toml`` beside the settings file (or in
``$CDC_STUDIO_PROFILES``). The file never holds a password: it goes to the
OS keyring (the ``keyring`` package) or is asked for at each connection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import tomli_w

from core.errors import ProfileError
from core.kafka.inspector import ClusterInspector
from core.settings import Settings, default_config_path

log = logging.getLogger(__name__)

ENV_PROFILES = "CDC_STUDIO_PROFILES"
KEYRING_SERVICE = "kafka-cdc-studio"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
AskPassword = Callable[[str], str | None]


@dataclass
class ConnectionProfile:
    """How to reach one cluster. ``read_only`` hides every write and demo."""

    name: str
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    ssl_ca_location: str = ""
    ssl_certificate_location: str = ""
    ssl_key_location: str = ""
    ssl_check_hostname: bool = True
    read_only: bool = False

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        if not self.name or not self.bootstrap_servers:
            raise ProfileError("A profile needs a name and bootstrap servers")
        if self.security_protocol not in PROTOCOLS:
            raise ProfileError(
                f"Unknown security protocol {self.security_protocol!r}",
                hint=f"use one of {', '.join(PROTOCOLS)}",
            )
        if self.uses_sasl and self.sasl_mechanism not in MECHANISMS:
            raise ProfileError(
                f"Profile {self.name} needs a SASL mechanism",
                hint=f"use one of {', '.join(MECHANISMS)}",
            )
        if self.uses_sasl and not self.sasl_username:
            raise ProfileError(f"Profile {self.name} needs a SASL user name")
        if self.ssl_ca_location and not Path(self.ssl_ca_location).is_file():
            raise ProfileError(
                f"The CA file {self.ssl_ca_location} does not exist",
                hint="give the PEM file of the CA that signed the brokers' "
                "certificates",
            )

    def client_config(self, password: str | None = None) -> dict[str, Any]:
        """The librdkafka config of this profile (``password`` for SASL)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.uses_sasl:
            if password is None:
                raise ProfileError(f"Profile {self.name} needs its password")
            config |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": password,
            }
        if self.uses_tls:
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
            for key, value in (
                ("ssl.ca.location", self.ssl_ca_location),
                ("ssl.certificate.location", self.ssl_certificate_location),
                ("ssl.key.location", self.ssl_key_location),
            ):
                if value:
                    config[key] = value
        return config


def profiles_path(settings_file: Path | None = None) -> Path:
    env = os.environ.get(ENV_PROFILES)
    if env:
        return Path(env).expanduser()
    return (settings_file or default_config_path()).parent / "profiles.toml"


def load(path: Path) -> dict[str, ConnectionProfile]:
    """Every profile in ``path`` (none if the file does not exist)."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(
            f"Cannot read the profiles file {path}: {exc}",
            hint="fix the file or delete it",
        ) from exc
    known = {f.name for f in dataclasses.fields(ConnectionProfile)}
    profiles: dict[str, ConnectionProfile] = {}
    for name, values in data.get("profiles", {}).items():
        unknown = set(values) - known
        if unknown:
            raise ProfileError(
                f"Profile {name} in {path} has unknown keys: "
                f"{', '.join(sorted(unknown))}",
                hint=f"known keys: {', '.join(sorted(known - {'name'}))}",
            )
        profiles[name] = ConnectionProfile(**(values | {"name": name}))
    return profiles


def save(path: Path, profiles: dict[str, ConnectionProfile]) -> None:
    data = {
        "profiles": {
            name: {k: v for k, v in dataclasses.asdict(p).items() if k != "name"}
            for name, p in sorted(profiles.items())
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def get(path: Path, name: str) -> ConnectionProfile:
    profiles = load(path)
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none yet"
        raise ProfileError(
            f"There is no connection profile {name!r}",
            hint=f"profiles: {known}; add one with `cdc-studio profile add`",
        )
    return profiles[name]


def _account(profile: ConnectionProfile) -> str:
    return f"{profile.name}:{profile.sasl_username}"


def store_password(profile: ConnectionProfile, password: str) -> None:
    """Keep ``password`` in the OS keyring."""
    try:
        keyring.set_password(KEYRING_SERVICE, _account(profile), password)
    except keyring.errors.KeyringError as exc:
        raise ProfileError(
            f"No OS keyring to keep the password of {profile.name} in ({exc})",
            hint="the password will be asked for at each connection instead",
        ) from exc
    log.info("password of profile %s kept in the OS keyring", profile.name)


def forget_password(profile: ConnectionProfile) -> None:
    try:
        keyring.delete_password(KEYRING_SERVICE, _account(profile))
    except keyring.errors.KeyringError:
        log.debug("no stored password for %s", profile.name)


def password_for(profile: ConnectionProfile, ask: AskPassword | None) -> str | None:
    """The profile's password: from the keyring, else asked for; None if no SASL."""
    if not profile.uses_sasl:
        return None
    try:
        stored = keyring.get_password(KEYRING_SERVICE, _account(profile))
    except keyring.errors.KeyringError as exc:
        log.debug("keyring unavailable: %s", exc)
        stored = None
    if stored is not None:
        return stored
    answer = (
        ask(f"Password for {profile.sasl_username} ({profile.name}): ") if ask else None
    )
    if not answer:
        raise ProfileError(
            f"No password for profile {profile.name}",
            hint="store it with `cdc-studio profile add ... --save-password`, "
            "or enter it when asked",
        )
    return answer


def open_inspector(
    settings: Settings,
    name: str,
    *,
    ask: AskPassword | None = None,
    path: Path | None = None,
    **kwargs: Any,
) -> ClusterInspector:
    """An inspector for profile ``name``; read-only profiles refuse writes."""
    del settings  # profiles do not depend on the embedded stack's settings
    profile = get(path or profiles_path(), name)
    profile.validate()
    if ask is None:
        import getpass

        ask = getpass.getpass
    config = profile.client_config(password_for(profile, ask))
    return ClusterInspector(config, read_only=profile.read_only, **kwargs)
