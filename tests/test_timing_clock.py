"""The agent's time rules with an injected clock: exact counts, no dependence on machine load.

docs/protocol.md (task fields): a task times invoke() until it has >= `runs` samples AND the
samples sum to >= `min_seconds`; it stops anyway once `max_seconds` of WALL time passed since
the loop began, or after `max_runs` samples (always after at least one sample). Only invoke()
itself lies between the two clock reads of a sample. The cooldown waits (polling every 1 s, at
most `max_s` of wall time) until the temperature is below `temp_c`.

The fake clock below lets time pass inside invoke() (the sample) AND between samples (what the
loop itself, the runtime or another process costs): summed samples and wall time then differ,
as on a loaded device, and every expected number here follows from that model alone.
"""
from __future__ import annotations

from typing import Any, List

import pytest

from edge_bench_agent.job import cooldown_wait
from edge_bench_agent.task import timing_loop

MS = 1_000_000  # ns


class FakeClock:
    """A perf_counter_ns where time passes only inside invoke() (`invoke_ns`) and between one
    sample's closing read and the next read (`between_ns`: the loop, the runtime, other
    processes). A sample is then exactly invoke_ns; one turn of the loop is invoke_ns +
    between_ns of wall time."""

    def __init__(self, invoke_ns: int, between_ns: int = 0) -> None:
        self.now = 7_000_000_000_000  # a perf counter is not 0 when the loop starts
        self.invoke_ns, self.between_ns = invoke_ns, between_ns
        self.invokes = 0
        self._closing = False   # the next read closes a sample
        self._closed = False    # a sample was closed: time passes before the next read

    def __call__(self) -> int:
        if self._closed:
            self.now += self.between_ns
            self._closed = False
        if self._closing:
            self._closing, self._closed = False, True
        return self.now

    def invoke(self) -> None:
        self.invokes += 1
        if self.invokes > 10_000:  # no case here needs more: a loop that ignores its stop rules
            raise AssertionError("runaway timing loop")
        self.now += self.invoke_ns
        self._closing = True


def test_max_seconds_is_wall_time_not_summed_samples() -> None:
    """invoke 10 ms, 30 ms between samples: after n samples 40n - 30 ms of wall time have passed
    since the loop began; max_seconds=1.0 stops at the first n with 40n - 30 >= 1000, n = 26.
    Summed samples (10n ms) would have allowed 100."""
    clock = FakeClock(invoke_ns=10 * MS, between_ns=30 * MS)
    samples, why, loop_s = timing_loop(clock.invoke, runs=10 ** 9, min_seconds=0.0,
                                       max_seconds=1.0, clock=clock)
    assert why == "max_seconds"
    assert samples == [10 * MS] * 26 and clock.invokes == 26
    assert loop_s == pytest.approx((26 * 40 * MS) / 1e9)  # + the time before the final read


def test_max_seconds_stops_as_soon_as_it_has_passed() -> None:
    """invoke 100 ms, nothing between: after 10 samples exactly 1.0 s has passed, which is
    max_seconds=1.0: no 11th sample."""
    clock = FakeClock(invoke_ns=100 * MS)
    samples, why, loop_s = timing_loop(clock.invoke, runs=10 ** 9, min_seconds=0.0,
                                       max_seconds=1.0, clock=clock)
    assert why == "max_seconds" and samples == [100 * MS] * 10 and loop_s == 1.0


def test_one_nanosecond_short_of_the_limits() -> None:
    """A sample of 1 s - 1 ns: one is not yet min_seconds=1.0 (a second is needed), and not yet
    max_seconds=1.0 of wall time (a second sample is taken before it stops)."""
    clock = FakeClock(invoke_ns=999_999_999)
    samples, why, _ = timing_loop(clock.invoke, runs=1, min_seconds=1.0, max_seconds=None,
                                  clock=clock)
    assert len(samples) == 2 and why == "min_seconds"
    clock = FakeClock(invoke_ns=999_999_999)
    samples, why, _ = timing_loop(clock.invoke, runs=10, min_seconds=0.0, max_seconds=1.0,
                                  clock=clock)
    assert len(samples) == 2 and why == "max_seconds"
    clock = FakeClock(invoke_ns=1_000_000_000)   # exactly min_seconds: one sample is enough
    samples, why, _ = timing_loop(clock.invoke, runs=1, min_seconds=1.0, max_seconds=None,
                                  clock=clock)
    assert len(samples) == 1 and why == "runs"


def test_max_seconds_wins_over_min_seconds_and_runs() -> None:
    clock = FakeClock(invoke_ns=1 * MS, between_ns=99 * MS)   # mostly time between samples
    samples, why, _ = timing_loop(clock.invoke, runs=1000, min_seconds=5.0, max_seconds=2.0,
                                  clock=clock)
    # after n samples: 100n - 99 ms; the first n with 100n - 99 >= 2000 is 21
    assert why == "max_seconds" and samples == [1 * MS] * 21


def test_min_seconds_counts_summed_samples() -> None:
    """invoke 10 ms: min_seconds=0.1 needs exactly 10 samples even though runs=3 was reached."""
    clock = FakeClock(invoke_ns=10 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=3, min_seconds=0.1, max_seconds=None,
                                  clock=clock)
    assert samples == [10 * MS] * 10 and why == "min_seconds"


def test_min_seconds_ignores_time_between_samples() -> None:
    """1 s between samples of 10 ms: min_seconds=0.05 still needs 5 samples (and 5 s of wall
    time: 4 gaps between them and one before the final read)."""
    clock = FakeClock(invoke_ns=10 * MS, between_ns=1000 * MS)
    samples, why, loop_s = timing_loop(clock.invoke, runs=1, min_seconds=0.05, max_seconds=None,
                                       clock=clock)
    assert samples == [10 * MS] * 5 and why == "min_seconds"
    assert loop_s == pytest.approx(5.05)


@pytest.mark.parametrize("no_cap", [None, 0])
def test_max_seconds_null_or_0_is_no_cap(no_cap: Any) -> None:
    """docs/protocol.md: max_seconds null or 0: no cap. 20 samples with 1 s between them."""
    clock = FakeClock(invoke_ns=10 * MS, between_ns=1000 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=20, min_seconds=0.0, max_seconds=no_cap,
                                  clock=clock)
    assert len(samples) == 20 and why == "runs"


def test_a_tiny_max_seconds_still_caps() -> None:
    clock = FakeClock(invoke_ns=10 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=20, min_seconds=0.0, max_seconds=1e-10,
                                  clock=clock)
    assert samples == [10 * MS] and why == "max_seconds"


@pytest.mark.parametrize("max_runs, expected", [(1, 1), (2, 2), (None, 40), (0, 40)])
def test_max_runs_caps_the_samples(max_runs: Any, expected: int) -> None:
    """max_runs null: no cap (docs/protocol.md); 0 too. min_seconds=0.4 alone wants 40."""
    clock = FakeClock(invoke_ns=10 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=1, min_seconds=0.4, max_seconds=None,
                                  max_runs=max_runs, clock=clock)
    assert len(samples) == expected
    assert why == ("max_runs" if expected < 40 else "min_seconds")


def test_a_large_max_runs_caps_too() -> None:
    """The host sends max_runs 10000 by default: a cap above Python's small-int cache."""
    clock = FakeClock(invoke_ns=1 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=1, min_seconds=100.0, max_seconds=None,
                                  max_runs=int("1000"), clock=clock)
    assert len(samples) == 1000 and why == "max_runs"
    clock = FakeClock(invoke_ns=1 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=int("300"), min_seconds=0.0,
                                  max_seconds=None, clock=clock)
    assert len(samples) == 300 and why == "runs"


def test_runs_and_max_runs() -> None:
    clock = FakeClock(invoke_ns=1 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=7, min_seconds=0.0, max_seconds=None,
                                  clock=clock)
    assert len(samples) == 7 and why == "runs"
    clock = FakeClock(invoke_ns=1 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=7, min_seconds=10.0, max_seconds=None,
                                  max_runs=12, clock=clock)
    assert len(samples) == 12 and why == "max_runs"
    clock = FakeClock(invoke_ns=1 * MS)
    samples, why, _ = timing_loop(clock.invoke, runs=0, min_seconds=0.0, max_seconds=1.0,
                                  clock=clock)
    assert samples == [] and why == "runs" and clock.invokes == 0


def test_max_seconds_still_takes_one_sample() -> None:
    clock = FakeClock(invoke_ns=3_000 * MS)     # one invoke outlasts max_seconds
    samples, why, _ = timing_loop(clock.invoke, runs=5, min_seconds=0.0, max_seconds=1.0,
                                  clock=clock)
    assert samples == [3_000 * MS] and why == "max_seconds"


# ---- cooldown ----------------------------------------------------------------------------------
class FakeTime:
    """monotonic() and sleep() of one fake clock: sleeping is the only way time passes."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_cooldown_waits_until_cool_polling_every_second() -> None:
    t = FakeTime()
    temps = iter([80.0, 70.0, 55.0, 50.0])
    waited = cooldown_wait({"temp_c": 60.0, "max_s": 30.0}, lambda: next(temps), t.sleep,
                           clock=t.monotonic)
    assert t.slept == [1.0, 1.0] and waited == 2.0   # 80 and 70 are hot, 55 is cool


def test_cooldown_stops_at_max_s_of_wall_time() -> None:
    t = FakeTime()
    waited = cooldown_wait({"temp_c": 60.0, "max_s": 2.5}, lambda: 90.0, t.sleep,
                           clock=t.monotonic)
    assert t.slept == [1.0, 1.0, 0.5] and waited == 2.5


def test_cooldown_without_config_or_sensor_does_not_wait() -> None:
    t = FakeTime()
    assert cooldown_wait(None, lambda: 90.0, t.sleep, clock=t.monotonic) == 0.0
    assert cooldown_wait({"temp_c": 60.0, "max_s": 5.0}, lambda: None, t.sleep,
                         clock=t.monotonic) == 0.0
    assert cooldown_wait({"temp_c": 60.0, "max_s": 0.0}, lambda: 90.0, t.sleep,
                         clock=t.monotonic) == 0.0
    assert t.slept == []
