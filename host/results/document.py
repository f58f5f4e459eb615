"""The JSON results document ("edge-bench/run/1"): write, read, validate, and CSV export.

The JSON Schema lives in schemas/run-1.json (shipped as package data). `validate` uses the
`jsonschema` package when it is installed (it is a test extra) and a structural check otherwise.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO, Union

from ..errors import StoreError, UsageError
from ..files import chmod_for_user

SCHEMA = "edge-bench/run/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "run-1.json"
_SCHEMA_RE = re.compile(r"^edge-bench/run/(\d+)$")

PathLike = Union[str, "os.PathLike[str]"]


def load_schema() -> Dict[str, Any]:
    """The JSON Schema of "edge-bench/run/1"."""
    try:
        return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    except OSError:  # pragma: no cover - zipped installs
        from importlib import resources
        return json.loads(resources.files("edge_bench.results").joinpath("schemas/run-1.json").read_text("utf-8"))


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, numpy scalars/arrays become Python values."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    try:
        import numpy as np
        if isinstance(x, np.ndarray):
            return _clean(x.tolist())
        if isinstance(x, np.generic):
            return _clean(x.item())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, Path):
        return str(x)
    return str(x)


def build_doc(run_meta: Dict[str, Any], results: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """A results document from run metadata (run_id, label, started_at, host...) and results."""
    doc = {"schema": SCHEMA}
    doc.update({k: v for k, v in run_meta.items() if k not in ("results", "n_results", "n_ok")})
    doc["schema"] = SCHEMA
    doc["results"] = list(results)
    return _clean(doc)


def dumps(doc: Dict[str, Any], indent: Optional[int] = 1) -> str:
    return json.dumps(_clean(doc), indent=indent, allow_nan=False) + "\n"


def write_json(doc: Dict[str, Any], path_or_dash: PathLike) -> None:
    """Write the document to a file (atomically: a temp file renamed into place) or to stdout
    when the path is "-"."""
    write_text(dumps(doc), path_or_dash, "the results file")


def write_text(text: str, path_or_dash: PathLike, what: str = "") -> None:
    """Text to a file, atomically (a temp file renamed into place), or to stdout for "-"."""
    if str(path_or_dash) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(path_or_dash).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
        try:
            chmod_for_user(fd)  # the user's umask, as a plain open() would (mkstemp: 0600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        raise StoreError(f"cannot write {what + ' ' if what else ''}{path}: {e}") from e


def check_schema_id(doc: Any, where: str) -> None:
    """Refuse documents that are not "edge-bench/run/1", saying what to do."""
    if not isinstance(doc, dict):
        raise StoreError(f"{where} is not an edge-bench results document (not a JSON object)")
    schema = doc.get("schema")
    if schema == SCHEMA:
        return
    if schema is None:
        raise StoreError(f"{where} is not an edge-bench results document (it has no `schema` key)",
                         hint=f"expected \"schema\": \"{SCHEMA}\", as `edge-bench run --json FILE` writes")
    m = _SCHEMA_RE.match(str(schema))
    if m and int(m.group(1)) > 1:
        from .. import __version__
        raise StoreError(f"{where} has schema {schema!r}, newer than this edge-bench {__version__}"
                         f" reads ({SCHEMA})", hint="upgrade edge-bench (pip install -U edge-bench)")
    raise StoreError(f"{where} has an unknown schema {schema!r}; this edge-bench reads {SCHEMA!r}",
                     hint="pass a file written by `edge-bench run --json FILE`")


def check_writable(path_or_dash: PathLike, what: str) -> None:
    """Fail now (UsageError) when `what` (e.g. "--json") cannot be written at that path, so a
    typo does not surface only after the whole benchmark. Creates missing parent directories,
    and a temp file in the target directory that it removes again."""
    if str(path_or_dash) == "-":
        return
    path = Path(path_or_dash).expanduser()
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory", hint="give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".check", dir=str(path.parent))
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot write there ({e.strerror or e}); nothing was run",
                         hint="pick a writable path") from e


def read_json(path: PathLike) -> Dict[str, Any]:
    """Read a results document; refuses unknown schema values and malformed files."""
    p = Path(path).expanduser()
    try:
        text = sys.stdin.read() if str(path) == "-" else p.read_text(encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot read the results file {p}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise StoreError(f"{p} is not a results file (not UTF-8 text at byte {e.start})",
                         hint="pass a file written by `edge-bench run --json`") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise StoreError(f"{p} is not valid JSON: {e}") from e
    except RecursionError:
        raise StoreError(f"{p} is not a results file (JSON nested too deeply)") from None
    check_schema_id(doc, str(p))
    validate(doc, where=str(p))
    return doc


def validation_errors(doc: Any) -> List[str]:
    """Every way `doc` breaks schemas/run-1.json (empty list: valid)."""
    try:
        import jsonschema
    except ImportError:
        return _structural_errors(doc)
    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    v = cls(schema)
    out = []
    for err in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        loc = "/".join(str(p) for p in err.absolute_path) or "(document)"
        out.append(f"{loc}: {err.message}")
    return out


def validate(doc: Any, where: str = "results document") -> None:
    """Raise StoreError listing what is wrong when `doc` does not match the schema."""
    errs = validation_errors(doc)
    if errs:
        more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
        raise StoreError(f"{where} does not match {SCHEMA}: " + "; ".join(errs[:5]) + more)


def _structural_errors(doc: Any) -> List[str]:
    if not isinstance(doc, dict):
        return ["(document): not an object"]
    errs = []
    if doc.get("schema") != SCHEMA:
        errs.append(f"schema: must be {SCHEMA!r}")
    for k in ("run_id", "started_at"):
        if not isinstance(doc.get(k), str):
            errs.append(f"{k}: missing or not a string")
    results = doc.get("results")
    if not isinstance(results, list):
        return errs + ["results: missing or not a list"]
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            errs.append(f"results/{i}: not an object")
            continue
        for k in ("device", "model", "variant"):
            if not isinstance(r.get(k), str):
                errs.append(f"results/{i}/{k}: missing or not a string")
        if r.get("status") not in ("ok", "partial", "error", "skipped"):
            errs.append(f"results/{i}/status: must be ok, partial, error or skipped")
    return errs


# --- CSV ----------------------------------------------------------------------------------

RESULT_CSV_COLUMNS = [
    "run_id", "label", "started_at", "device", "model", "variant", "threads", "accelerator",
    "ops_placed", "ops_total", "partitions", "status", "error",
    "runtime", "runtime_version", "xnnpack", "agent_version", "arch", "cpu", "governor",
    "temp_c_before", "temp_c_after", "throttled", "model_sha256", "model_bytes", "init_ms",
    "first_inference_ms", "warmup", "runs", "processes", "process_runs", "mean_ms", "std_ms", "min_ms", "median_ms",
    "median_ci_lo_ms", "median_ci_hi_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "cov",
    "iqr_over_median",
    "peak_rss_mb", "other_cores", "top1", "top1_ref", "agreement_vs_ref", "max_abs_err",
]


def result_row(doc: Dict[str, Any], r: Dict[str, Any]) -> Dict[str, Any]:
    rt = r.get("runtime") or {}
    di = r.get("device_info") or {}
    lat = r.get("latency_ms") or {}
    acc = r.get("accuracy") or {}
    ci = r.get("median_ci_ms") or [None, None]
    row = {
        "run_id": doc.get("run_id"), "label": doc.get("label"), "started_at": doc.get("started_at"),
        "device": r.get("device"), "model": r.get("model"), "variant": r.get("variant"),
        "threads": r.get("threads"), "accelerator": r.get("accelerator") or "cpu",
        "ops_placed": (r.get("placement") or {}).get("ops_placed"),
        "ops_total": (r.get("placement") or {}).get("ops_total"),
        "partitions": (r.get("placement") or {}).get("partitions"),
        "status": r.get("status"), "error": r.get("error"),
        "runtime": rt.get("name"), "runtime_version": rt.get("version"), "xnnpack": rt.get("xnnpack"),
        "agent_version": r.get("agent_version"), "arch": di.get("arch"), "cpu": di.get("cpu"),
        "governor": di.get("governor"), "temp_c_before": di.get("temp_c_before"),
        "temp_c_after": di.get("temp_c_after"), "throttled": di.get("throttled"),
        "model_sha256": r.get("model_sha256"), "model_bytes": r.get("model_bytes"),
        "init_ms": r.get("init_ms"), "first_inference_ms": r.get("first_inference_ms"),
        "warmup": r.get("warmup"), "runs": r.get("runs"), "processes": r.get("processes"),
        "process_runs": " ".join(str(n) for n in r.get("process_runs") or []) or None,
        "median_ci_lo_ms": ci[0], "median_ci_hi_ms": ci[1],
        "peak_rss_mb": r.get("peak_rss_mb"),
        "other_cores": (r.get("interference") or {}).get("other_cores"),
    }
    for k in ("mean", "std", "min", "median", "p90", "p95", "p99", "max"):
        row[f"{k}_ms"] = lat.get(k)
    row["cov"] = lat.get("cov")
    # beside CoV the robust spread, which one outlier cannot blow up (from the raw samples;
    # empty for rows read without them)
    from ..analysis.stats import iqr_over_median
    row["iqr_over_median"] = iqr_over_median(r.get("samples_ms") or [])
    for k in ("top1", "top1_ref", "agreement_vs_ref", "max_abs_err"):
        row[k] = acc.get(k)
    return row


def _open_out(path: PathLike) -> TextIO:
    if str(path) == "-":
        return sys.stdout
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise StoreError(f"cannot write {p}: {e.strerror or e}") from e


def _cell(v: Any) -> Any:
    """A CSV cell: text a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+`, `-`, `@`,
    tab, CR first) gets a leading `'`, so it is shown, not evaluated."""
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def write_rows_csv(rows: Sequence[Dict[str, Any]], columns: Sequence[str], path: PathLike) -> None:
    f = _open_out(path)
    try:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _cell(row.get(k)) for k in columns})
    finally:
        if f is not sys.stdout:
            f.close()
        else:
            f.flush()


def write_csv(doc: Dict[str, Any], path: PathLike) -> None:
    """One CSV row per result of the run (statistics, environment, accuracy; no raw samples)."""
    write_rows_csv([result_row(doc, r) for r in doc.get("results") or []], RESULT_CSV_COLUMNS, path)
