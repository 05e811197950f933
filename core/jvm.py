"""Find Java and Maven, build the JVM module, and give out class paths."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.errors import JavaError
from core.settings import Settings

log = logging.getLogger(__name__)

MIN_JAVA = 17
MODULE_DIR = Path(__file__).resolve().parent.parent / "resources" / "jvm"
MODULE_JAR = "cdc-studio-jvm-0.1.0.jar"
_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class Java:
    """A Java runtime found on this machine."""

    executable: Path
    major: int


@dataclass(frozen=True)
class JvmBuild:
    """The built JVM module: our classes and the stack's jars."""

    root: Path

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def module_jar(self) -> Path:
        return self.root / MODULE_JAR

    def jars(self) -> list[Path]:
        """Every jar of the runtime class path, our own first."""
        return [self.module_jar, *sorted(self.lib_dir.glob("*.jar"))]

    def class_path(self) -> str:
        return os.pathsep.join(str(jar) for jar in self.jars())

    def jar(self, prefix: str) -> Path:
        """The one library jar whose name starts with ``prefix`` (e.g. ``h2-``)."""
        found = [j for j in self.lib_dir.glob(f"{prefix}*.jar") if j.is_file()]
        if len(found) != 1:
            raise JavaError(
                f"Expected one {prefix}*.jar in {self.lib_dir}, found {len(found)}",
                hint="rebuild the JVM module: delete that folder and run again",
            )
        return found[0]

    def h2_class_path(self) -> str:
        """Class path of the H2 server: H2 and our trigger classes."""
        return os.pathsep.join([str(self.jar("h2-")), str(self.module_jar)])


def find_java(settings: Settings) -> Java:
    """The Java to run the stack with: jvm.java_home, $JAVA_HOME, then PATH."""
    candidates: list[tuple[str, Path]] = []
    if settings.jvm.java_home:
        candidates.append(
            ("jvm.java_home", Path(settings.jvm.java_home) / "bin" / "java")
        )
    elif os.environ.get("JAVA_HOME"):
        candidates.append(("JAVA_HOME", Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    else:
        on_path = shutil.which("java")
        if on_path:
            candidates.append(("PATH", Path(on_path)))
    if not candidates:
        raise JavaError(
            "Java was not found on PATH and JAVA_HOME is not set",
            hint=f"install Java {MIN_JAVA} or newer (Debian: apt-get install "
            "openjdk-17-jdk-headless) or set jvm.java_home in the settings file",
        )

    source, java = candidates[0]
    if not java.is_file():
        raise JavaError(
            f"Java from {source} does not exist: {java}",
            hint="fix jvm.java_home or JAVA_HOME, or unset it to use PATH",
        )
    major = java_major(java)
    if major < MIN_JAVA:
        raise JavaError(
            f"Java {major} at {java} is too old: the stack needs Java {MIN_JAVA}+",
            hint=f"install Java {MIN_JAVA} or newer and point jvm.java_home at it",
        )
    log.debug("using Java %s at %s", major, java)
    return Java(java, major)


def java_major(java: Path) -> int:
    """The major version of the Java runtime at ``java``."""
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaError(f"Cannot run {java}: {exc}") from exc
    match = _VERSION_RE.search(done.stderr + done.stdout)
    if not match:
        raise JavaError(f"Cannot tell the version of {java}: {done.stderr.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_maven(settings: Settings) -> Path:
    """The ``mvn`` executable, or an error saying how to get it."""
    found = shutil.which(settings.jvm.maven)
    if not found:
        raise JavaError(
            f"Maven ({settings.jvm.maven}) was not found on PATH",
            hint="install Maven (Debian: apt-get install maven) or set jvm.maven "
            "to the mvn executable",
        )
    return Path(found)


def current_build_name() -> str:
    """The folder name, under ``jvm/``, of a build of the sources as they are now."""
    return _sources_digest()[:16]


def _sources_digest() -> str:
    """A digest of the module's pom and sources, to know when to rebuild."""
    digest = hashlib.sha256()
    files = [MODULE_DIR / "pom.xml", *sorted((MODULE_DIR / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(MODULE_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_built(settings: Settings, java: Java | None = None) -> JvmBuild:
    """Build the JVM module into the data folder unless it is up to date.

    Each build of the sources lives in its own folder, ``jvm/<digest>``, so
    that a rebuild never replaces jars a running node has open; older builds
    are removed once no process uses them. Maven runs offline first (from the
    local repository) and goes online only when that fails, so a machine that
    built once never needs the network again.
    """
    java = java or find_java(settings)
    digest = _sources_digest()
    builds = settings.data_path / "jvm"
    build = JvmBuild(builds / current_build_name())
    if _is_complete(build, digest):
        return build

    mvn = find_maven(settings)
    builds.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=builds))
    try:
        _run_maven(mvn, java, staging)
        (staging / "source.sha256").write_text(digest)
        try:
            staging.rename(build.root)
        except OSError:
            if not _is_complete(build, digest):  # not another process's build
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_unused_builds(builds, keep=build.root)
    return build


def _is_complete(build: JvmBuild, digest: str) -> bool:
    stamp = build.root / "source.sha256"
    return (
        stamp.exists()
        and stamp.read_text().strip() == digest
        and build.module_jar.exists()
    )


def _run_maven(mvn: Path, java: Java, target: Path) -> None:
    env = dict(os.environ, JAVA_HOME=str(java.executable.resolve().parent.parent))
    base = [
        str(mvn),
        "-B",
        "-q",
        "-f",
        str(MODULE_DIR / "pom.xml"),
        f"-Dstudio.build.dir={target}",
        "package",
    ]
    log.info("building the JVM module into %s", target.parent)
    done = subprocess.run(
        [*base[:1], "-o", *base[1:]], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        log.info("offline Maven build failed; resolving from Maven Central")
        done = subprocess.run(base, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise JavaError(
            f"Maven could not build the JVM module in {MODULE_DIR}:\n{tail}",
            hint="check that Maven Central is reachable once, or that ~/.m2 holds "
            "the jars; then run the command again",
        )


def _remove_unused_builds(builds: Path, keep: Path) -> None:
    """Delete older builds (and the pre-versioned layout) no process still uses."""
    in_use = " ".join(_command_lines())
    for entry in builds.iterdir():
        if entry == keep or entry.name.startswith(".building-"):
            continue
        if f"{entry}{os.sep}" in in_use:
            log.debug("keeping %s: a running process uses it", entry)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _command_lines() -> list[str]:
    lines = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        lines.append(" ".join(cmdline))
    return lines
