"""What a person sees at 80 columns in a real terminal (tmux), beyond the run table of
test_terminal.py (issue 24): `devices --check` one line per device with its failures spelled
out below, a failed run's whole reason, a skip that says what to pass, and a first run with
no boards that is clean."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

from ttyscreen import Terminal

REPO = Path(__file__).resolve().parents[1]
PY = shlex.quote(sys.executable)


@pytest.fixture()
def env(tmp_path: Path) -> Dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"EDGE_BENCH_CACHE": str(tmp_path / "cache"), "HOME": str(home),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "EDGE_BENCH_DB": str(tmp_path / "r.sqlite")}


def _fleet(tmp_path: Path) -> Path:
    """local plus two ssh boards that fail at once, each with a long reason: a key file
    that does not exist at a long path, and a host name that cannot resolve."""
    key = tmp_path / "keys-of-the-lab-that-moved-to-building-7" / "shelf-3" / "id_ed25519"
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text("version: 1\ndevices:\n"
                   f"  local:\n    transport: local\n    workdir: {tmp_path / 'w'}\n"
                   "  pi4-shelf-3:\n    transport: ssh\n    host: 127.0.0.1\n    user: pi\n"
                   f"    key: {key}\n    retries: 0\n    tags: [pi, arm64, lab]\n"
                   "  jetson:\n    transport: ssh\n    host: jetson-orin.invalid\n"
                   "    retries: 0\n    connect_timeout_s: 5\n    tags: [jetson, arm64, lab]\n")
    return cfg


def _lines_fit(screen: str, width: int) -> None:
    assert "Traceback" not in screen, screen
    for ln in screen.splitlines():
        assert len(ln) <= width, ln


def _joined(screen: str) -> str:
    """The screen's text without any white space: a reason wrapped over lines (at words, or
    inside a path longer than a line) reads whole."""
    return re.sub(r"\s+", "", screen)


def test_devices_check_one_line_per_device_failures_below(tmp_path: Path,
                                                          env: Dict[str, str]) -> None:
    cfg = _fleet(tmp_path)
    with Terminal(80, 40, env=env, cwd=tmp_path) as t:
        t.run(f"{PY} -m edge_bench.cli devices --check --config {shlex.quote(str(cfg))}")
        t.wait_done(timeout=120)
        code = t.exit_code()
        screen = t.scrollback()
    assert code == 3, screen
    _lines_fit(screen, 80)
    lines = screen.splitlines()
    header = next(ln for ln in lines if ln.startswith("device "))
    assert header.split()[:3] == ["device", "transport", "status"] and "runtime" in header
    # one line per device: name, transport, status (and the runtime for the one that works)
    rows = {ln.split()[0]: ln for ln in lines if re.match(r"^(local|pi4-shelf-3|jetson)\s", ln)}
    assert set(rows) == {"local", "pi4-shelf-3", "jetson"}, screen
    assert rows["local"].split()[1:3] == ["local", "ok"] and "ai-edge-litert" in rows["local"]
    assert rows["pi4-shelf-3"].split()[1:3] == ["ssh", "FAIL"]
    assert rows["jetson"].split()[1:3] == ["ssh", "FAIL"]
    # below the table: each failure in full (the key path whole, the hint too)
    below = _joined(screen[screen.index("2 devices failed"):])
    key = str(tmp_path / "keys-of-the-lab-that-moved-to-building-7" / "shelf-3" / "id_ed25519")
    assert _joined(f"pi4-shelf-3: key file {key} does not exist") in below, below
    assert _joined("remove it to use ssh-agent") in below
    assert _joined("jetson: cannot resolve host name 'jetson-orin.invalid'") in below, below
    # the accelerators a working device has come last, a line each (docs/accelerators.md)
    cut = next(i for i, ln in enumerate(lines) if ln.startswith("accelerators ("))
    assert len([ln for ln in lines[:cut] if ln.strip()]) < 20, screen
    accel = [ln for ln in lines[cut + 1:] if ln.startswith("  local: ")]
    assert accel and all(ln.split()[1].rstrip(":") in ("gpu", "npu", "NPU", "delegate")
                         for ln in accel), screen


def test_first_run_with_no_boards_is_clean(tmp_path: Path, env: Dict[str, str]) -> None:
    """In a fresh clone (the repository as the current directory) with no devices.yaml of the
    user's own, `devices --check` sees only `local`: no FAIL, exit 0, and says where the
    example fleet is. A user's own ./devices.yaml is still picked up."""
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_BENCH_CONFIG"}
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "devices", "--check"],
                       cwd=str(REPO), env=dict(clean, **env), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "FAIL" not in p.stdout + p.stderr
    assert [ln.split()[0] for ln in p.stdout.splitlines()[1:] if ln.strip()][:1] == ["local"]
    assert "devices.example.yaml" in p.stdout
    own = tmp_path / "lab"
    own.mkdir()
    (own / "devices.yaml").write_text((REPO / "devices.example.yaml").read_text())
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "devices"], cwd=str(own),
                       env=dict(clean, **env), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "pi4" in p.stdout and "pixel7" in p.stdout, p.stdout + p.stderr
    assert f"devices from {own / 'devices.yaml'}" in p.stderr


def test_failed_run_and_skip_show_their_whole_reason(tmp_path: Path, env: Dict[str, str]) -> None:
    """`run` on a board that fails and a model without calibration data, at 80 columns: the
    table's status cells are cut, the reasons below it are whole; the skip says what to pass,
    without the `skipped: variant int8 skipped:` stutter."""
    cfg = _fleet(tmp_path)
    model = tmp_path / "digits.tflite"
    model.write_bytes((REPO / "host" / "models" / "builtin" / "data" / "digits.tflite").read_bytes())
    args = [sys.executable, "-m", "edge_bench.cli", "run", "--config", str(cfg),
            "--devices", "local,pi4-shelf-3", "--model", str(model),
            "--variants", "fp32,int8,dynamic-int8",
            "--runs", "5", "--min-seconds", "0.1", "--processes", "1"]
    with Terminal(80, 40, env=env, cwd=tmp_path) as t:
        t.run(" ".join(shlex.quote(a) for a in args))
        t.wait_done(timeout=300)
        code = t.exit_code()
        screen = t.scrollback()
    assert code == 3, screen
    _lines_fit(screen, 80)
    assert "skipped: variant" not in screen
    table = screen[screen.index("edge-bench results"):screen.index("why:")]
    rows = [ln for ln in table.splitlines() if re.match(r"^(local|pi4-shelf-3)\s", ln)]
    assert len(rows) == 6 and any(ln.rstrip().endswith("…") for ln in rows), screen
    # no labels: the output similarity vs fp32 is the accuracy shown, even at 80 columns
    header = next(ln for ln in table.splitlines() if ln.startswith("device "))
    assert "speedup" in header.split() and "SNR dB" in header and "×fp32" not in header
    dyn = next(ln for ln in rows if ln.startswith("local") and " dynamic-int8 " in ln)
    assert re.search(r"\s\d+\s+ok$", dyn.rstrip()), dyn   # its SNR in dB, then the status
    why = _joined(screen[screen.index("why:"):])
    key = str(tmp_path / "keys-of-the-lab-that-moved-to-building-7" / "shelf-3" / "id_ed25519")
    assert _joined(f"digits.tflite fp32, digits.tflite dynamic-int8 on pi4-shelf-3: error: key file {key} does not exist"
                   " (fix devices.pi4-shelf-3.key, or remove it to use ssh-agent)") in why, screen
    # a skip is decided on the host: said once for both devices
    assert _joined("digits.tflite int8 on local, pi4-shelf-3: skipped: it needs calibration"
                   " data (pass --calibration FILE") in why, screen


def test_history_and_compare_notes_at_80_columns(tmp_path: Path, env: Dict[str, str]) -> None:
    """`history` at 80 columns names every run of a key (its id is never dropped, even with
    no label); compare's notes, cut in the table, are whole below it."""
    model = tmp_path / "digits.tflite"
    model.write_bytes((REPO / "host" / "models" / "builtin" / "data" / "digits.tflite").read_bytes())
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_BENCH_CONFIG"}
    base = [sys.executable, "-m", "edge_bench.cli", "run", "--model", str(model),
            "--variants", "fp32,int8", "--runs", "10", "--min-seconds", "0.1", "--processes", "1"]
    for extra in (["--label", "h1", "--calibration", "random"], []):  # h2: int8 is skipped
        p = subprocess.run(base + extra, cwd=str(tmp_path), env=dict(clean, **env),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
    with Terminal(80, 60, env=env, cwd=tmp_path) as t:
        t.run(f"{PY} -m edge_bench.cli history; {PY} -m edge_bench.cli compare h1 last")
        t.wait_done(timeout=300)
        screen = t.scrollback()
    _lines_fit(screen, 80)
    hist = screen[:screen.index("compare ")]
    ids = re.findall(r"^(\d{8}T\d{6}Z-[0-9a-f]+)\s", hist, re.M)
    # the runs table (2) and each key's runs (fp32: 2; int8: 2, the skip included)
    assert len(ids) == 6 and len(set(ids)) == 2, hist
    cmp = screen[screen.index("compare "):]
    assert "notes:" in cmp, cmp
    notes = _joined(cmp[cmp.index("notes:"):])
    assert _joined("digits.tflite int8: candidate skipped: it needs calibration data (pass"
                   " --calibration FILE (.npz/.npy/folder of .npy) or --calibration random"
                   " (accuracy will be meaningless))") in notes, cmp


def test_result_line_names_each_measure_once() -> None:
    """The `result` line says agreement in % and output similarity in dB under different
    names, as the table does (it used to print `agree=44 dB` for a row whose agree % was 100)."""
    from edge_bench.render.display import LINE_KEYS, row_cells
    acc = {"top1": None, "agreement_vs_ref": 1.0, "tolerance": {"collapse_snr_db": 3.0},
           "outputs": [{"name": "y", "snr_db": 43.9, "max_abs_err": 0.008}]}
    r = {"device": "local", "model": "m.tflite", "variant": "dynamic-int8", "threads": 1,
         "status": "ok", "model_bytes": 1000, "latency_ms": {"median": 0.5, "p95": 0.6},
         "accuracy": acc}
    fp32 = dict(r, variant="fp32", latency_ms={"median": 1.0, "p95": 1.1})
    cells = dict(zip(LINE_KEYS, row_cells(r, fp32)[0]))
    assert cells["agree"] == "100.0%" and cells["snr"] == "44 dB" and cells["speedup"] == "2.00x"


def test_every_option_has_help_and_the_exit_codes_name_130() -> None:
    """`--help` of every command explains every option (history --device/--variant/--threads
    had none), and the top-level help lists the exit code of an interrupted run."""
    import argparse
    from edge_bench.cli import build_parser
    parser = build_parser()
    assert "130 interrupted" in parser.format_help()
    bare = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{path} {name}")
            elif a.option_strings and a.help is None and not isinstance(a, argparse._HelpAction):
                bare.append(f"{path} {a.option_strings[0]}")
    walk(parser, "edge-bench")
    assert not bare, bare


def test_files_written_for_the_user_follow_the_umask(tmp_path: Path, env: Dict[str, str]) -> None:
    """`quantize` output and `--json` are the user's files: mode 0666 minus the umask (they
    were written through mkstemp and kept its 0600)."""
    digits = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_BENCH_CONFIG"}
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "quantize", str(digits),
                        "--variants", "fp16", "-o", str(tmp_path / "q")],
                       cwd=str(tmp_path), env=dict(clean, **env), capture_output=True, text=True,
                       timeout=300, preexec_fn=lambda: os.umask(0o002))
    assert p.returncode == 0, p.stdout + p.stderr
    out = tmp_path / "q" / "digits-fp16.tflite"
    assert oct(out.stat().st_mode & 0o777) == oct(0o664)
    from edge_bench.files import user_file_mode
    from edge_bench.results.document import write_text
    write_text("{}", tmp_path / "doc.json")
    assert (tmp_path / "doc.json").stat().st_mode & 0o777 == user_file_mode() != 0o600


def test_piped_run_says_where_it_went_once_per_line(tmp_path: Path, env: Dict[str, str]) -> None:
    """A piped run: no progress line twice, `--op-profiling` on `local` says it cannot, and the
    end names the run id and the store it went to."""
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_BENCH_CONFIG"}
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--model", "builtin:digits",
                        "--variants", "fp32,int8", "--runs", "10", "--min-seconds", "0.2",
                        "--processes", "2", "--op-profiling", "--json", str(tmp_path / "r.json")],
                       cwd=str(tmp_path), env=dict(clean, **env), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    dups = {ln for ln in lines if lines.count(ln) > 1}
    assert not dups, p.stderr
    assert "--op-profiling: local cannot profile ops" in p.stderr, p.stderr
    import json
    rid = json.loads((tmp_path / "r.json").read_text())["run_id"]
    assert f"run {rid} stored in {env['EDGE_BENCH_DB']}" in lines[-1], p.stderr


def test_a_text_file_given_as_eval_is_called_a_text_file(tmp_path: Path,
                                                         env: Dict[str, str]) -> None:
    """numpy calls any non-NumPy file "pickled (object) data"; a CSV given as --eval is said
    to be a text file, with its first line, in one line, exit 2."""
    (tmp_path / "eval.csv").write_text("pixel0,pixel1,label\n0,16,3\n")
    clean = {k: v for k, v in os.environ.items() if k != "EDGE_BENCH_CONFIG"}
    p = subprocess.run([sys.executable, "-m", "edge_bench.cli", "run", "--model", "builtin:digits",
                        "--variants", "fp32", "--eval", str(tmp_path / "eval.csv"), "--no-store"],
                       cwd=str(tmp_path), env=dict(clean, **env), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("edge-bench: error")]
    assert len(err) == 1 and "pickled" not in p.stderr, p.stderr
    assert "is a text file (its first line: 'pixel0,pixel1,label')" in err[0], p.stderr


def test_the_demo_has_an_accuracy_on_every_row(tmp_path: Path, env: Dict[str, str]) -> None:
    """README command 1 (shortened timing) in a fresh clone at 80 columns: no FAIL, exit 0,
    every row with an accuracy (mobilenet's random weights: SNR vs fp32 on its calibration
    images, not flagged), and a line per model saying what its accuracy measures."""
    args = [sys.executable, "-m", "edge_bench.cli", "run", "--runs", "5", "--min-seconds", "0.1",
            "--processes", "1", "--no-store"]
    with Terminal(80, 40, env=env, cwd=REPO) as t:
        t.run(" ".join(shlex.quote(a) for a in args))
        t.wait_done(timeout=400)
        code = t.exit_code()
        screen = t.scrollback()
    assert code == 0, screen
    _lines_fit(screen, 80)
    assert "FAIL" not in screen and "WRONG" not in screen and "devices from" not in screen
    lines = screen.splitlines()
    header = next(ln for ln in lines if ln.startswith("model "))
    assert "SNR dB" in header, screen
    rows = [ln for ln in lines if re.match(r"^(digits|mobilenet)\s+(fp32|int8)\s", ln)]
    assert len(rows) == 4, screen
    # the accuracy columns sit between the speedup and the status: not all "-" on any row
    acc_cols = header[header.index("speedup") + len("speedup"):header.index("status")]
    for ln in rows:
        cells = ln[header.index("speedup") + len("speedup"):header.index("status")].split()
        assert cells and any(c != "-" for c in cells), (acc_cols, ln)
    notes = _joined(screen[screen.index("accuracy:"):])
    assert _joined("digits: top-1 % against the labels") in notes, screen
    assert _joined("mobilenet: no labels: agree % and SNR dB vs fp32, on calibration") in notes
    assert _joined("random weights: a low SNR is expected, not flagged") in notes


def test_live_view_keeps_the_unit_of_every_result_so_far() -> None:
    """The live table shows the last few rows; its latency unit comes from every result so far
    (a 1.4 ms model scrolled out of view used to switch the header from `median µs` to `ns`)."""
    from edge_bench.render.display import ResultsView
    view = ResultsView(["a.tflite", "b.tflite"], ["local"], [1])
    for model, variant, med in (("a.tflite", "fp32", 1.4), ("b.tflite", "fp32", 0.0009),
                                ("b.tflite", "int8", 0.0007)):
        view.add({"device": "local", "model": model, "variant": variant, "threads": 1,
                  "status": "ok", "model_bytes": 1000, "latency_ms": {"median": med, "p95": med},
                  "accuracy": None})
    heads = [c.header for c in view.columns(view.results[-2:])]   # the last 2 rows in view
    assert "median µs" in heads, heads
    assert heads == [c.header for c in view.columns()]
