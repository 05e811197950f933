"""Typed settings with defaults, read from and written to a TOML file."""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from core.errors import SettingsError

log = logging.getLogger(__name__)

APP_NAME = "kafka-cdc-studio"
ENV_CONFIG = "CDC_STUDIO_CONFIG"
ENV_DATA_DIR = "CDC_STUDIO_DATA_DIR"


# The embedded cluster's size: one broker at least, racks rack-1..rack-9 at most.
MIN_BROKERS = 1
MAX_BROKERS = 9


@dataclass
class KafkaSettings:
    """The embedded Kafka cluster: ports, size and JVM heap."""

    brokers: int = 3
    controller_port: int = 19090
    base_port: int = 19092
    broker_heap_mb: int = 512
    controller_heap_mb: int = 256
    start_timeout_s: float = 90.0


@dataclass
class H2Settings:
    """The embedded H2 server, or the H2 server to connect to."""

    port: int = 19190
    database: str = "studio"
    user: str = "studio"
    heap_mb: int = 256
    url: str = ""


@dataclass
class JvmSettings:
    """Where to find Java and Maven."""

    java_home: str = ""
    maven: str = "mvn"


@dataclass
class DemosSettings:
    """The crash-and-recover demos: ports of the loopback proxy they run."""

    # First port of the response-dropping proxy (one port per broker);
    # 0 lets the system pick free loopback ports.
    proxy_base_port: int = 0


@dataclass
class Settings:
    """Everything a user can set; each field has a sensible default."""

    data_dir: str = ""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    h2: H2Settings = field(default_factory=H2Settings)
    jvm: JvmSettings = field(default_factory=JvmSettings)
    demos: DemosSettings = field(default_factory=DemosSettings)

    @property
    def data_path(self) -> Path:
        """The one folder under which the stack writes everything."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        env = os.environ.get(ENV_DATA_DIR)
        if env:
            return Path(env).expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME))

    @property
    def bootstrap_servers(self) -> str:
        """Bootstrap servers of the embedded cluster."""
        ports = range(self.kafka.base_port, self.kafka.base_port + self.kafka.brokers)
        return ",".join(f"127.0.0.1:{port}" for port in ports)

    def broker_port(self, broker_id: int) -> int:
        """The listener port of broker ``broker_id`` (1-based)."""
        return self.kafka.base_port + broker_id - 1


def default_config_path() -> Path:
    """The settings file: $CDC_STUDIO_CONFIG or the per-user config folder."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "settings.toml"


def _fill(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``values``, checking names and types."""
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise SettingsError(
                f"Unknown setting {where}{name}",
                hint=f"known settings here: {known}",
            )
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise SettingsError(
                    f"Setting {where}{name} must be a table",
                    hint=f"write it as a [{where}{name}] section",
                )
            kwargs[name] = _fill(type(default), value, f"{where}{name}.")
            continue
        expected = type(default)
        if expected is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, expected) or (
            expected is int and isinstance(value, bool)
        ):
            raise SettingsError(
                f"Setting {where}{name} must be {expected.__name__}, "
                f"not {type(value).__name__} ({value!r})",
                hint=f"for example: {name} = {default!r}".replace("'", '"'),
            )
        kwargs[name] = value
    return cls(**kwargs)


def load(path: Path | None = None) -> Settings:
    """Read settings from ``path`` (default: the per-user file), or defaults.

    A file named on purpose (``path`` or $CDC_STUDIO_CONFIG) must exist; only
    the per-user default may be absent.
    """
    named = path is not None or bool(os.environ.get(ENV_CONFIG))
    path = path or default_config_path()
    if not path.exists():
        if named:
            raise SettingsError(
                f"The settings file {path} does not exist",
                hint="check the path given with --config or CDC_STUDIO_CONFIG",
            )
        log.debug("no settings file at %s, using defaults", path)
        settings = Settings()
    else:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(
                f"Cannot read settings file {path}: {exc}",
                hint="fix the file"
                if named
                else "fix the file, or move it away to get the defaults",
            ) from exc
        try:
            settings = _fill(Settings, values, "")
            validate(settings)
        except SettingsError as exc:
            raise SettingsError(f"{path}: {exc.args[0]}", hint=exc.hint) from exc
        return settings
    validate(settings)
    return settings


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write ``settings`` as TOML to ``path`` (default: the per-user file)."""
    path = path or default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(dataclasses.asdict(settings)), encoding="utf-8")
    return path


def validate(settings: Settings) -> None:
    """Reject values that cannot work, naming the setting to change."""
    k = settings.kafka
    if not MIN_BROKERS <= k.brokers <= MAX_BROKERS:
        raise SettingsError(
            f"kafka.brokers is {k.brokers}",
            hint=f"choose between {MIN_BROKERS} and {MAX_BROKERS} brokers",
        )
    ports = {
        "kafka.controller_port": k.controller_port,
        "h2.port": settings.h2.port,
    }
    for broker_id in range(1, k.brokers + 1):
        ports[f"kafka.base_port (broker {broker_id})"] = settings.broker_port(broker_id)
    for name, port in ports.items():
        if not 1024 <= port <= 65535:
            raise SettingsError(
                f"{name} is {port}", hint="choose a port between 1024 and 65535"
            )
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise SettingsError(
                f"{name} and {seen[port]} both use port {port}",
                hint="set kafka.controller_port, kafka.base_port and h2.port "
                "so that they do not overlap",
            )
        seen[port] = name
