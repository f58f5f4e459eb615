"""Ahead-of-time NPU compile of a .tflite with ai-edge-litert's AOT tools, cached by content.

`aot_compile(model, "intel_openvino:LNL")` returns the compiled file: its DISPATCH_OP nodes run
only through LiteRT's CompiledModel API on a device with the vendor's dispatch library
(`run --accelerator npu`). The cache is `$EDGE_BENCH_CACHE/aot/` (default
~/.cache/edge-bench/aot), keyed by the model's sha256, the target and ai-edge-litert's version,
each file beside a .json sidecar with its size and sha256 (quantcache.cache_get_or_make).
The AOT tools write next to the input model (`_compiled_models/`): the input is copied into a
temporary dir first, so nothing is written beside the user's file.

Intel OpenVINO compiles here only with its graph backends set (`intel_openvino_graph_backends`,
default `cpu`: the OpenVINO CPU device; without it the plugin loads the NPU compiler, which
this machine lacks). Other vendors' targets are listed but their compilers are not tested here.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import ModelError, UsageError
from ..hashing import sha256_file
from .quantcache import cache_get_or_make, default_cache_dir
from .variants import QuantizeResult

#: --target VENDOR -> (module under ai_edge_litert.aot.vendors, config flags the compile needs)
VENDORS: Dict[str, Tuple[str, Dict[str, str]]] = {
    "intel_openvino": ("intel_openvino", {"intel_openvino_graph_backends": "cpu"}),
}


class AotResult(NamedTuple):
    path: Path
    bytes: int
    sha256: str
    target: str
    cached: bool


def parse_target(text: str) -> Tuple[str, Optional[str]]:
    """`intel_openvino[:SOC]` -> (vendor, SOC or None); UsageError in one line otherwise."""
    vendor, _, soc = text.partition(":")
    if vendor not in VENDORS:
        raise UsageError(f"--target {text!r}: unknown vendor {vendor!r}; known: "
                         f"{', '.join(sorted(VENDORS))} (as VENDOR[:SOC], e.g. intel_openvino:LNL)")
    return vendor, (soc or None)


def _target(vendor: str, soc: Optional[str]):  # -> ai_edge_litert.aot Target
    import importlib
    try:
        t = importlib.import_module(f"ai_edge_litert.aot.vendors.{VENDORS[vendor][0]}.target")
    except ImportError as e:
        raise ModelError(f"ai-edge-litert's AOT tools are not importable ({e}): "
                         "pip install 'ai-edge-litert>=2.3'") from None
    socs: List[str] = [m.value for m in t.SocModel if m.value != "ALL"]
    soc = soc or socs[0]
    if soc not in socs:
        raise UsageError(f"--target {vendor}:{soc}: unknown SOC; {vendor} has {', '.join(socs)}")
    return t.Target(t.SocModel(soc)), soc


def litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "?"


def _why(failure: object) -> str:
    """A failed backend's message (the tools give (backend, text)), with the last error line
    of the log file it points to (`See /tmp/x.error for details`), which it then removes."""
    import re
    text = str(failure[1]) if isinstance(failure, tuple) and len(failure) > 1 else str(failure)
    m = re.search(r"See (\S+\.error) for details", text)
    if m:
        p = Path(m.group(1))
        try:
            lines = [ln for ln in p.read_text(errors="replace").splitlines()
                     if "ERROR" in ln or "rror:" in ln]
            p.unlink()
        except OSError:
            lines = []
        text = text[:m.start()].rstrip(" .") + (f": {lines[-1].strip()}" if lines else "")
    return text


def _compile_into(src: Path, tmp_out: str, target, flags: Dict[str, str]) -> None:
    """Run the AOT compile on a private copy of `src`; write the compiled model to `tmp_out`."""
    from ..quiet import captured_output, noise_free
    from ai_edge_litert.aot import aot_compile as ac
    with tempfile.TemporaryDirectory(prefix="edge-bench-aot-") as work:
        copy = Path(work) / "model.tflite"
        shutil.copyfile(src, copy)
        out_dir = Path(work) / "out"
        try:
            with captured_output("aot_compile") as log:
                res = ac.aot_compile(str(copy), output_dir=str(out_dir), target=target,
                                     keep_going=True, **flags)
        except Exception as e:  # noqa: BLE001 - the compiler's own words, one line
            raise ModelError(f"AOT compile of {src.name} for {target!r} failed: "
                             f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        failed = getattr(res, "failed_backends", None) or []
        made = [m for _, m in getattr(res, "models_with_backend", [])]
        if failed or not made:
            why = "; ".join(_why(f) for f in failed) or noise_free(log[0] if log else "", 300)
            raise ModelError(f"AOT compile of {src.name} for {target!r} failed: "
                             f"{' '.join(why.split())[:300] or 'no compiled model was produced'}")
        files = sorted(out_dir.glob("*.tflite"))
        if not files:
            raise ModelError(f"AOT compile of {src.name} for {target!r} wrote no .tflite")
        shutil.copyfile(files[0], tmp_out)


def aot_compile(model: Path, target_text: str, cache_dir: Optional[Path] = None) -> AotResult:
    """The AOT-compiled model for `target_text` (VENDOR[:SOC]), from the cache or made now."""
    from .modelinfo import check_tflite
    vendor, soc = parse_target(target_text)
    check_tflite(model)  # one line for a missing, empty or non-TFLite file
    target, soc = _target(vendor, soc)
    flags = VENDORS[vendor][1]
    sha = sha256_file(model)
    ver = litert_version()
    name = f"{model.stem}-{vendor}_{soc}-{sha[:16]}-litert{ver}.tflite"
    out = (cache_dir or default_cache_dir().parent / "aot") / name
    label = f"{vendor}:{soc}"

    def make(tmp: str) -> QuantizeResult:
        _compile_into(model, tmp, target, flags)
        p = Path(tmp)
        return QuantizeResult(label, p, p.stat().st_size, sha256_file(p),
                              f"AOT {label} ({', '.join(f'{k}={v}' for k, v in flags.items())})",
                              False, None)

    r = cache_get_or_make(out, make, {"variant": label, "model_sha256": sha, "target": label,
                                      "ai_edge_litert": ver, "flags": flags})
    return AotResult(r.path, r.bytes, r.sha256, label, r.cached)
