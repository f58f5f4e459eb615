"""What the user sees during a run: a live rich table on a terminal, plain lines otherwise.

rich is imported only here (and in other display code), never at package import time.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple

Key = Tuple[str, str, int]  # device, model, threads

COLUMNS = ["device", "model", "variant", "thr", "size", "median ms", "p95 ms", "speedup",
           "top-1", "agree", "status"]


def fmt_bytes(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def fmt_ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x < 1:
        return f"{x:.4f}"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def similarity(acc: Dict[str, Any]) -> str:
    """Compact output similarity vs fp32: the worst output's SNR ("inf dB" = identical)."""
    snrs = [o.get("snr_db") for o in acc.get("outputs") or [] if o.get("snr_db") is not None]
    if not snrs:
        return "-"
    worst = min(snrs)
    return "inf dB" if worst == float("inf") else f"{worst:.0f} dB"


def row_cells(r: Dict[str, Any], fp32: Optional[Dict[str, Any]]) -> Tuple[List[str], str]:
    """Cells of one result row and a style name: ok / bad / warn / skip."""
    lat = r.get("latency_ms") or {}
    speed = "-"
    if fp32 and r["status"] == "ok" and fp32.get("status") == "ok":
        a, b = (fp32.get("latency_ms") or {}).get("median"), lat.get("median")
        if a and b:
            speed = f"{a / b:.2f}x"
    acc = r.get("accuracy") or {}
    top1 = "-"
    if acc.get("top1") is not None:
        top1 = f"{acc['top1'] * 100:.1f}%"
        ref = acc.get("top1_ref")
        if ref is not None:
            top1 += f" ({(acc['top1'] - ref) * 100:+.1f})"
    agree = f"{acc['agreement_vs_ref'] * 100:.1f}%" if acc.get("agreement_vs_ref") is not None else "-"
    if "collapse_snr_db" in (acc.get("tolerance") or {}):
        agree = similarity(acc)  # unlabelled inputs: the worst output's SNR vs fp32
    style = "ok"
    status = r["status"]
    if r["status"] != "ok":
        style = "skip" if r["status"] == "skipped" else "bad"
        status = f"{r['status']}: {r.get('error') or ''}"
    elif acc.get("flag"):
        style = "bad"
        status = f"WRONG OUTPUT: {acc['flag']}"
    elif (r.get("device_info") or {}).get("throttled_during"):
        style = "warn"
        status = "ok (throttled)"
    cells = [r["device"], r["model"], r["variant"], str(r["threads"]), fmt_bytes(r.get("model_bytes")),
             fmt_ms(lat.get("median")), fmt_ms(lat.get("p95")), speed, top1, agree, status]
    return cells, style


class ResultsView:
    """Collects results and renders them; fp32 of the same (device, model, threads) is the base."""

    def __init__(self) -> None:
        self.results: List[Dict[str, Any]] = []
        self.fp32: Dict[Key, Dict[str, Any]] = {}
        self.status: Dict[str, str] = {}

    def add(self, r: Dict[str, Any]) -> None:
        self.results.append(r)
        if r["variant"] == "fp32":
            self.fp32[(r["device"], r["model"], r["threads"])] = r

    def rows(self) -> List[Tuple[List[str], str]]:
        return [row_cells(r, self.fp32.get((r["device"], r["model"], r["threads"])))
                for r in self.results]

    def rich_table(self) -> Any:
        from rich.table import Table
        styles = {"ok": "", "bad": "bold red", "warn": "yellow", "skip": "dim"}
        t = Table(title="edge-bench results", expand=False)
        for c in COLUMNS:
            t.add_column(c, justify="right" if c in ("thr", "size", "median ms", "p95 ms",
                                                      "speedup", "top-1", "agree") else "left",
                         overflow="fold", max_width=60 if c == "status" else None)
        for cells, style in self.rows():
            t.add_row(*cells, style=styles[style])
        return t


class LiveDisplay:
    """Context manager: a rich Live table with a status line per device (TTY), or plain lines."""

    def __init__(self, stream: Optional[TextIO] = None, live: Optional[bool] = None,
                 quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.view = ResultsView()
        self.live = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self._live: Any = None

    def __enter__(self) -> "LiveDisplay":
        if self.live and not self.quiet:
            from rich.console import Console
            from rich.live import Live
            self._live = Live(self._render(), console=Console(file=self.stream),
                              refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text
        lines = [Text(f"{d}: {s}", style="cyan") for d, s in sorted(self.view.status.items())]
        return Group(*lines, self.view.rich_table())

    def note(self, text: str) -> None:
        """A message about preparation (quantizing...)."""
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(text, style="dim")
        else:
            print(text, file=sys.stderr, flush=True)

    def on_status(self, device: str, text: str) -> None:
        self.view.status[device] = text
        if self._live is not None:
            self._live.update(self._render())
        elif not self.quiet:
            print(f"[{device}] {text}", file=sys.stderr, flush=True)

    def on_result(self, r: Dict[str, Any]) -> None:
        self.view.add(r)
        if self._live is not None:
            self._live.update(self._render())
        elif not self.quiet:
            cells, _ = self.view.rows()[-1]
            print("  ".join(f"{c}={v}" for c, v in zip(COLUMNS, cells)), file=self.stream, flush=True)

    def print_final_table(self) -> None:
        """Plain mode: a final aligned table once everything is in."""
        if self.live or self.quiet or not self.view.results:
            return
        rows = [c for c, _ in self.view.rows()]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
        print("", file=self.stream)
        print("  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths)).rstrip(), file=self.stream)
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=self.stream)
        self.stream.flush()
