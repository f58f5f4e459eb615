"""Terminal tables that fit: short labels, compact numbers with the unit in the header, columns
that carry nothing dropped, and one line per row (ellipsis instead of wrapping).

`fit()` is the one place that decides which columns a width can hold; the results table of a
run, `history` and `compare` all go through it. Full detail stays in --json, CSV and the report.
rich is imported only when a table is built.
"""
from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from edge_bench_agent.accel_spec import result_accelerator

from .visible import visible

#: gap between columns (rich's padding (0, 1) on both sides, no vertical rules)
GAP = 2


@dataclass
class Col:
    """One column: header, right-aligned numbers or left-aligned text, and how much it matters.

    `priority`: columns with the lowest value are dropped first when the width is too small
    (0 = never dropped). `flex`: this column absorbs the leftover width and is cut with an
    ellipsis (status, error text). `min_width`: never narrower than this (flex columns);
    `prefer`: a flex column keeps this much (or its natural width) before any column with a
    priority is dropped."""
    header: str
    numeric: bool = False
    priority: int = 0
    flex: bool = False
    min_width: int = 4
    prefer: int = 12
    cells: List[str] = field(default_factory=list)

    def natural(self) -> int:
        return max([len(self.header)] + [len(c) for c in self.cells])


def fit(cols: Sequence[Col], width: Optional[int]) -> Tuple[List[Col], Dict[int, int]]:
    """The columns that fit `width` (None: all) and the width each one gets (by index into the
    returned list). Empty columns (every cell "" or "-") are dropped first, then the lowest
    priority until the natural widths, with the flex columns at their minimum, fit."""
    kept = [c for c in cols if any(x not in ("", "-") for x in c.cells) or not c.cells]
    if width is not None:
        def need(cs: Sequence[Col]) -> int:
            return sum(min(c.natural(), c.prefer) if c.flex else c.natural() for c in cs) + \
                GAP * max(0, len(cs) - 1)
        while need(kept) > width:
            droppable = [c for c in kept if c.priority > 0]
            if not droppable:
                break
            kept.remove(min(droppable, key=lambda c: (c.priority, -kept.index(c))))
    widths = {i: c.natural() for i, c in enumerate(kept)}
    if width is not None:
        fixed = sum(w for i, w in widths.items() if not kept[i].flex) + GAP * max(0, len(kept) - 1)
        flex = [i for i, c in enumerate(kept) if c.flex]
        room = width - fixed
        natural = {i: widths[i] for i in flex}
        # each flex column first gets its preferred width (an equal share when that is too
        # much), then what is left goes to them in column order, up to their natural width
        base = {i: min(natural[i], kept[i].prefer) for i in flex}
        if sum(base.values()) > room:
            for n, i in enumerate(sorted(flex, key=lambda j: base[j])):
                share = max(0, room) // (len(flex) - n)
                base[i] = min(base[i], share)
                room -= base[i]
            room = 0
        else:
            room -= sum(base.values())
        for i in flex:
            extra = min(room, natural[i] - base[i])
            widths[i] = max(min(kept[i].min_width, natural[i]), base[i] + extra)
            room -= extra
        if not flex and fixed > width:  # nothing left to drop: cut the widest text column
            texts = [i for i, c in enumerate(kept) if not c.numeric]
            if texts:
                i = max(texts, key=lambda j: widths[j])
                widths[i] = max(4, widths[i] - (fixed - width))
    return kept, widths


def shown(cols: Sequence[Col]) -> List[Col]:
    """The columns with every header and cell as visible text (render/visible.py)."""
    return [replace(c, header=visible(c.header), cells=[visible(x) for x in c.cells]) for c in cols]


def rich_table(cols: Sequence[Col], width: Optional[int], *, title: Optional[str] = None,
               styles: Optional[Sequence[str]] = None, caption: Optional[str] = None) -> Any:
    """A rich Table of the columns that fit, every cell on one line (ellipsis when cut).
    Cell text is escaped here: device names, model paths and error messages are user text."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    kept, widths = fit(shown(cols), width)
    t = Table(title=escape(visible(title)) if title else None,
              caption=escape(visible(caption)) if caption else None,
              box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
              collapse_padding=True, expand=False, title_justify="left", caption_justify="left")
    for i, c in enumerate(kept):
        t.add_column(escape(c.header), justify="right" if c.numeric else "left", no_wrap=True,
                     overflow="ellipsis", width=widths[i], min_width=widths[i], max_width=widths[i])
    n = max([len(c.cells) for c in kept] + [0])
    for r in range(n):
        cells = [escape(c.cells[r]) if r < len(c.cells) else "" for c in kept]
        t.add_row(*cells, style=(styles[r] if styles and r < len(styles) else None) or None)
    return t


def plain_table(cols: Sequence[Col], width: Optional[int] = None) -> List[str]:
    """The same table as aligned plain text lines (logs, pipes): no styles, no box."""
    kept, widths = fit(shown(cols), width)
    n = max([len(c.cells) for c in kept] + [0])
    lines = []
    for r in range(-1, n):
        parts = []
        for i, c in enumerate(kept):
            text = c.header if r < 0 else (c.cells[r] if r < len(c.cells) else "")
            w = widths[i]
            if len(text) > w:
                text = text[:max(0, w - 1)] + "…"
            parts.append(text.rjust(w) if c.numeric else text.ljust(w))
        lines.append((" " * GAP).join(parts).rstrip())
    return lines


# --- labels -------------------------------------------------------------------------------------

def variant_label(r: Dict[str, Any]) -> str:
    """A result's variant as reports name it: `fp16`, or `fp16 @gpu` off the CPU path (the
    accelerator is part of the key: docs/accelerators.md)."""
    accel = result_accelerator(r)
    return str(r.get("variant")) + ("" if accel == "cpu" else f" @{accel}")


def _parts(name: str) -> List[str]:
    if name.startswith("builtin:"):
        return [name[len("builtin:"):]]
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return parts or [name]


def short_labels(names: Iterable[str]) -> Dict[str, str]:
    """Model name -> a short label: the file name (`/m/mobilenet_v2.tflite` ->
    mobilenet_v2.tflite; `builtin:digits` -> digits); when two names share it, the shortest
    path suffix that tells them apart."""
    uniq = list(dict.fromkeys(names))
    parts = {n: _parts(n) for n in uniq}
    depth = {n: 1 for n in uniq}
    while True:
        label = {n: posixpath.join(*parts[n][-depth[n]:]) for n in uniq}
        seen: Dict[str, List[str]] = {}
        for n in uniq:
            seen.setdefault(label[n], []).append(n)
        grow = [n for group in seen.values() if len(group) > 1 for n in group
                if depth[n] < len(parts[n])]
        if not grow:
            break
        for n in grow:
            depth[n] += 1
    # still equal (builtin:x and a file x.tflite, or the same path twice): the full name
    seen_labels: Dict[str, int] = {}
    for n in uniq:
        seen_labels[label[n]] = seen_labels.get(label[n], 0) + 1
    return {n: (label[n] if seen_labels[label[n]] == 1 else n) for n in uniq}


# --- numbers ------------------------------------------------------------------------------------

def sig(x: Optional[float], digits: int = 3) -> str:
    """`x` with about `digits` significant digits and no exponent: 0.00217, 2.17, 21.7, 217,
    2170."""
    if x is None or not math.isfinite(x):
        return "-"
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


TIME_UNITS = (("s", 1e3), ("ms", 1.0), ("µs", 1e-3), ("ns", 1e-6))


def time_unit(values_ms: Iterable[Optional[float]]) -> Tuple[str, float]:
    """The unit (name, size in ms) that shows the largest of these latencies as >= 1."""
    return _unit([v for v in values_ms if v is not None and math.isfinite(v) and v > 0],
                 TIME_UNITS, ("ms", 1.0))


def _unit(vals: List[float], units: Sequence[Tuple[str, float]],
          default: Tuple[str, float]) -> Tuple[str, float]:
    """The largest unit that shows the smallest value as >= 1, unless the largest value would
    then need more than 5 digits (then the smallest unit that keeps it under 100000)."""
    if not vals:
        return default
    lo, hi = min(vals), max(vals)
    for i, (name, size) in enumerate(units):  # units from the largest down
        if lo >= size or i == len(units) - 1:
            while hi / units[i][1] >= 1e5 and i > 0:
                i -= 1
            return units[i]
    return default


BYTE_UNITS = (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1))


def byte_unit(values: Iterable[Optional[float]]) -> Tuple[str, float]:
    return _unit([float(v) for v in values if v is not None and v > 0], BYTE_UNITS, ("B", 1))


def in_unit(x: Optional[float], size: float, digits: int = 3) -> str:
    return "-" if x is None else sig(x / size, digits)


def fmt_bytes(n: Optional[float]) -> str:
    """A size with its own unit, for text (not a column): 544 KB, 1.75 MB."""
    if n is None:
        return "-"
    if n == 0:
        return "0 B"
    name, size = byte_unit([n])
    return f"{sig(n / size)} {name}"


def fmt_time(ms: Optional[float]) -> str:
    """A latency with its own unit, for text: 2.17 µs, 580 µs, 12.3 ms."""
    if ms is None:
        return "-"
    name, size = time_unit([ms])
    return f"{sig(ms / size)} {name}"


def pct(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}"


def signed(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"
