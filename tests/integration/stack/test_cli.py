"""The `cdc-studio` command on the session stack: JSON, text, pipes, arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from core import jvm, settings
from core.cli import main
from core.settings import Settings
from core.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config_file(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return settings.save(
        stack_settings, tmp_path_factory.mktemp("cli") / "settings.toml"
    )


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_sql_json_is_strict_json_with_exact_values(
    stack: Stack, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = (
        "SELECT CAST('NaN' AS DOUBLE) AS N, CAST('Infinity' AS DOUBLE) AS I, "
        "CAST('f83d5a4e-1b2c-4d5e-8f90-0123456789ab' AS UUID) AS U, "
        "ARRAY[1, 2, NULL] AS A, CAST(12.50 AS DECIMAL(6, 2)) AS D"
    )
    assert main(["--config", str(config_file), "sql", statement, "--json"]) == 0

    out = _strict_json(capsys.readouterr().out)
    assert out == {
        "columns": ["N", "I", "U", "A", "D"],
        "types": [
            "DOUBLE PRECISION",
            "DOUBLE PRECISION",
            "UUID",
            "INTEGER ARRAY",
            "DECIMAL",
        ],
        "rows": [
            [
                "NaN",
                "Infinity",
                "f83d5a4e-1b2c-4d5e-8f90-0123456789ab",
                [1, 2, None],
                "12.50",
            ]
        ],
    }


def test_sql_text_aligns_wide_characters(
    stack: Stack, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = "SELECT * FROM (VALUES ('漢字'), ('ab')) AS T(W)"
    assert main(["--config", str(config_file), "sql", statement]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines == ["W   ", "----", "漢字", "ab  ", "(2 rows)"]


def test_empty_statement_is_an_error(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config_file), "sql", "  ", "--json"]) == 2
    assert _strict_json(capsys.readouterr().out) == {
        "error": "No SQL statement was given",
        "hint": 'cdc-studio sql "SELECT 1"',
    }


def test_killing_node_0_says_it_is_the_controller(
    stack: Stack, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["--config", str(config_file), "stack", "kill-broker", "0", "--json"]) == 2
    )
    assert _strict_json(capsys.readouterr().out) == {
        "error": "Node 0 is the controller, not a broker: the demos keep it up so "
        "the cluster keeps its quorum",
        "hint": "brokers are: 1, 2, 3; `cdc-studio stack down` stops everything",
    }
    assert all(node.up for node in stack.status().nodes)


@pytest.mark.parametrize("count", ["0", "-1", "10", "three"])
def test_impossible_broker_count_is_an_argument_error(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["stack", "up", "--brokers", count])
    assert info.value.code == 2
    assert f"{count!r} is not a broker count: give 1 to 9" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(stack: Stack, config_file: Path) -> None:
    cli = Path(sys.executable).parent / "cdc-studio"
    command = (
        f"'{cli}' --config '{config_file}' sql "
        "'SELECT X FROM SYSTEM_RANGE(1, 200000)' | head -n 1"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == "X     \n"
    assert "Traceback" not in done.stderr
    assert done.returncode == 141


def test_each_jvm_build_has_its_own_folder_in_use_by_the_stack(stack: Stack) -> None:
    build = jvm.ensure_built(stack.settings)

    assert build.root == stack.settings.data_path / "jvm" / jvm.current_build_name()
    assert build.module_jar.is_file()
    h2_pid = next(n.pid for n in stack.status().nodes if n.role == "h2")
    assert f"{build.root}{os.sep}" in " ".join(psutil.Process(h2_pid).cmdline())


def test_unused_builds_are_removed_and_used_ones_kept(tmp_path: Path) -> None:
    builds = tmp_path / "jvm"
    for name in ("current", "old-in-use", "old-unused", "lib"):
        (builds / name).mkdir(parents=True)
    (builds / "source.sha256").write_text("pre-versioned layout")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            str(builds / "old-in-use" / "x.jar"),
        ]
    )
    try:
        jvm._remove_unused_builds(builds, keep=builds / "current")
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in builds.iterdir()) == ["current", "old-in-use"]


@pytest.mark.parametrize(
    ("statement", "hint"),
    [
        ("SELEC 1", "check the SQL against H2's grammar"),
        ("SELECT 1 / 0", "a value is out of range or of the wrong type"),
        ("INSERT INTO CLI_KEYS VALUES (1), (1)", "the data breaks a constraint"),
    ],
)
def test_refused_statements_get_a_hint_for_their_kind(
    stack: Stack,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
    statement: str,
    hint: str,
) -> None:
    base = ["--config", str(config_file), "sql"]
    assert main([*base, "CREATE TABLE IF NOT EXISTS CLI_KEYS (K INT PRIMARY KEY)"]) == 0
    capsys.readouterr()

    assert main([*base, statement, "--json"]) == 2

    error = _strict_json(capsys.readouterr().out)
    assert isinstance(error, dict)
    assert error["error"].startswith("H2 refused the statement: ")
    assert error["hint"].startswith(hint)
