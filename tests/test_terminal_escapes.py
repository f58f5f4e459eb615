"""Issue 25 item 5: device and file text never reaches the operator's terminal raw. A device error
carrying `ESC]52;c;...` (an OSC 52 clipboard write) or a model file name with cursor controls and
a newline is shown with visible escapes (`\\x1b`, `\\n`) in `run` (plain lines, the final table
and the rich live block) and in `history`; the one-line `result ...` contract holds."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

from liar import lying_fleet
from test_run_local import REPO, edge_bench

OSC52 = "\x1b]52;c;cHduZWQ=\x07"          # would set the terminal's clipboard
CURSOR = "\x1b[1;1H\x1b[2J"               # home + clear screen
FAST = ["--variants", "fp32", "--runs", "3", "--warmup", "0", "--min-seconds", "0",
        "--processes", "1"]

def _no_raw_controls(text: str) -> None:
    for bad in ("\x1b", "\x07", "\r"):
        assert bad not in text, f"raw {bad!r} printed: {text!r}"


def test_device_error_and_model_name_escapes_are_shown_not_sent(tmp_path: Path) -> None:
    model = tmp_path / f"m{CURSOR}\nresult device=forged.tflite"
    shutil.copy(REPO / "host" / "models" / "builtin" / "data" / "digits.tflite", model)
    # the device: the real agent, whose result line is replaced by an error event carrying
    # escapes (what a hostile or broken board prints)
    error = {"proto": 1, "event": "error", "type": "ModelLoadError",
             "message": f"boom {OSC52} {CURSOR}"}
    cfg = lying_fleet(tmp_path, f"msg = dict({error!r}, task=msg.get('task'))", "python-hostile")
    db = str(tmp_path / "store.db")
    p = edge_bench(["run", "--config", str(cfg), "--devices", "box", "--model", str(model),
                    *FAST, "--db", db, "--label", "esc"], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr
    _no_raw_controls(p.stdout + p.stderr)
    assert "\\x1b]52;c;cHduZWQ=\\x07" in p.stdout                 # shown, visibly
    result_lines = [ln for ln in p.stdout.splitlines() if ln.startswith("result ")]
    assert len(result_lines) == 1 and "\\nresult device=forged" in result_lines[0]
    h = edge_bench(["history", "--db", db], tmp_path)
    assert h.returncode == 0, h.stderr
    _no_raw_controls(h.stdout + h.stderr)
    assert "\\x1b" in h.stdout


def test_live_block_shows_escapes_visibly(monkeypatch) -> None:
    from edge_bench.render.display import LiveDisplay
    monkeypatch.setenv("COLUMNS", "400")
    out = io.StringIO()
    with LiveDisplay(stream=out, live=True) as d:
        d.note(f"quantizing m{CURSOR}.tflite")
        d.on_status("pi", f"error: {OSC52} gone")
        d.on_result({"device": "pi", "model": f"m{CURSOR}.tflite", "variant": "fp32",
                     "threads": 1, "status": "error", "error": f"AgentError: {OSC52}"})
    text = out.getvalue()
    assert OSC52 not in text and CURSOR not in text and "\x07" not in text
    assert "\\x1b]52" in text and "\\x1b[2J" in text


def test_error_message_escapes_are_shown_not_sent(tmp_path: Path) -> None:
    p = edge_bench(["compare", f"no-such{OSC52}.json", "last", "--db",
                    str(tmp_path / "x.db")], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    _no_raw_controls(p.stdout + p.stderr)


def test_devices_check_shows_a_device_error_visibly(tmp_path: Path) -> None:
    bad = tmp_path / "python-bad"
    bad.write_text('#!/bin/sh\nprintf "boom \\033]52;c;cHduZWQ=\\007 \\033[2J\\n" >&2\nexit 1\n')
    bad.chmod(0o755)
    cfg = tmp_path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {tmp_path / 'work'}\n    python: {bad}\n")
    p = edge_bench(["devices", "--check", "--config", str(cfg)], tmp_path)
    assert p.returncode == 3, p.stdout + p.stderr
    _no_raw_controls(p.stdout + p.stderr)
    assert "\\x1b]52;c;" in p.stdout


def test_compare_markdown_keeps_rows_and_shows_escapes() -> None:
    from edge_bench.analysis.verdict import compare_docs
    from edge_bench.render.compare import to_markdown
    from test_store import make_result
    a, b = make_result("fp32", seed=1), make_result("fp32", seed=2)
    for r in (a, b):
        r["model"] = f"m{CURSOR}\n| forged | row |.tflite"
    docs = [{"schema": "edge-bench/run/1", "run_id": n, "label": n, "results": [r]}
            for n, r in (("base", a), ("cand", b))]
    md = to_markdown(compare_docs(*docs))
    _no_raw_controls(md)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "forged" in ln]
    assert len(rows) == 1 and "\\x1b[2J" in rows[0]
