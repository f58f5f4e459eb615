"""A `local` device whose python is a wrapper around the real agent that rewrites every `result`
line (what a broken or hostile board prints): one home for the tests that feed the host bad
device output."""
from __future__ import annotations

import sys
from pathlib import Path

WRAPPER = """#!{python}
import json, subprocess, sys
p = subprocess.Popen([{python!r}] + sys.argv[1:], stdout=subprocess.PIPE)
for raw in p.stdout:
    try:
        msg = json.loads(raw)
    except ValueError:
        msg = None
    if isinstance(msg, dict) and msg.get("event") == "result":
        {rewrite}
        raw = (json.dumps(msg) + "\\n").encode()
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()
sys.exit(p.wait())
"""


def lying_fleet(tmp_path: Path, rewrite: str, name: str = "python-liar") -> Path:
    """devices.yaml with one device `box` whose agent's result lines go through `rewrite` (one
    Python statement on `msg`, the result event); its path."""
    wrapper = tmp_path / name
    wrapper.write_text(WRAPPER.format(python=sys.executable, rewrite=rewrite))
    wrapper.chmod(0o755)
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp_path / 'work'}\n    python: {wrapper}\n")
    return cfg
