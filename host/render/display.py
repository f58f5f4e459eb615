"""What the user sees during a run.

On a terminal: a live block with a progress line per device (and quantization) above the results
table, which gains a row the moment a result is final; when the run ends the block is replaced
by the final table, printed once. Not a terminal (CI logs, pipes): one plain line per event, then
the table as aligned text. The table fits the width (render/table.py): one line per result.

rich is imported only here and in the other render modules, never at package import time.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from edge_bench_agent.accel_spec import result_accelerator

from .notes import NOTES_TITLE, accuracy_notes, result_notes
from .progress import PROCESS_OVERHEAD_S, DeviceProgress, QuantizeProgress, rich_rows
from .table import (Col, byte_unit, fmt_bytes, fmt_time, in_unit, pct, plain_table, rich_table,
                    short_labels, signed, time_unit)
from .visible import visible, visible_lines

Key = Tuple[str, str, int, str]  # device, model, threads, accelerator
STYLES = {"ok": "", "bad": "bold red", "warn": "yellow", "skip": "dim"}
TITLE = "edge-bench results"


def text(value: Any, style: str = "") -> Any:
    """User or device text as a rich Text: shown as written, never read as markup (a label
    `exp[v2]` or a device error `[/x]` is text, not a style tag)."""
    from rich.text import Text
    return Text(visible(value), style=style)


def texts(cells: Any) -> List[Any]:
    return [text(c) for c in cells]


def escape(value: Any) -> str:
    """For the few places rich takes a markup string (table titles): escape it."""
    from rich.markup import escape as rich_escape
    return rich_escape(visible(value))


def status_of(r: Dict[str, Any]) -> Tuple[str, str]:
    """A result's status text and style name: ok / bad / warn / skip."""
    acc = r.get("accuracy") or {}
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('error') or ''}", (
            "skip" if r["status"] == "skipped" else "warn" if r["status"] == "partial" else "bad")
    if acc.get("flag"):
        return f"WRONG OUTPUT: {acc['flag']}", "bad"
    if (r.get("device_info") or {}).get("throttled_during"):
        return "ok (throttled)", "warn"
    return "ok", "ok"


def placement_text(r: Dict[str, Any]) -> str:
    """`gpu 41/52 ops, 3 partitions`, `npu fell back` or "" (a plain CPU row)."""
    p = r.get("placement") or {}
    if not p:
        return ""
    placed, total, parts = p.get("ops_placed"), p.get("ops_total"), p.get("partitions")
    if not placed:
        return f"{p.get('asked')} fell back"
    text = f"{p.get('ran')} {placed}/{'?' if total is None else total} ops"
    if parts is not None:
        text += f", {parts} partition{'' if parts == 1 else 's'}"
    return text


def base_key(r: Dict[str, Any]) -> Key:
    """The fp32 row a row's speedup is measured against: same device, model, threads and
    accelerator (a GPU fp16 row against the GPU fp32 row)."""
    return (r["device"], r["model"], r["threads"], result_accelerator(r))


def accel_cell(r: Dict[str, Any]) -> str:
    """Where the row ran: `gpu 41/52 ops, 3 partitions`, `npu fell back`, or `cpu`."""
    return placement_text(r) or result_accelerator(r)


def speedup(r: Dict[str, Any], fp32: Optional[Dict[str, Any]]) -> Optional[float]:
    if not fp32 or r["status"] != "ok" or fp32.get("status") != "ok":
        return None
    a = (fp32.get("latency_ms") or {}).get("median")
    b = (r.get("latency_ms") or {}).get("median")
    ok = all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in (a, b))
    return a / b if ok else None  # an impossible median (an older store) has no speedup


def snr_text(acc: Dict[str, Any], unit: bool = True) -> str:
    """Output similarity vs fp32: the worst output's SNR (`inf` = identical outputs)."""
    from ..analysis.verdict import worst_snr
    v = worst_snr(acc)
    if v is None:
        return "-"
    return ("inf" if math.isinf(v) else f"{v:.0f}") + (" dB" if unit else "")


#: One word, one meaning (the same in the table, the `result` line, the report; JSON keys in
#: brackets): top-1 = share of eval samples classified right (accuracy.top1, needs labels);
#: agree = share of samples whose top class matches fp32's (accuracy.agreement_vs_ref);
#: SNR = output similarity vs fp32 in dB, the worst output (accuracy.outputs[].snr_db);
#: speedup = fp32's median latency / this variant's (0.5 = twice as slow).
WORDS = {"speedup": "speedup", "top1": "top-1 %", "dtop1": "Δtop-1", "agree": "agree %",
         "snr": "SNR dB"}


def row_cells(r: Dict[str, Any], fp32: Optional[Dict[str, Any]]) -> Tuple[List[str], str]:
    """Every cell of one result with its own units (plain log lines), and its style name."""
    lat = r.get("latency_ms") or {}
    acc = r.get("accuracy") or {}
    sp = speedup(r, fp32)
    status, style = status_of(r)
    cells = [r["device"], r["model"], r["variant"], str(r["threads"]), accel_cell(r),
             fmt_bytes(r.get("model_bytes")),
             fmt_time(lat.get("median")), fmt_time(lat.get("p95")),
             "-" if sp is None else f"{sp:.2f}x",
             "-" if acc.get("top1") is None else f"{acc['top1'] * 100:.1f}%",
             "-" if acc.get("agreement_vs_ref") is None else f"{acc['agreement_vs_ref'] * 100:.1f}%",
             snr_text(acc), status]
    return cells, style


LINE_KEYS = ["device", "model", "variant", "threads", "accelerator", "size", "median", "p95",
             "speedup", "top1", "agree", "snr", "status"]


def results_columns(results: Sequence[Dict[str, Any]], fp32: Dict[Key, Dict[str, Any]],
                    labels: Dict[str, str], *, one_device: bool, one_threads: bool,
                    units_from: Optional[Sequence[Dict[str, Any]]] = None) -> List[Col]:
    """The results table's columns: numbers in one unit per column, named in the header. At a
    small width latency spread and size give way before the speedup and an accuracy."""
    lats = [r.get("latency_ms") or {} for r in results]
    # units from every result so far (`units_from`), not just the rows shown: the live view's
    # last few rows would switch µs/ns as results scroll past
    every = results if units_from is None else units_from
    ulats = [r.get("latency_ms") or {} for r in every]
    tname, tsize = time_unit([x.get("median") for x in ulats] + [x.get("p95") for x in ulats])
    bname, bsize = byte_unit([r.get("model_bytes") for r in every])
    cols = {k: c for k, c in (
        ("device", Col("device")), ("model", Col("model", flex=True, min_width=8, prefer=24)),
        ("variant", Col("variant")), ("thr", Col("thr", numeric=True)),
        ("accel", Col("accelerator", priority=7)),
        ("size", Col(f"size {bname}", numeric=True, priority=2)),
        ("med", Col(f"median {tname}", numeric=True)),
        ("p95", Col(f"p95 {tname}", numeric=True, priority=1)),
        ("sp", Col(WORDS["speedup"], numeric=True, priority=7)),
        ("top1", Col(WORDS["top1"], numeric=True, priority=6)),
        ("dtop1", Col(WORDS["dtop1"], numeric=True, priority=5)),
        ("agree", Col(WORDS["agree"], numeric=True, priority=3)),
        ("snr", Col(WORDS["snr"], numeric=True, priority=4)),
        ("status", Col("status", flex=True, min_width=6, prefer=10)))}
    any_accel = any(result_accelerator(r) != "cpu" for r in results)
    for r, lat in zip(results, lats):
        acc = r.get("accuracy") or {}
        sp = speedup(r, fp32.get(base_key(r)))
        d = None
        if acc.get("top1") is not None and acc.get("top1_ref") is not None:
            d = (acc["top1"] - acc["top1_ref"]) * 100
        for k, v in (("device", str(r["device"])), ("model", labels.get(r["model"], r["model"])),
                     ("variant", str(r["variant"])), ("thr", str(r["threads"])),
                     ("accel", accel_cell(r) if any_accel else ""),
                     ("size", in_unit(r.get("model_bytes"), bsize)),
                     ("med", in_unit(lat.get("median"), tsize)), ("p95", in_unit(lat.get("p95"), tsize)),
                     ("sp", "-" if sp is None else f"{sp:.2f}"), ("top1", pct(acc.get("top1"))),
                     ("dtop1", signed(d)), ("agree", pct(acc.get("agreement_vs_ref"))),
                     ("snr", snr_text(acc, unit=False)), ("status", status_of(r)[0])):
            cols[k].cells.append(v)
    drop = {"device"} if one_device else set()
    if one_threads:
        drop.add("thr")
    return [c for k, c in cols.items() if k not in drop]


class ResultsView:
    """Collects results and renders them; fp32 of the same (device, model, threads) is the base."""

    def __init__(self, models: Sequence[str] = (), devices: Sequence[str] = (),
                 threads: Sequence[int] = ()) -> None:
        self.results: List[Dict[str, Any]] = []
        self.fp32: Dict[Key, Dict[str, Any]] = {}
        self.status: Dict[str, str] = {}
        self.models, self.devices, self.threads = list(models), list(devices), list(threads)
        #: (device, model, variant, threads) -> position in the plan: the final table's order
        self.order: Dict[Tuple[str, str, str, int], int] = {}

    def add(self, r: Dict[str, Any]) -> None:
        self.results.append(r)
        if r["variant"] == "fp32":
            self.fp32[base_key(r)] = r

    def rows(self) -> List[Tuple[List[str], str]]:
        return [row_cells(r, self.fp32.get(base_key(r)))
                for r in self.results]

    def _sets(self) -> Tuple[List[str], List[str], List[int]]:
        models = list(dict.fromkeys(self.models + [r["model"] for r in self.results]))
        devices = list(dict.fromkeys(self.devices + [r["device"] for r in self.results]))
        threads = list(dict.fromkeys(self.threads + [r["threads"] for r in self.results]))
        return models, devices, threads

    def title(self) -> str:
        _, devices, threads = self._sets()
        extra = []
        if len(devices) == 1:
            extra.append(f"on {devices[0]}")
        if len(threads) == 1:
            extra.append(f"{threads[0]} thread{'s' if threads[0] != 1 else ''}")
        return TITLE + (" · " + ", ".join(extra) if extra else "")

    def in_plan_order(self) -> List[Dict[str, Any]]:
        last = len(self.order)
        return sorted(self.results, key=lambda r: self.order.get(
            (r["device"], r["model"], r["variant"], r["threads"]), last))

    def columns(self, results: Optional[Sequence[Dict[str, Any]]] = None) -> List[Col]:
        models, devices, threads = self._sets()
        return results_columns(self.results if results is None else results, self.fp32,
                               short_labels(models), units_from=self.results,
                               one_device=len(devices) == 1,
                               one_threads=len(threads) == 1)

    def notes(self) -> List[str]:
        """The whole reason of every failed, skipped or flagged result (render/notes.py)."""
        models, devices, threads = self._sets()
        return [visible(n) for n in result_notes(  # device and file text: untrusted
            self.in_plan_order(), status_of, short_labels(models),
            one_device=len(devices) == 1, one_threads=len(threads) == 1)]

    def accuracy_notes(self) -> List[str]:
        models, _, _ = self._sets()
        return [visible(n) for n in accuracy_notes(self.in_plan_order(), short_labels(models))]

    def rich_table(self, width: Optional[int], last: Optional[int] = None) -> Any:
        """All results in plan order, or while running the `last` ones in arrival order."""
        shown = self.in_plan_order() if last is None else self.results[-last:]
        styles = [STYLES[status_of(r)[1]] for r in shown]
        caption = None
        if len(shown) < len(self.results):
            caption = f"… {len(self.results) - len(shown)} earlier results above this view"
        return rich_table(self.columns(shown), width, title=self.title(), styles=styles,
                          caption=caption)


class LiveDisplay:
    """Context manager: a rich Live block (TTY), or plain lines. Call `plan()` first so the
    progress knows each device's tasks."""

    def __init__(self, stream: Optional[TextIO] = None, live: Optional[bool] = None,
                 quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.view = ResultsView()
        self.quiet = quiet
        self.devices: Dict[str, DeviceProgress] = {}
        self.quant = QuantizeProgress()
        self._live: Any = None
        self._console: Any = None
        self._last: Dict[str, str] = {}   # device -> its last plain progress line

    # -- setup ----------------------------------------------------------------------------
    def plan(self, plan: Dict[str, List[Tuple[str, str, str, int]]], timing: Any = None) -> None:
        """plan: device -> [(task id, model, variant, threads)]; timing: the run's Timing."""
        models = [m for tasks in plan.values() for _, m, _, _ in tasks]
        labels = short_labels(models)
        processes = int(getattr(timing, "processes", 1) or 1)
        unit = PROCESS_OVERHEAD_S + float(getattr(timing, "min_seconds", 1.0) or 0.0) / processes
        for dev, tasks in plan.items():
            multi = len({th for _, _, _, th in tasks}) > 1
            self.devices[dev] = DeviceProgress(
                dev, {tid: f"{labels[m]} {v}" + (f" t{th}" if multi else "")
                      for tid, m, v, th in tasks},
                processes=processes, unit_budget_s=unit)
        self.view = ResultsView(models, list(plan), [th for tasks in plan.values()
                                                     for _, _, _, th in tasks])
        for dev, tasks in plan.items():
            for _, m, v, th in tasks:
                self.view.order.setdefault((dev, m, v, th), len(self.view.order))

    def __enter__(self) -> "LiveDisplay":
        self.start()
        return self

    def start(self) -> None:
        if not (self.live and not self.quiet) or self._live is not None:
            return
        from rich.console import Console
        from rich.live import Live
        from ..quiet import terminal_file
        # the live block draws on its own copy of the terminal: library captures never eat it
        self._console = Console(file=terminal_file(self.stream))
        self._live = Live(_Frame(self), console=self._console, refresh_per_second=4,
                          transient=True, redirect_stdout=False, redirect_stderr=False)
        self._live.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self._live is None:
            return
        from rich.text import Text
        live, self._live = self._live, None
        live.update(Text(""), refresh=True)  # the final refresh draws nothing to scroll away
        live.__exit__(None, None, None)
        if self.view.results:
            self._console.print(self.view.rich_table(self._console.width))
            print_notes(self._console, self.view.notes())
            print_notes(self._console, self.view.accuracy_notes(), "accuracy:")
        if self._console.file is not self.stream:
            self._console.file.close()

    def _frame(self, width: int, height: int) -> Any:
        from rich.console import Group
        prog = rich_rows(list(self.devices.values()), self.quant, width)
        n_prog = len(self.devices) + (1 if self.quant.total and self.quant.done < self.quant.total else 0)
        room = max(1, height - n_prog - 6)
        if not self.view.results:
            return prog
        return Group(prog, self.view.rich_table(width, last=room))

    # -- events ---------------------------------------------------------------------------
    def _say(self, text: str, file: Optional[TextIO] = None) -> None:
        if not self.quiet and self._live is None:
            print(visible_lines(text), file=file or sys.stderr, flush=True)

    def _plain(self, device: str, line: str) -> None:
        """A device's progress line in plain mode, unless it repeats the device's last one
        (two events that change nothing a line shows, e.g. a process done and the task done)."""
        if self._last.get(device) == line:
            return
        self._last[device] = line
        print(line, file=sys.stderr, flush=True)

    def on_quantize(self, done: int, total: int, model: str, variant: str) -> None:
        """Quantization step `done` of `total` is about to start (done == total: finished)."""
        self.quant.done, self.quant.total = done, total
        self.quant.current = f"{short_labels([model])[model]} {variant}" if model else ""
        if done < total:
            self.start()
            self._say(f"quantizing {model} {variant} ({done + 1}/{total})")

    def note(self, text: str) -> None:
        """A message about preparation."""
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(visible_lines(text), style="dim", markup=False,
                                     highlight=False)
        else:
            print(visible_lines(text), file=sys.stderr, flush=True)

    def on_status(self, device: str, text: str) -> None:
        self.view.status[device] = text
        d = self.devices.get(device)
        if d is not None:
            d.on_status(text)
        if self._live is None and not self.quiet:
            self._plain(device, visible(d.line() if d is not None and text.startswith("running") else
                                        f"[{device}] {text}"))

    def on_progress(self, device: str, info: Dict[str, Any]) -> None:
        d = self.devices.get(device)
        if d is None:
            return
        d.on_progress(info)
        if self._live is None and not self.quiet and not (
                info.get("kind") == "push" and not info.get("finished") and not info.get("first")):
            self._plain(device, visible(d.line() if info.get("kind") != "push"
                                        else _push_line(device, info)))

    def on_result(self, r: Dict[str, Any]) -> None:
        self.view.add(r)
        if self._live is not None:
            self._live.refresh()
        elif not self.quiet:
            cells, _ = self.view.rows()[-1]
            # one line whatever the device or file names hold (a newline, ESC)
            print("result " + "  ".join(f"{c}={visible(v)}" for c, v in zip(LINE_KEYS, cells)),
                  file=self.stream, flush=True)

    def print_final_table(self) -> None:
        """Plain mode: the table as aligned text once everything is in (live mode printed it
        when the live block ended)."""
        if self.live or self.quiet or not self.view.results:
            return
        print("", file=self.stream)
        print(visible(self.view.title()), file=self.stream)
        for line in plain_table(self.view.columns(self.view.in_plan_order()), None):
            print(line, file=self.stream)
        notes = self.view.accuracy_notes()
        if notes:
            print("accuracy:", file=self.stream)
            for line in notes:
                print(line, file=self.stream)
        self.stream.flush()


def print_notes(console: Any, notes: Sequence[str], title: str = NOTES_TITLE) -> None:
    """Sentences below a table under `title`, wrapped at words by the console (never cut)."""
    if not notes:
        return
    from rich.text import Text
    console.print(Text(title, style="bold"))
    for line in notes:
        console.print(Text(visible(line)))


def _push_line(device: str, info: Dict[str, Any]) -> str:
    if info.get("finished"):
        secs = max(1e-6, float(info.get("elapsed_s") or 0.0))
        return (f"[{device}] pushed {info.get('file')} {fmt_bytes(info.get('total'))} in"
                f" {secs:.1f} s ({fmt_bytes((info.get('total') or 0) / secs)}/s)")
    return f"[{device}] pushing {info.get('file')} {fmt_bytes(info.get('total'))}"


class _Frame:
    """The live block, laid out for the console's size at each refresh."""

    def __init__(self, display: LiveDisplay) -> None:
        self.display = display

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.display._frame(options.max_width, options.size.height)
