"""Fuzz every subcommand with random, truncated, binary and misplaced inputs (issue 16).

Each case runs the real CLI (`edge_bench.cli.main`) in this process with HOME, the cache, the
store and the working directory inside the test's tmp dir. Symlinks to files of an `outside`
directory are planted where the `local` device writes (its blob, lock and lock-holder paths).
Asserted for every case: no exception escapes (no traceback), the exit code is a documented one
for that command, an error is one line on stderr; and after all cases: nothing outside the
workdir was written (the `outside` files and the repository checkout are unchanged).
The number of cases is reported in docs/security.md."""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from test_run_local import REPO

SEEDS = (16, 17)
CASES_PER_COMMAND = 18
DIGITS = REPO / "host" / "models" / "builtin" / "data" / "digits.tflite"
EVAL = REPO / "host" / "models" / "builtin" / "data" / "digits_eval.npz"

#: exit codes each command documents (--help epilogs): 1 only where a verdict or a refusal is
EXIT_CODES = {"run": {0, 2, 3}, "quantize": {0, 2, 3}, "devices": {0, 2, 3}, "deploy": {0, 2, 3},
              "history": {0, 2}, "compare": {0, 2}, "report": {0, 2}, "compile": {0, 2}}


def _snapshot(root: Path) -> Dict[str, Tuple[float, int]]:
    out = {}
    if root.is_dir():
        for p in root.rglob("*"):
            with contextlib.suppress(OSError):
                st = p.lstat()
                out[str(p)] = (st.st_mtime, st.st_size)
    return out


def _files(tmp: Path, rng: random.Random) -> Dict[str, List[Path]]:
    """Hostile files of each kind, made from real ones: random bytes, truncated, bit-flipped,
    empty, a directory, a missing path."""
    src = {
        "model": DIGITS.read_bytes(),
        "npz": EVAL.read_bytes(),
        "yaml": b"version: 1\ndevices:\n  box:\n    transport: local\n    tags: [a]\n",
    }
    from test_properties import _valid_doc
    src["json"] = json.dumps(_valid_doc(3)).encode()
    db = tmp / "good.sqlite"
    con = sqlite3.connect(str(db))
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    src["db"] = db.read_bytes()
    out: Dict[str, List[Path]] = {}
    d = tmp / "inputs"
    d.mkdir()
    (d / "adir").mkdir()
    for kind, good in src.items():
        files = [d / "adir", d / f"missing.{kind}"]
        for i in range(6):
            p = d / f"{kind}{i}.{kind if kind != 'model' else 'tflite'}"
            choice = i % 6
            if choice == 0:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
            elif choice == 1:
                data = good[:rng.randint(0, max(0, len(good) - 1))]
            elif choice == 2:
                b = bytearray(good)
                for _ in range(rng.randint(1, 20)):
                    b[rng.randrange(len(b))] = rng.getrandbits(8)
                data = bytes(b)
            elif choice == 3:
                data = b""
            elif choice == 4:
                data = good + bytes(rng.getrandbits(8) for _ in range(100))
            else:
                data = "".join(rng.choice("[]/\\\n\t{}:*&!-é\u202e") for _ in range(200)).encode()
            p.write_bytes(data)
            files.append(p)
        out[kind] = files
    return out


def _cases(files: Dict[str, List[Path]], tmp: Path, rng: random.Random) -> List[List[str]]:
    def f(kind: str) -> str:
        return str(rng.choice(files[kind]))

    def word() -> str:
        return rng.choice(["last", "last~1", "last~99999999999999999999", "", "-", "x[/y]",
                           "nan", "inf", "-1", "0", "1e400", "all", "tag:", "local", "box",
                           "a,b,,", "../../etc/passwd", "\x7f", "ñ" * 300])

    fast = ["--runs", "2", "--warmup", "0", "--min-seconds", "0", "--processes", "1"]
    make = {
        "run": lambda: ["run", "--no-store", *fast, "--variants", rng.choice(["fp32", "fp16",
                        "dynamic-int8", word()]),
                        *rng.choice([["--model", f("model")], ["--eval", f("npz"), "--model",
                                    "builtin:digits", "--variants", "fp32"],
                                    ["--config", f("yaml"), "--devices", word()],
                                    ["--calibration", f("npz"), "--variants", "int8",
                                     "--model", "builtin:digits"],
                                    ["--threads", word()], ["--label", word()],
                                    ["--timeout", word()], ["--max-seconds", word()]])],
        "quantize": lambda: ["quantize", rng.choice([f("model"), "builtin:digits", word()]),
                             "--variants", rng.choice(["fp16", "int8", word()]),
                             *rng.choice([[], ["--calibration", f("npz")]]),
                             "-o", rng.choice([str(tmp / "qout"), f("model")])],
        "devices": lambda: ["devices", "--config", f("yaml"),
                            *rng.choice([[], ["--json"], ["--devices", word()]])],
        "deploy": lambda: ["deploy", "--config", f("yaml"), "--devices", rng.choice(["box", word()])],
        "history": lambda: ["history", "--db", f("db"),
                            *rng.choice([[], ["--label", word()], ["--last", word()]])],
        "compare": lambda: ["compare", rng.choice([f("json"), word()]), rng.choice([f("json"), word()]),
                            "--db", f("db"), *rng.choice([[], ["--threshold", word()],
                                                          ["--alpha", word()]])],
        "report": lambda: ["report", rng.choice([f("json"), word()]), "--db", f("db"),
                           "--html", str(tmp / "out" / "r.html")],
        "compile": lambda: ["compile", rng.choice([f("model"), "builtin:digits", word()]),
                            "--target", rng.choice(["intel_openvino", f"intel_openvino:{word()}",
                                                    word()]),
                            *rng.choice([[], ["-o", str(tmp / "aout")], ["-o", f("model")]])],
    }
    out = []
    for name, mk in make.items():
        for _ in range(CASES_PER_COMMAND):
            out.append(mk())
    return out


def _run(argv: List[str]) -> Tuple[object, str, str]:
    from edge_bench.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:       # argparse: usage errors exit 2
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_subcommand_survives_hostile_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  seed: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workdir = tmp_path / "home" / ".cache" / "edge-bench"     # the `local` device's workdir
    (workdir / "blobs").mkdir(parents=True)
    from edge_bench.hashing import sha256_file
    plants = {workdir / "blobs" / f"{sha256_file(DIGITS)}.tflite": "blob",
              workdir / "lock.holder": "holder"}
    if seed % 2:                              # a planted lock makes every local run refuse
        plants[workdir / "lock"] = "lock"
    for link, name in plants.items():
        (outside / name).write_bytes(f"outside file {name}\n".encode())
        link.symlink_to(outside / name)
    before = _snapshot(outside)
    git_before = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                                capture_output=True, text=True).stdout
    rng = random.Random(seed)
    files = _files(tmp_path, rng)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGE_BENCH_DB", str(tmp_path / "db.sqlite"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGE_BENCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cases = _cases(files, tmp_path, rng)
    failures = []
    for argv in cases:
        try:
            rc, out, err = _run(argv)
        except BaseException as e:  # noqa: BLE001 - this is what the test looks for
            failures.append(f"{argv!r}: {type(e).__name__}: {e}")
            continue
        allowed = EXIT_CODES[argv[0]]
        lines = [ln for ln in err.splitlines() if ln.startswith("edge-bench: error:")]
        if "Traceback" in err or rc not in allowed or (rc == 2 and "usage:" not in err
                                                        and len(lines) != 1):
            failures.append(f"{argv!r}: rc={rc} stderr={err[-600:]!r}")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures[:15])
    assert len(cases) == CASES_PER_COMMAND * len(EXIT_CODES)
    assert _snapshot(outside) == before, "a file outside the workdir was written"
    assert all((outside / n).read_bytes() == f"outside file {n}\n".encode()
               for n in plants.values())
    git_after = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                               capture_output=True, text=True).stdout
    assert git_after == git_before, "the fuzz cases wrote into the repository checkout"
