"""User and device text is shown as written, never read as rich markup (issue 16): a label
`exp[v2]` used to show as `exp`, and `[/x]` in a label, model path or device error crashed the
live table, `history` and `compare` with a MarkupError traceback."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from test_run_local import REPO, edge_bench

HOSTILE = "exp[v2][/x][bold red]"


def test_live_table_shows_markup_in_device_errors_as_text(monkeypatch) -> None:
    from edge_bench.render.display import LiveDisplay
    monkeypatch.setenv("COLUMNS", "400")                 # wide enough not to fold the cells
    out = io.StringIO()
    with LiveDisplay(stream=out, live=True) as d:
        d.note("quantizing m[/x].tflite")
        d.on_status("pi[/x]", "error: [/x] gone")
        d.on_result({"device": "pi[/x]", "model": "m[/x].tflite", "variant": "fp32", "threads": 1,
                     "status": "error", "error": "AgentError: bad [/x] thing [red]"})
    text = out.getvalue()
    assert "m[/x].tflite" in text and "[red]" in text and "quantizing m[/x].tflite" in text


def test_history_and_compare_show_labels_and_paths_as_written(tmp_path: Path) -> None:
    model = tmp_path / "m[bold]x[v2].tflite"
    shutil.copy(REPO / "host" / "models" / "builtin" / "data" / "digits.tflite", model)
    db = str(tmp_path / "r.sqlite")
    for _ in range(2):
        p = edge_bench(["run", "--model", str(model), "--variants", "fp32", "--runs", "5",
                        "--warmup", "1", "--min-seconds", "0", "--processes", "1",
                        "--db", db, "--label", HOSTILE], tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "m[bold]x[v2].tflite" in p.stdout
    p = edge_bench(["history", "--db", db], tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert HOSTILE in p.stdout and "m[bold]x[v2].tflite" in p.stdout
    p = edge_bench(["compare", "last~1", HOSTILE, "--db", db], tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert "[bold]" in p.stdout and HOSTILE in p.stdout
    p = edge_bench(["compare", "last~1", "last", "--db", db, "--json", "-"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cand"]["label"] == HOSTILE
