"""The exporter listens on loopback unless told otherwise."""

from __future__ import annotations

import pytest

from core.errors import SettingsError
from core.kafka.exporter import parse_listen


def test_loopback_addresses_are_accepted() -> None:
    assert parse_listen("127.0.0.1:9308") == ("127.0.0.1", 9308)
    assert parse_listen("[::1]:9308") == ("::1", 9308)
    assert parse_listen("localhost:1") == ("localhost", 1)


@pytest.mark.parametrize("address", ["0.0.0.0:9308", "10.1.2.3:9308", "example:80"])
def test_other_hosts_are_refused_unless_allowed(address: str) -> None:
    with pytest.raises(SettingsError, match="not loopback"):
        parse_listen(address)
    assert parse_listen(address, allow_remote=True)[1] in (9308, 80)


@pytest.mark.parametrize(
    "address", ["9308", "127.0.0.1:", "127.0.0.1:x", ":9308", "127.0.0.1:70000"]
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(SettingsError):
        parse_listen(address)
