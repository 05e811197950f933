"""Text output for people: unknown offsets and null keys read as such."""

from __future__ import annotations

from core.cdc.cli import _or_null
from core.kafka.cluster_cli import _dash
from core.kafka.consumers_cli import _text


def test_unknown_offsets_show_as_a_dash() -> None:
    assert [_dash(v) for v in (None, -1001, -1, 0, 42)] == ["-", "-", "-", 0, 42]


def test_null_keys_and_values_show_as_null() -> None:
    assert [_text(None), _text("k"), _or_null(None), _or_null("v")] == [
        "(null)",
        "k",
        "(null)",
        "v",
    ]
