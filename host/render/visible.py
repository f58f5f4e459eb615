"""The one rule for showing untrusted text (device errors, model and file names, labels, store
cells) on a terminal: every control character is shown as a visible escape (`\\x1b`, `\\n`),
never sent raw. A device's `ESC]52;c;...` (a clipboard write), cursor movements or a newline in a
model name therefore print as text and cannot forge or split a line (`result ...` stays one line).

Applied by every printer: render/table.py (all tables, plain and rich), render/display.py (the
run's lines and rich texts), cli.py (error messages). No rich here: pure text.
"""
from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(m: "re.Match[str]") -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def visible(value: Any) -> str:
    """`value` as one line of printable text (None: empty)."""
    return _UNSAFE.sub(_show, "" if value is None else str(value))


def visible_lines(value: Any) -> str:
    """Like visible(), but the text's own line breaks stay line breaks (multi-line messages)."""
    return "\n".join(visible(line) for line in ("" if value is None else str(value)).split("\n"))
