"""A run across the fleet: one thread per device (devices in parallel, tasks on one device one at
a time), every result handed to the sinks on the main thread the moment it arrives."""
from __future__ import annotations

import queue
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..config import Device
from ..interrupts import handling, stop_all
from .runner import DeviceRun, Task

#: how long a stop waits for the devices' kills (each one round trip, all in parallel)
CANCEL_WAIT_S = 20.0

Sink = Callable[[Dict[str, Any]], None]
StatusSink = Callable[[str, str], None]
ProgressSink = Callable[[str, Dict[str, Any]], None]


class Session:
    def __init__(self, plan: Dict[Device, Sequence[Task]], on_result: Sink,
                 on_status: Optional[StatusSink] = None,
                 job_id: str = "job", op_profiling: bool = False,
                 on_progress: Optional[ProgressSink] = None) -> None:
        self.plan = plan
        self.on_result = on_result
        self.on_status = on_status or (lambda d, t: None)
        self.on_progress = on_progress or (lambda d, info: None)
        self._q: "queue.Queue[tuple]" = queue.Queue()
        self.runs: List[DeviceRun] = [
            DeviceRun(dev, tasks, emit=lambda r: self._q.put(("result", r)),
                      status=lambda d, t: self._q.put(("status", d, t)),
                      progress=lambda d, info: self._q.put(("progress", d, info)),
                      job_id=f"{job_id}-{dev.name}",
                      op_profiling=op_profiling)
            for dev, tasks in plan.items()
        ]
        self.cancelled = False
        #: the signal that interrupted the run (SIGINT for Ctrl-C, SIGTERM), None otherwise
        self.signal: Optional[int] = None

    def cancel(self) -> None:
        """Stop every device at once: each cancel kills a remote process group over its own
        SSH channel, so they run in parallel (16 devices stop in one round trip, not 16)."""
        self.cancelled = True
        for r in self.runs:
            r.cancelled.set()
        stop_all([r.cancel for r in self.runs], CANCEL_WAIT_S, name="cancel")

    def run(self) -> List[DeviceRun]:
        # numpy imports numpy.ma lazily inside the first median; done by several device threads
        # at once that import serializes them for seconds on a busy host: do it here, once
        from ..analysis.stats import summarize
        summarize([1.0, 2.0])
        threads = [threading.Thread(target=r.run, name=f"device-{r.device.name}", daemon=True)
                   for r in self.runs]
        # Ctrl-C and SIGTERM only ask for the stop; the pump acts on it between two
        # deliveries. Raised wherever it landed, the interrupt could split a result between
        # --json and the store (or store it twice), or drop one just taken off the queue.
        def on_signal(signum: int, frame: Any) -> None:
            if self.signal is None:   # a second signal while stopping changes nothing
                self.signal = signum
        with handling((signal.SIGINT, signal.SIGTERM), on_signal):
            for t in threads:
                t.start()
            try:
                self._pump(threads)
            except KeyboardInterrupt:
                if self.signal is None:
                    self.signal = signal.SIGINT
                self.on_status("*", "interrupted: stopping devices, keeping finished results")
                self.cancel()
                self._pump(threads, grace=True)
                raise
        return self.runs

    def _pump(self, threads: List[threading.Thread], grace: bool = False) -> None:
        deadline = time.monotonic() + 15 if grace else None
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return
            if self.signal is not None and not grace:
                raise KeyboardInterrupt   # between deliveries: each result reaches every sink
            try:
                item = self._q.get(timeout=0.1)
            except queue.Empty:
                if not any(t.is_alive() for t in threads):
                    if self._q.empty():
                        return
                continue
            if item[0] == "result":
                self.on_result(item[1])
            elif item[0] == "progress":
                self.on_progress(item[1], item[2])
            else:
                self.on_status(item[1], item[2])
