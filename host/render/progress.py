"""Progress of a run: quantization, and per device its tasks done / total, the current model and
process, elapsed time and an ETA from the timing budget, and pushes of large files.

`DeviceProgress` is plain state fed by the run's events; `rich_rows()` draws it for the live
display and `line()` describes one event for plain, line-per-event output (CI logs).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .table import fmt_bytes

#: what starting a worker process, loading the model and its first inference and warmup
#: cost on top of the timed seconds (a guess for the ETA until the device has finished a unit)
PROCESS_OVERHEAD_S = 0.6


def clock(seconds: Optional[float]) -> str:
    if seconds is None or seconds < 0:
        return "-:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


@dataclass
class DeviceProgress:
    """One device's progress. `labels` maps task id -> "model variant tN"."""
    name: str
    labels: Dict[str, str]
    processes: int = 1
    unit_budget_s: float = 1.0
    phase: str = "waiting"
    done: int = 0
    units_done: int = 0
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    running_since: Optional[float] = None
    finished_at: Optional[float] = None
    push: Optional[Dict[str, Any]] = None

    @property
    def total(self) -> int:
        return len(self.labels)

    @property
    def units(self) -> int:
        return max(1, self.total * self.processes)

    def on_status(self, text: str) -> None:
        self.phase = text
        if text.startswith("running") and self.running_since is None:
            self.running_since = time.monotonic()
        if text in ("done", "cancelled", "nothing to run") or text.startswith("failed"):
            self.finished_at = time.monotonic()
            self.current = ""
            self.push = None

    def on_progress(self, info: Dict[str, Any]) -> None:
        kind = info.get("kind")
        if kind == "push":
            self.push = None if info.get("finished") else dict(info)
            return
        if self.running_since is None:
            self.running_since = time.monotonic()
        done = int(info.get("done") or 0)
        task = self.labels.get(str(info.get("task") or ""), str(info.get("task") or ""))
        if info.get("started"):
            self.current = f"{task} · proc {info.get('process')}/{info.get('processes')}" \
                if (info.get("processes") or 1) > 1 else task
        elif info.get("heartbeat"):
            if not self.current.startswith(task) or not task:
                self.current = task
        elif info.get("process"):  # one of a task's processes finished, not the last
            self.units_done += 1
            self.current = f"{task} · proc {info.get('process')}/{info.get('processes')} done"
        if done > self.done:
            self.units_done += done - self.done
            self.done = done
            self.current = f"{task} done"
        self.units_done = min(self.units_done, self.units)

    def elapsed(self, now: Optional[float] = None) -> float:
        return ((self.finished_at or now or time.monotonic()) - self.started)

    def eta(self, now: Optional[float] = None) -> Optional[float]:
        """Seconds left: the remaining worker processes at the pace seen so far on this
        device, or, before the first one finished, at the timing budget's pace."""
        if self.finished_at is not None:
            return 0.0
        now = now or time.monotonic()
        left = self.units - self.units_done
        if self.running_since is None:
            return left * self.unit_budget_s
        ran = now - self.running_since
        per = ran / self.units_done if self.units_done else self.unit_budget_s
        return max(0.0, left * per - (0 if self.units_done else min(ran, per)))

    def activity(self) -> str:
        if self.push:
            p = self.push
            rate = p.get("rate")
            return (f"pushing {p.get('file')} {fmt_bytes(p.get('bytes'))}/"
                    f"{fmt_bytes(p.get('total'))}" + (f" {fmt_bytes(rate)}/s" if rate else ""))
        if self.phase.startswith("running"):
            return self.current or "running"
        return self.phase

    def line(self) -> str:
        """The device's state as one plain line (for logs)."""
        return (f"[{self.name}] {self.done}/{self.total} {self.activity()}"
                f" ({clock(self.elapsed())} elapsed, ETA {clock(self.eta())})")


@dataclass
class QuantizeProgress:
    done: int = 0
    total: int = 0
    current: str = ""


def rich_rows(devices: List[DeviceProgress], quant: Optional[QuantizeProgress],
              width: int) -> Any:
    """The progress block: a line for quantization while it runs, a line per device."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text
    bar_w = 16 if width >= 100 else 10
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, max_width=16, overflow="ellipsis")
    grid.add_column(width=bar_w)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    grid.add_column(no_wrap=True, justify="right")
    if quant is not None and quant.total and quant.done < quant.total:
        grid.add_row(Text("quantize", style="bold"),
                     ProgressBar(total=quant.total, completed=quant.done, width=bar_w),
                     f"{quant.done}/{quant.total}", Text(quant.current, style="dim"), "")
    now = time.monotonic()
    for d in devices:
        finished = d.finished_at is not None
        style = "red" if d.phase.startswith("failed") else ("green" if finished else "cyan")
        if d.push:
            bar = ProgressBar(total=max(1, d.push.get("total") or 1),
                              completed=d.push.get("bytes") or 0, width=bar_w)
        else:
            bar = ProgressBar(total=d.units, completed=d.units if finished else d.units_done,
                              width=bar_w)
        times = clock(d.elapsed(now)) if finished else \
            f"{clock(d.elapsed(now))} ETA {clock(d.eta(now))}"
        grid.add_row(Text(d.name, style=f"bold {style}"), bar, f"{d.done}/{d.total}",
                     Text(d.activity(), style=style), times)
    return grid
