"""Signal handlers that a command installs for a while: one rule for the CLI's SIGTERM and the
fleet session's Ctrl-C/SIGTERM. A signal ignored on entry stays ignored (`nohup`, `trap '' TERM`,
a script's `cmd &` for SIGINT): the caller asked that the command outlive it. The handlers found
on entry come back on exit, so a program that calls edge-bench keeps its own."""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Sequence


@contextmanager
def handling(signals: Sequence[int], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for each of `signals` inside the block (only the main thread can install one:
    elsewhere nothing changes)."""
    old: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                before = signal.signal(sig, handler)
                old[sig] = signal.SIG_DFL if before is None else before  # None: set outside Python
    try:
        yield
    finally:
        for sig, before in old.items():
            signal.signal(sig, before)


def stop_all(stops: Sequence[Callable[[], None]], wait_s: float, name: str = "stop") -> None:
    """Call every `stops` function at once, each in its own daemon thread (each may take a round
    trip to its device), and wait `wait_s` for all of them together, not for each in turn; one
    still running after that is left behind (it never keeps edge-bench from exiting)."""
    threads = [threading.Thread(target=f, name=f"{name}-{i}", daemon=True)
               for i, f in enumerate(stops)]
    for t in threads:
        t.start()
    join_all(threads, wait_s)


def join_all(threads: Sequence[threading.Thread], wait_s: float) -> None:
    """Wait `wait_s` for all of `threads` together (one deadline, not one per thread)."""
    deadline = time.monotonic() + wait_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
