"""Host side of the agent protocol (docs/protocol.md): parse and check one line at a time."""
from __future__ import annotations

import json
from typing import Any, Dict

from .errors import ProtocolError

PROTO = 1
EVENTS = ("hello", "progress", "result", "error", "bye")


def parse_line(device: str, line: str) -> Dict[str, Any]:
    """One stdout line of the agent -> the message dict, or ProtocolError saying what is wrong."""
    text = line.strip()
    if not text:
        raise ProtocolError(device, "agent printed an empty line")
    try:
        msg = json.loads(text)
    except ValueError:
        raise ProtocolError(device, f"agent printed something that is not protocol JSON:"
                                    f" {_clip(text)!r}",
                            hint="something on the device writes to stdout; check the python"
                                 " command and its startup files")
    if not isinstance(msg, dict):
        raise ProtocolError(device, f"agent printed a JSON {type(msg).__name__}, expected an object:"
                                    f" {_clip(text)!r}")
    proto = msg.get("proto")
    if proto != PROTO:
        newer = isinstance(proto, int) and proto > PROTO
        raise ProtocolError(
            device, f"agent speaks protocol {proto!r}, this host speaks {PROTO}",
            hint=("upgrade edge-bench on the host" if newer else
                  "the agent on the device is stale: run `edge-bench deploy` to push the current one"))
    event = msg.get("event")
    if event not in EVENTS:
        raise ProtocolError(device, f"agent sent unknown event {event!r}")
    if event == "result" and not isinstance(msg.get("samples_ns"), list):
        raise ProtocolError(device, "agent result has no samples_ns list")
    return msg


def _clip(s: str, n: int = 120) -> str:
    return s if len(s) <= n else s[:n] + "..."
