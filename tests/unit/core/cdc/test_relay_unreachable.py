"""A relay pointed at an address where no broker answers: a clear error."""

from __future__ import annotations

import socket

import pytest

from core.cdc.relay import ensure_topics
from core.errors import RelayError


def test_unreachable_bootstrap_is_named_with_a_hint() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(RelayError) as info:
        ensure_topics(f"127.0.0.1:{port}", {"t"}, 1, 1, timeout=2)

    assert str(info.value).startswith(f"Cannot reach Kafka at 127.0.0.1:{port}: ")
    assert "--bootstrap" in (info.value.hint or "")
