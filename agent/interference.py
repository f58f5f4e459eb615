"""What else used the device while a worker was timing (stdlib only, Python 3.8).

Other load on a device only ever adds time to an invoke, and a device shared with another
benchmark (two inference loops and two memory-bandwidth loops beside ours) can slow every
sample by 40%: no rule on the samples alone tells that from a regression. The kernel can: its
counters say how much CPU time the other processes took while we timed. `Probe.start()` just
before the timing loop and `Probe.stop()` just after it give the result's `interference`:

* `other_cores`: CPU time of all other processes (system-wide busy time from /proc/stat minus
  this process's own utime+stime from /proc/self/stat, its threads included) per second of
  wall time: 1.3 = other processes kept 1.3 cores busy on average;
* `steal_cores`: time the hypervisor gave our virtual CPUs to someone else, the same way;
* `cores`: the CPUs the kernel counts (the `cpuN` lines of /proc/stat);
* `run_queue`: the mean number of runnable tasks system-wide (this benchmark included), read
  from /proc/loadavg by a thread that wakes 4 times a second (it holds the GIL for a few
  microseconds; the interpreter's invoke() runs without it);
* `freq_mhz_min` / `freq_mhz_max_seen` / `freq_mhz_limit`: the lowest and highest current
  frequency of any CPU at start and stop and the highest frequency the CPUs allow (cpufreq);
* `throttle_events`: x86 thermal throttle events counted during the timing (thermal_throttle).

Every field is null where the file is missing or unreadable (macOS, a locked-down Android
shell); nothing here ever fails the task. The host judges the numbers (analysis/interference).
"""
from __future__ import annotations

import glob
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

#: seconds between two reads of /proc/loadavg by the sampler thread
SAMPLE_EVERY_S = 0.25


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def cpu_times(text: Optional[str]) -> Optional[Tuple[int, int, int]]:
    """(busy, steal, cores) jiffies from the text of /proc/stat: busy = user + nice + system +
    irq + softirq of the aggregate `cpu` line (idle, iowait, steal and guest excluded: guest
    time is already in user)."""
    if not text:
        return None
    busy = steal = None
    cores = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "cpu" and len(parts) >= 8:
            try:
                v = [int(x) for x in parts[1:]]
            except ValueError:
                return None
            busy = v[0] + v[1] + v[2] + v[5] + v[6]
            steal = v[7] if len(v) > 7 else 0
        elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
            cores += 1
    if busy is None or steal is None:
        return None
    return busy, steal, cores


def own_ticks(text: Optional[str]) -> Optional[int]:
    """utime + stime (jiffies, all threads) from the text of /proc/self/stat."""
    if not text or ")" not in text:
        return None
    rest = text.rsplit(")", 1)[1].split()
    try:
        return int(rest[11]) + int(rest[12])   # fields 14 and 15 of proc(5)
    except (IndexError, ValueError):
        return None


def runnable(text: Optional[str]) -> Optional[int]:
    """The runnable tasks now, from /proc/loadavg ("0.52 0.58 0.59 2/467 12345")."""
    if not text:
        return None
    parts = text.split()
    if len(parts) < 4 or "/" not in parts[3]:
        return None
    try:
        return int(parts[3].split("/")[0])
    except ValueError:
        return None


def _freqs() -> Tuple[List[float], List[float]]:
    """(current, max) MHz of every CPU that exposes cpufreq."""
    cur, top = [], []
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq")):
        c, m = _read(d + "/scaling_cur_freq"), _read(d + "/cpuinfo_max_freq")
        try:
            if c:
                cur.append(int(c.strip()) / 1000.0)
            if m:
                top.append(int(m.strip()) / 1000.0)
        except ValueError:
            continue
    return cur, top


def _throttle_count() -> Optional[int]:
    total, seen = 0, False
    for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle/*_throttle_count"):
        t = _read(p)
        try:
            total += int((t or "").strip())
            seen = True
        except ValueError:
            continue
    return total if seen else None


def _clock_ticks() -> Optional[int]:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return None


class Probe:
    """Counters at start() and stop() of the timing, plus a run-queue sampler in between."""

    def __init__(self) -> None:
        self._start: Dict[str, Any] = {}
        self._queue: List[int] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _snapshot(self) -> Dict[str, Any]:
        cur, top = _freqs()
        return {"t": time.monotonic(), "cpu": cpu_times(_read("/proc/stat")),
                "own": own_ticks(_read("/proc/self/stat")), "freq": cur, "freq_max": top,
                "throttle": _throttle_count()}

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            n = runnable(_read("/proc/loadavg"))
            if n is not None:
                self._queue.append(n)

    def start(self) -> "Probe":
        try:
            self._start = self._snapshot()
            n = runnable(_read("/proc/loadavg"))
            if n is not None:
                self._queue.append(n)
            self._thread = threading.Thread(target=self._sample, name="interference",
                                            daemon=True)
            self._thread.start()
        except Exception:  # noqa: BLE001 - measuring the device never fails the task
            self._thread = None
        return self

    def stop(self) -> Dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        try:
            end = self._snapshot()
            n = runnable(_read("/proc/loadavg"))
            if n is not None:
                self._queue.append(n)
            return summarize(self._start, end, self._queue, _clock_ticks())
        except Exception:  # noqa: BLE001
            return summarize({}, {}, [], None)


def summarize(a: Dict[str, Any], b: Dict[str, Any], queue: List[int],
              hz: Optional[int]) -> Dict[str, Any]:
    """The `interference` fields from two snapshots (see the module docstring)."""
    out: Dict[str, Any] = {"wall_s": None, "cores": None, "other_cores": None,
                           "steal_cores": None, "run_queue": None, "freq_mhz_min": None,
                           "freq_mhz_max_seen": None, "freq_mhz_limit": None,
                           "throttle_events": None}
    if a.get("t") is not None and b.get("t") is not None:
        out["wall_s"] = round(b["t"] - a["t"], 4)
    ca, cb = a.get("cpu"), b.get("cpu")
    if cb:
        out["cores"] = cb[2] or None
    wall = out["wall_s"]
    if ca and cb and hz and wall and wall > 0:
        own = None
        if a.get("own") is not None and b.get("own") is not None:
            own = b["own"] - a["own"]
        if own is not None:
            other = max(0, (cb[0] - ca[0]) - own)
            out["other_cores"] = round(other / float(hz) / wall, 3)
        out["steal_cores"] = round(max(0, cb[1] - ca[1]) / float(hz) / wall, 3)
    if queue:
        out["run_queue"] = round(sum(queue) / float(len(queue)), 2)
    cur = list(a.get("freq") or []) + list(b.get("freq") or [])
    if cur:
        out["freq_mhz_min"], out["freq_mhz_max_seen"] = min(cur), max(cur)
    top = b.get("freq_max") or a.get("freq_max")
    if top:
        out["freq_mhz_limit"] = max(top)
    if a.get("throttle") is not None and b.get("throttle") is not None:
        out["throttle_events"] = max(0, b["throttle"] - a["throttle"])
    return out


def merge(parts: List[Optional[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
    """One task's `interference` from its worker processes': the wall-time weighted mean of
    other_cores, steal_cores and run_queue, the extremes of frequency, the sum of throttle
    events, and each process's own record under `processes`."""
    got = [p for p in parts if isinstance(p, dict)]
    if not got:
        return None
    out: Dict[str, Any] = {"wall_s": None, "cores": None, "other_cores": None,
                           "steal_cores": None, "run_queue": None, "freq_mhz_min": None,
                           "freq_mhz_max_seen": None, "freq_mhz_limit": None,
                           "throttle_events": None}
    walls = [float(p.get("wall_s") or 0.0) for p in got]
    if any(walls):
        out["wall_s"] = round(sum(walls), 4)
    for k in ("other_cores", "steal_cores", "run_queue"):
        pairs = [(p[k], w) for p, w in zip(got, walls) if p.get(k) is not None]
        tw = sum(w for _, w in pairs)
        if pairs:
            out[k] = round(sum(v * w for v, w in pairs) / tw if tw > 0
                           else sum(v for v, _ in pairs) / len(pairs), 3)
    for k, pick in (("cores", max), ("freq_mhz_min", min), ("freq_mhz_max_seen", max),
                    ("freq_mhz_limit", max)):
        vals = [p[k] for p in got if p.get(k) is not None]
        if vals:
            out[k] = pick(vals)
    ev = [p["throttle_events"] for p in got if p.get("throttle_events") is not None]
    if ev:
        out["throttle_events"] = sum(ev)
    if len(got) > 1:
        out["processes"] = [{k: p.get(k) for k in ("wall_s", "other_cores", "steal_cores",
                                                   "run_queue")} for p in got]
    return out
