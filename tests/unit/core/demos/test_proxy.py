"""The proxy finds every broker port in Metadata responses of each version."""

from __future__ import annotations

import struct

import pytest

from core.demos.proxy import broker_port_offsets

BROKERS = [(1, "127.0.0.1", 37092, "rack-1"), (2, "127.0.0.1", 37093, None)]


def _string(text: str | None, flexible: bool) -> bytes:
    if flexible:
        if text is None:
            return b"\x00"
        return bytes([len(text) + 1]) + text.encode()
    if text is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(text)) + text.encode()


def _metadata(version: int) -> bytes:
    flexible = version >= 9
    body = struct.pack(">i", 42)  # correlation id
    if flexible:
        body += b"\x01" + b"\x00\x02ab"  # header: one tagged field (tag 0, 2 bytes)
    if version >= 3:
        body += struct.pack(">i", 0)  # throttle_time_ms
    body += bytes([len(BROKERS) + 1]) if flexible else struct.pack(">i", len(BROKERS))
    for node_id, host, port, rack in BROKERS:
        body += struct.pack(">i", node_id) + _string(host, flexible)
        body += struct.pack(">i", port)
        if version >= 1:
            body += _string(rack, flexible)
        if flexible:
            body += b"\x00"
    body += b"rest of the response"
    return struct.pack(">i", len(body)) + body


@pytest.mark.parametrize("version", [0, 1, 2, 3, 8, 9, 12, 13])
def test_finds_each_broker_port(version: int) -> None:
    frame = _metadata(version)

    found = broker_port_offsets(frame, version)

    assert [port for _, port in found] == [37092, 37093]
    for offset, port in found:
        assert struct.unpack_from(">i", frame, offset)[0] == port
