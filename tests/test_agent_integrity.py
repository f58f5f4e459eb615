"""The agent checks the sha256 of EVERY file a task names (model, eval data, input data) before
using it, on the device, as a real subprocess with the real LiteRT. Issue 17: replacing the check
of eval/input files by a plain path went unnoticed, because only the model's check was tested.

Each case puts a file on the "device" whose bytes differ from the sha256 the host sent (a stale
or half-written upload), with content the agent could happily use: the task must fail with
ChecksumMismatch naming the file, produce no result, and the job goes on with the next task."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from test_agent import blob, job, of, run_agent, spec, task, wd  # noqa: F401 (wd: a fixture)


def _stale_copy(wd: Path, name: str, new_name: str) -> Dict[str, Any]:  # noqa: F811
    """A {"path", "sha256"} entry whose sha256 is that of blobs/name, for a file new_name that
    now holds different but valid data of the same shape."""
    src = blob(wd, name)
    dst = blob(wd, new_name)
    entry = spec(src, wd)
    data = dict(np.load(src))
    np.savez(dst, **{k: (v[::-1].copy() if k == "x" else v) for k, v in data.items()})
    assert dst.read_bytes() != src.read_bytes()
    entry["path"] = str(Path(entry["path"]).with_name(new_name))
    return entry


@pytest.mark.parametrize("field, name", [("eval", "eval.npz"), ("input", "input.npz")])
def test_a_data_file_with_the_wrong_sha256_fails_its_task(wd: Path, field: str,  # noqa: F811
                                                          name: str) -> None:
    stale = _stale_copy(wd, name, f"stale-{field}.npz")
    bad = task("bad", blob(wd, "dense.tflite"), wd, **{field: stale})
    good = task("good", blob(wd, "dense.tflite"), wd, **{field: spec(blob(wd, name), wd)})
    events, p = run_agent(job(wd, [bad, good]))
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    errs = {e["task"]: e for e in of(events, "error")}
    assert set(errs) == {"bad"}
    assert errs["bad"]["type"] == "ChecksumMismatch"
    msg = errs["bad"]["message"]
    assert field in msg and str(blob(wd, f"stale-{field}.npz")) in msg and stale["sha256"] in msg
    assert [r["task"] for r in of(events, "result")] == ["good"]


def test_the_sha256_check_is_on_the_bytes_not_the_name(wd: Path) -> None:  # noqa: F811
    """Same path, bytes replaced after the host computed the sha256: refused."""
    path = blob(wd, "swap-eval.npz")
    shutil.copyfile(blob(wd, "eval.npz"), path)
    entry = spec(path, wd)
    x = np.load(path)["x"]
    np.savez(path, x=x + 1.0, y=np.load(path)["y"])
    events, _ = run_agent(job(wd, [task("t", blob(wd, "dense.tflite"), wd, eval=entry)]))
    (err,) = of(events, "error")
    assert err["type"] == "ChecksumMismatch" and "eval" in err["message"]
    assert of(events, "result") == []


@pytest.mark.parametrize("field", ["model", "eval", "input"])
def test_a_file_entry_that_is_not_an_object_is_a_bad_job_naming_it(wd: Path,  # noqa: F811
                                                                   field: str) -> None:
    t = task("t", blob(wd, "dense.tflite"), wd)
    t[field] = "blobs/eval.npz"   # a bare path: no sha256 to check it against
    events, _ = run_agent(job(wd, [t, task("ok", blob(wd, "dense.tflite"), wd)]))
    errs = {e["task"]: e for e in of(events, "error")}
    assert errs["t"]["type"] == "BadJob"
    assert errs["t"]["message"].startswith(f"{field} must be an object with a 'path'")
    assert "'blobs/eval.npz'" in errs["t"]["message"]
    assert [r["task"] for r in of(events, "result")] == ["ok"]


@pytest.mark.parametrize("expected", ["0" * 64, "f" * 64, "F" * 64])
def test_any_other_sha256_is_a_mismatch(wd: Path, expected: str) -> None:  # noqa: F811
    """Below, above (and upper-case above) the real digest: only equality passes."""
    entry = spec(blob(wd, "eval.npz"), wd)
    assert entry["sha256"] not in (expected, expected.lower())
    entry["sha256"] = expected
    events, _ = run_agent(job(wd, [task("t", blob(wd, "dense.tflite"), wd, eval=entry)]))
    (err,) = of(events, "error")
    assert err["type"] == "ChecksumMismatch" and expected in err["message"]
