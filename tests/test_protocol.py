"""The host's parser of agent lines refuses anything that is not protocol 1."""
from __future__ import annotations

import pytest

from edge_bench.errors import ProtocolError
from edge_bench.protocol import parse_line


def test_valid_lines() -> None:
    assert parse_line("d", '{"proto":1,"event":"hello"}')["event"] == "hello"
    assert parse_line("d", '{"proto":1,"event":"result","samples_ns":[1,2]}')["samples_ns"] == [1, 2]


@pytest.mark.parametrize("line,pattern", [
    ("Segmentation fault", "not protocol JSON"),
    ("[1,2]", "JSON list"),
    ('{"proto":2,"event":"hello"}', "protocol 2.*upgrade edge-bench on the host"),
    ('{"proto":0,"event":"hello"}', "protocol 0.*edge-bench deploy"),
    ('{"event":"hello"}', "protocol None"),
    ('{"proto":1,"event":"party"}', "unknown event"),
    ('{"proto":1,"event":"result"}', "no samples_ns"),
])
def test_bad_lines(line: str, pattern: str) -> None:
    with pytest.raises(ProtocolError, match=pattern):
        parse_line("dev", line)
