"""The consumer commands' errors when the cluster is not where they were told."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from core.cli import main


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("group", [[], ["--group", "gx"]], ids=["all", "one"])
def test_lag_names_the_unreachable_bootstrap(
    closed_port: int,
    group: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("")
    monkeypatch.setenv("CDC_STUDIO_CONFIG", str(config))
    bootstrap = f"127.0.0.1:{closed_port}"
    argv = ["--data-dir", str(tmp_path), "lag", "--bootstrap", bootstrap, *group]

    assert main([*argv, "--json"]) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error"].startswith(f"No broker answers at {bootstrap}: ")
    assert "Connection refused" in error["error"]
    assert error["hint"].startswith(
        "check that the cluster is running and the "
        "bootstrap servers (host:port) are right"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["consume", "orders"],
        ["txn", "orders", "--then", "commit"],
        ["isolation", "orders"],
    ],
    ids=["consume", "txn", "isolation"],
)
def test_topic_commands_name_the_unreachable_bootstrap(
    closed_port: int,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Refused at once: no need to wait the clients' usual metadata time-outs.
    monkeypatch.setattr("core.kafka.tail._METADATA_TIMEOUT_S", 2.0)
    monkeypatch.setattr("core.kafka.txn_producer._TIMEOUT_S", 2.0)
    bootstrap = f"127.0.0.1:{closed_port}"
    argv = ["--data-dir", str(tmp_path), *command, "--bootstrap", bootstrap]

    assert main([*argv, "--json"]) == 2
    error = json.loads(capsys.readouterr().out)
    assert error["error"].startswith(
        f"No broker answers at {bootstrap}: {bootstrap}/bootstrap: "
        f"Connect to ipv4#{bootstrap} failed: Connection refused"
    )
    assert error["hint"] == (
        "check that the cluster is running and the bootstrap servers (host:port) "
        "are right; for the embedded stack run `cdc-studio stack up`"
    )


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["lag", "--watch", "-1"], "argument --watch: '-1' is not a number of seconds"),
        (["lag", "--watch", "0"], "argument --watch: '0' is not a number of seconds"),
        (
            ["lag", "--watch", "nan"],
            "argument --watch: 'nan' is not a number of seconds",
        ),
        (
            ["txn", "orders", "--then", "hold", "--hold-seconds", "-5"],
            "argument --hold-seconds: '-5' is not a number of seconds",
        ),
        (["txn", "orders", "--count", "0"], "argument --count: '0' is not a count"),
        (["txn", "orders", "--count", "-2"], "argument --count: '-2' is not a count"),
        (["consume", "orders", "--count", "0"], "argument --count: '0' is not a count"),
    ],
    ids=[
        "watch-negative",
        "watch-zero",
        "watch-nan",
        "hold-negative",
        "txn-count-zero",
        "txn-count-negative",
        "consume-count-zero",
    ],
)
def test_durations_and_counts_below_one_are_refused_up_front(
    argv: list[str],
    refused: str,
    closed_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Were it accepted, the command would fail fast on a cluster not there.
    monkeypatch.setattr("core.kafka.txn_producer._TIMEOUT_S", 2.0)
    bootstrap = ["--bootstrap", f"127.0.0.1:{closed_port}"]
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path), *argv, *bootstrap])
    assert exited.value.code == 2
    what = (
        "give a whole number of 1 or more"
        if "count" in refused
        else "give one above 0, such as 2 or 0.5"
    )
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"cdc-studio {argv[0]}: error: {refused}: {what}"


def test_exactly_once_kafka_without_output_topic_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data-dir", str(tmp_path), "group", "start", "--group", "g1"]
    argv += ["--topic", "orders", "--semantics", "exactly-once-kafka", "--json"]
    assert main(argv) == 2
    assert json.loads(capsys.readouterr().out) == {
        "error": "exactly-once-kafka needs an output topic",
        "hint": "give --output-topic TOPIC (in the GUI: Output topic), the topic "
        "the processed records are written to",
    }
