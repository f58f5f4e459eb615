"""Ctrl-C / SIGTERM during a run never splits a result between --json and the store.

The fleet session hands each result to its sinks (document, store, table) on the main thread.
A signal there used to raise KeyboardInterrupt wherever it landed: between the document's append
and the store's write (in --json, not in the store), or right after the store's COMMIT (its
ROLLBACK then failed, the result was taken for "not stored" and written again at the end).
Here the signals are real (sent to this process), the store is a real SQLite file.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

from edge_bench.fleet.session import Session
from edge_bench.results.store import Store


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_delivery_lets_it_finish_then_stops(sig: int) -> None:
    assert threading.current_thread() is threading.main_thread()
    delivered: List[str] = []

    def on_result(r: Dict[str, Any]) -> None:
        delivered.append(r["id"] + ":begun")
        if r["id"] == "a":
            os.kill(os.getpid(), sig)    # lands in the middle of this delivery
        delivered.append(r["id"] + ":done")

    session = Session({}, on_result=on_result)
    for rid in ("a", "b"):
        session._q.put(("result", {"id": rid}))
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        session.run()
    # "a" was delivered whole; "b", already in the queue, still reached the sinks while stopping
    assert delivered == ["a:begun", "a:done", "b:begun", "b:done"]
    assert session.signal == sig
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_second_signal_while_stopping_does_not_abandon_the_cleanup() -> None:
    delivered: List[str] = []

    def on_result(r: Dict[str, Any]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)   # one signal per delivery: the 2nd while stopping
        delivered.append(r["id"])

    session = Session({}, on_result=on_result)
    for rid in ("a", "b", "c"):
        session._q.put(("result", {"id": rid}))
    with pytest.raises(KeyboardInterrupt):
        session.run()
    assert delivered == ["a", "b", "c"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ignored_when_the_run_began_stays_ignored(sig: int) -> None:
    """`nohup edge-bench run ...` (or `... &` in a script, for SIGINT): the user asked that the
    run outlive the terminal, so the session does not take the signal over."""
    delivered: List[str] = []

    def on_result(r: Dict[str, Any]) -> None:
        os.kill(os.getpid(), sig)
        delivered.append(r["id"])

    session = Session({}, on_result=on_result)
    for rid in ("a", "b"):
        session._q.put(("result", {"id": rid}))
    before = signal.signal(sig, signal.SIG_IGN)
    try:
        session.run()                         # no KeyboardInterrupt: the run goes on to its end
        assert signal.getsignal(sig) is signal.SIG_IGN
    finally:
        signal.signal(sig, before)
    assert delivered == ["a", "b"] and session.signal is None


def test_an_interrupt_right_after_commit_is_not_a_store_error(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite") as st:
        run_id = st.begin_run({"label": "x"})

        def op(db: Any) -> None:
            db.execute("INSERT INTO meta(key, value) VALUES ('probe', '1')")
            db.execute("COMMIT")       # the COMMIT went through ...
            raise KeyboardInterrupt     # ... and the interrupt lands before _write returns

        with pytest.raises(KeyboardInterrupt):
            st._write(op)
        # the row is there once, and the store is usable (no transaction left open)
        assert st._read("SELECT value FROM meta WHERE key = 'probe'")[0][0] == "1"
        st.add_result(run_id, {"device": "d", "model": "m", "variant": "fp32", "status": "ok"})
        assert len(st.get_run(run_id, samples=False)["results"]) == 1


def test_the_cli_gives_a_caller_its_sigterm_handler_back_and_keeps_an_ignored_one(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """main() turns SIGTERM into a clean stop while it runs; a program (or test) that calls it
    gets its own handler back after, and a SIGTERM ignored before (`trap '' TERM`) stays so."""
    from edge_bench.cli import main

    def mine(signum: int, frame: Any) -> None:
        pass

    Store(tmp_path / "r.sqlite").close()
    before = signal.signal(signal.SIGTERM, mine)
    try:
        for handler in (mine, signal.SIG_IGN):
            signal.signal(signal.SIGTERM, handler)
            assert main(["history", "--db", str(tmp_path / "r.sqlite")]) == 0
            assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stop_waits_for_the_devices_kills_once_not_once_per_device(monkeypatch: Any) -> None:
    """Session.cancel kills every device in parallel and waits CANCEL_WAIT_S for all of them
    together: it used to wait up to 20 s for each in turn (16 unreachable boards: 5 minutes)."""
    import edge_bench.fleet.session as session_mod
    monkeypatch.setattr(session_mod, "CANCEL_WAIT_S", 0.5)
    never = threading.Event()

    class Stuck:   # a device whose kill never returns (its link is gone)
        def __init__(self, name: str) -> None:
            self.device = type("D", (), {"name": name})()
            self.cancelled = threading.Event()
            self.cancel_called = threading.Event()

        def cancel(self) -> None:
            self.cancel_called.set()
            never.wait()

    session = Session({}, on_result=lambda r: None)
    session.runs = [Stuck(f"dev{i}") for i in range(8)]  # type: ignore[list-item]
    done = threading.Event()
    t = threading.Thread(target=lambda: (session.cancel(), done.set()), daemon=True)
    t.start()
    # 0.5 s for all; the old per-device wait would take 8 x 20 s
    assert done.wait(60), "cancel() waited for each device in turn"
    assert all(r.cancel_called.is_set() and r.cancelled.is_set() for r in session.runs)
    never.set()
