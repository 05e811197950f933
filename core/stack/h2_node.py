"""The embedded H2 server: its password, its database and its command line."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from pathlib import Path

from core.errors import StackError
from core.jvm import Java, JvmBuild
from core.settings import Settings

log = logging.getLogger(__name__)


def h2_dir(settings: Settings) -> Path:
    return settings.data_path / "h2"


def password_file(settings: Settings) -> Path:
    return h2_dir(settings) / "password"


def database_file(settings: Settings) -> Path:
    return h2_dir(settings) / f"{settings.h2.database}.mv.db"


def password(settings: Settings) -> str:
    """The generated password of the embedded database, created on first use."""
    path = password_file(settings)
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return value


def url(settings: Settings) -> str:
    """The JDBC URL of the configured H2 database (embedded server by default)."""
    if settings.h2.url:
        return settings.h2.url
    return f"jdbc:h2:tcp://127.0.0.1:{settings.h2.port}/{settings.h2.database}"


def ensure_database(settings: Settings, java: Java, build: JvmBuild) -> None:
    """Create the database file once, owned by our user with our password.

    The server never creates databases for remote clients (no
    ``-ifNotExists``), so the file is made here, locally, before it starts.
    """
    base = h2_dir(settings)
    db_file = database_file(settings)
    if db_file.exists():
        return
    base.mkdir(parents=True, exist_ok=True)
    command = [
        str(java.executable),
        "-cp",
        build.h2_class_path(),
        "studio.cdc.tools.CreateDatabase",
        str(base / settings.h2.database),
        settings.h2.user,
    ]
    done = subprocess.run(
        command,
        input=password(settings) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 or not db_file.exists():
        raise StackError(
            f"Creating the H2 database {db_file} failed: "
            f"{(done.stdout + done.stderr).strip()[-500:]}",
            hint="check the data folder, or wipe it: `cdc-studio stack down --wipe`",
        )
    log.info("created H2 database %s", db_file)


def server_command(settings: Settings, java: Java, build: JvmBuild) -> list[str]:
    """The H2 TCP server: loopback only, no web console, no remote creation."""
    return [
        str(java.executable),
        f"-Xmx{settings.h2.heap_mb}m",
        "-XX:TieredStopAtLevel=1",
        "-Dh2.bindAddress=127.0.0.1",
        "-cp",
        build.h2_class_path(),
        "org.h2.tools.Server",
        "-tcp",
        "-tcpPort",
        str(settings.h2.port),
        "-baseDir",
        str(h2_dir(settings)),
    ]
