"""The rules behind the terminal tables and the progress lines (unit tests of pure functions;
the real terminal is tested in test_terminal.py)."""
from __future__ import annotations

from edge_bench.render.progress import DeviceProgress
from edge_bench.render.svg import tick_labels
from edge_bench.render.table import Col, fit, plain_table, short_labels, sig, time_unit


def test_short_labels_file_name_then_shortest_unique_suffix() -> None:
    names = ["builtin:digits", "/opt/models/acme/v2/model.tflite",
             "/opt/models/globex/v2/model.tflite", "/data/mobilenet_v2.tflite"]
    assert short_labels(names) == {
        "builtin:digits": "digits", "/opt/models/acme/v2/model.tflite": "acme/v2/model.tflite",
        "/opt/models/globex/v2/model.tflite": "globex/v2/model.tflite",
        "/data/mobilenet_v2.tflite": "mobilenet_v2.tflite"}
    # a relative and an absolute spelling of the same path: nothing shorter tells them apart
    assert short_labels(["x/model.tflite", "/x/model.tflite"]) == {
        "x/model.tflite": "x/model.tflite", "/x/model.tflite": "/x/model.tflite"}


def test_units_and_significant_digits() -> None:
    assert time_unit([0.0022, 0.58, 1.55]) == ("µs", 1e-3)   # the smallest value reads >= 1
    assert time_unit([12.0, 900.0]) == ("ms", 1.0)
    assert time_unit([0.0003]) == ("ns", 1e-6)
    assert time_unit([0.001, 500.0])[0] == "ms"  # 500 ms would be 500000 µs: too many digits
    assert [sig(x) for x in (0.00217, 2.171, 21.71, 217.1, 2171.0)] == \
        ["0.00217", "2.17", "21.7", "217", "2171"]


def test_fit_drops_empty_then_least_important_columns_and_cuts_text() -> None:
    cols = [Col("model", flex=True, min_width=6, prefer=12, cells=["digits.tflite", "mobilenet.tflite"]),
            Col("median", numeric=True, cells=["2.17", "580"]),
            Col("p95", numeric=True, priority=2, cells=["3.10", "700"]),
            Col("agree", numeric=True, priority=1, cells=["100.0", "99.5"]),
            Col("top-1", numeric=True, priority=3, cells=["-", "-"]),
            Col("status", flex=True, min_width=6, prefer=8,
                cells=["ok", "error: Segmentation fault (core dumped)"])]
    kept, widths = fit(cols, None)
    assert [c.header for c in kept] == ["model", "median", "p95", "agree", "status"]  # top-1 empty
    kept, widths = fit(cols, 40)
    assert [c.header for c in kept] == ["model", "median", "p95", "status"]  # agree went first
    assert sum(widths.values()) + 2 * (len(kept) - 1) <= 40
    lines = plain_table(cols, 40)
    assert all(len(ln) <= 40 for ln in lines) and lines[2].endswith("…")


def test_tick_labels_are_distinct() -> None:
    assert tick_labels([0.175, 0.18, 0.185]) == ["0.175", "0.180", "0.185"]
    assert tick_labels([0, 5, 10]) == ["0", "5", "10"]
    assert tick_labels([0.0025, 0.003, 0.0035]) == ["0.0025", "0.0030", "0.0035"]


def test_progress_counts_processes_and_estimates_from_the_pace() -> None:
    d = DeviceProgress("pi4", {"t0": "digits fp32", "t1": "digits int8"}, processes=3,
                       unit_budget_s=2.0)
    assert d.units == 6 and d.eta() == 12.0  # before it runs: the timing budget
    d.on_status("running 0/2")
    d.running_since -= 10.0                   # 10 s later, two processes done: 5 s each
    d.on_progress({"kind": "task", "done": 0, "total": 2, "task": "t0", "process": 1, "processes": 3})
    d.on_progress({"kind": "task", "done": 0, "total": 2, "task": "t1", "process": 1, "processes": 3})
    assert d.units_done == 2 and 19.0 < d.eta() < 20.1  # 4 processes left x 5 s
    d.on_progress({"kind": "task", "done": 1, "total": 2, "task": "t0"})
    assert d.done == 1 and d.units_done == 3 and "digits fp32" in d.activity()
    d.on_progress({"kind": "task", "done": 1, "total": 2, "task": "t1", "started": True,
                   "process": 3, "processes": 3})
    assert d.activity() == "digits int8 · proc 3/3"
    d.on_status("done")
    assert d.eta() == 0.0 and d.activity() == "done"
