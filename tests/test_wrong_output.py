"""WRONG OUTPUT -> exit 3 through the real CLI, with no third-party runtime to install.

A variant whose weights were corrupted after quantization (what a broken quantizer or a broken
conversion step would hand over) runs on the real `local` device with the real agent and LiteRT:
it loads, runs and is timed fine, and only the host's comparison with fp32 can tell. The run
must flag it (`WRONG OUTPUT` in the table, `accuracy.flag` in the JSON), keep the correct
variants unflagged, record the run as `partial` and exit 3. The same with a real old runtime:
test_wrong_runtime.py (needs pip to reach tflite-runtime 2.14)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from edge_bench.hashing import sha256_file
from edge_bench.models import quantize as Q
from edge_bench.models.builtin import resolve
from edge_bench.results.store import Store
from test_run_local import edge_bench


def _scramble_largest_weight(path: Path) -> None:
    """Permute the bytes of the model's largest constant buffer (its biggest weight tensor), in
    place: same size, same ops, same tensor types, wrong numbers."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    buf = max((b for b in model.buffers if b.data is not None), key=lambda b: len(b.data))
    data = np.asarray(buf.data, np.uint8)
    buf.data = np.random.default_rng(0).permutation(data)
    assert not np.array_equal(buf.data, data)
    b = flatbuffers.Builder(1 << 16)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))


def _cached_int8(tmp_path: Path) -> Path:
    """The real quantizer fills the variant cache `run` will use ($EDGE_BENCH_CACHE/quantized)."""
    digits = resolve("builtin:digits")
    return Q.cached_variant(digits.path, "int8", digits.calibration,
                            tmp_path / "cache" / "quantized").path


def _recorded_as_cached(variant: Path) -> None:
    """Record the file now at `variant` as the cache's result (its sidecar's size and sha256):
    the cache then serves exactly what a broken quantizer would have produced."""
    sidecar = variant.with_suffix(".json")
    meta: Dict[str, Any] = json.loads(sidecar.read_text())
    meta.update(bytes=variant.stat().st_size, sha256=sha256_file(variant))
    sidecar.write_text(json.dumps(meta))


def _run_digits(tmp_path: Path, variants: str, runs: int, warmup: int) -> Tuple[Any, Path]:
    """A real `edge-bench run` of builtin:digits on `local` with the cache above; (process,
    its --json file). The store is tmp_path/r.sqlite."""
    out = tmp_path / "out.json"
    p = edge_bench(["run", "--model", "builtin:digits", "--variants", variants,
                    "--runs", str(runs), "--warmup", str(warmup), "--min-seconds", "0",
                    "--processes", "1", "--json", str(out), "--db", str(tmp_path / "r.sqlite")],
                   tmp_path)
    return p, out


def test_a_variant_with_corrupted_weights_is_wrong_output_and_exit_3(tmp_path: Path) -> None:
    # 1. the real quantizer fills the variant cache `run` will use
    variant = _cached_int8(tmp_path)
    # 2. corrupt the quantized weights, and record the corrupted file as the cached result (its
    #    sidecar's size and sha256: the cache serves exactly what a broken quantizer produced)
    _scramble_largest_weight(variant)
    _recorded_as_cached(variant)
    # 3. a real run of fp32 and the corrupted int8
    p, out = _run_digits(tmp_path, "fp32,int8", runs=5, warmup=1)
    assert p.returncode == 3, p.stderr + p.stdout
    assert "Traceback" not in p.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "partial"
    by_variant = {r["variant"]: r for r in doc["results"]}
    assert set(by_variant) == {"fp32", "int8"}
    bad, good = by_variant["int8"], by_variant["fp32"]
    # the corrupted variant ran and was timed: only its outputs are wrong
    assert bad["status"] == "ok" and bad["error"] is None and bad["runs"] >= 5
    assert bad["model_sha256"] == sha256_file(variant)
    assert bad["accuracy"]["flag"] and "vs fp32" in bad["accuracy"]["flag"]
    assert bad["accuracy"]["agreement_vs_ref"] < 0.5       # docs: a wrong model agrees ~10%
    assert good["status"] == "ok" and good["accuracy"]["flag"] is None
    assert good["accuracy"]["agreement_vs_ref"] == 1.0
    rows = [ln for ln in p.stdout.splitlines() if "int8" in ln and "WRONG OUTPUT" in ln]
    assert rows, p.stdout
    # the stored run says the same as the document
    with Store(tmp_path / "r.sqlite") as store:
        stored = store.get_run(doc["run_id"])
    assert stored["status"] == "partial"
    flags = {r["variant"]: (r.get("accuracy") or {}).get("flag") for r in stored["results"]}
    assert flags["int8"] == bad["accuracy"]["flag"] and flags["fp32"] is None


def test_a_variant_whose_outputs_changed_shape_fails_alone_and_the_device_goes_on(
        tmp_path: Path) -> None:
    """A variant that runs but whose output no longer has fp32's shape (what a converter that
    changed the model's head would hand over) cannot be scored: that task is an error saying
    why (error_detail type BadEval), never a pass, and the device's next variant still runs.
    It used to fail the device: every task after it lost, as an error about something else."""
    from tflite_models import build_dense_softmax, dense_softmax_weights
    variant = _cached_int8(tmp_path)
    w, b = dense_softmax_weights(0, 64, 7)       # digits' input [1, 64]; 7 outputs, not 10
    variant.write_bytes(build_dense_softmax(w, b, input_name="pixels"))
    _recorded_as_cached(variant)
    p, out = _run_digits(tmp_path, "fp32,int8,fp16", runs=3, warmup=0)
    assert p.returncode == 3, p.stderr + p.stdout
    assert "Traceback" not in p.stderr and "internal error" not in p.stdout + p.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "partial"
    by_variant = {r["variant"]: r for r in doc["results"]}
    bad = by_variant["int8"]
    assert bad["status"] == "error" and bad["accuracy"] is None
    assert bad["error_detail"]["type"] == "BadEval"
    assert "differs from the reference" in bad["error"] and "7]" in bad["error"], bad["error"]
    assert bad["runs"] >= 3       # it was timed; only its outputs cannot be compared
    for v in ("fp32", "fp16"):    # fp16 ran after it: the device went on
        assert by_variant[v]["status"] == "ok" and by_variant[v]["accuracy"]["flag"] is None
    assert doc["devices"]["local"]["failure"] is None
    with Store(tmp_path / "r.sqlite") as store:
        stored = store.get_run(doc["run_id"])
    assert {r["variant"]: r["status"] for r in stored["results"]} == {
        "fp32": "ok", "int8": "error", "fp16": "ok"}
