"""The sentences below a table: a failure's, a skip's or a wrong output's whole reason, which a
cell of an 80-column table can only start. One line per distinct reason, naming the rows it
is about; the console wraps it at words, so every line fits the screen."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

from ..text import plural

NOTES_TITLE = "why:"


def result_notes(results: Sequence[Dict[str, Any]], status: Callable[[Dict[str, Any]], Tuple[str, str]],
                 labels: Dict[str, str], *, one_device: bool, one_threads: bool) -> List[str]:
    """`digits int8, mobilenet int8: skipped: it needs calibration data (pass --calibration
    ...)`: every result whose status is not a plain ok, grouped by the same text (a device
    that failed fails all its rows with one reason: said once, with the device)."""
    groups: Dict[str, Dict[str, List[str]]] = {}   # reason -> device -> rows
    per_device: Dict[str, int] = {}
    for r in results:
        per_device[r["device"]] = per_device.get(r["device"], 0) + 1
        text, style = status(r)
        if style == "ok":
            continue
        name = f"{labels.get(r['model'], r['model'])} {r['variant']}"
        if not one_threads:
            name += f" t{r['threads']}"
        groups.setdefault(text, {}).setdefault(r["device"], []).append(name)
    out = []
    for text, by_device in groups.items():
        # the same rows on several devices (a skip, made on the host) are named once
        same: Dict[Tuple[str, ...], List[str]] = {}
        for device, names in by_device.items():
            if len(names) > 1 and len(names) == per_device[device]:   # the device itself failed
                names = [f"all {len(names)} results"]
            same.setdefault(tuple(dict.fromkeys(names)), []).append(device)
        who = "; ".join(", ".join(names) + ("" if one_device else " on " + ", ".join(devices))
                        for names, devices in same.items())
        out.append(f"{who}: {text}")
    return out


def accuracy_notes(results: Sequence[Dict[str, Any]], labels: Dict[str, str]) -> List[str]:
    """One line per model saying what its accuracy columns measure: top-1 against labels, or
    (no labels) agreement and output SNR against fp32, and on which samples."""
    out = []
    seen = set()
    for r in results:
        acc = r.get("accuracy")
        if r["model"] in seen or r.get("status") != "ok" or not acc:
            continue
        seen.add(r["model"])
        n = acc.get("samples")
        on = str(acc.get("eval_source") or "eval data")
        if on == "eval file":
            on = "the --eval file" if not str(r["model"]).startswith("builtin:") else "its eval set"
        if n is not None and "samples" not in on.split(";")[0]:
            on += f" ({plural(int(n), 'sample')})"
        what = ("top-1 % against the labels; agree % and SNR dB vs fp32" if acc.get("top1") is not None
                else "no labels: agree % and SNR dB vs fp32")
        out.append(f"{labels.get(r['model'], r['model'])}: {what}, on {on}")
    return out
