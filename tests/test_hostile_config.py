"""Hostile devices.yaml, environment and flags (issue 16): one clear line, exit 2, never a
traceback or a hang. Each case here reproduces a probe that used to hang, crash or be accepted."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_bench.config import MAX_CONFIG_BYTES, load_fleet
from edge_bench.errors import ConfigError
from test_run_local import edge_bench

LAUGHS = """version: 1
devices:
  a:
    transport: local
    env:
      L0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      L1: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      L2: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      L3: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
      L4: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
      L5: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
      L6: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
      L7: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
      L8: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "devices.yaml"
    p.write_text(text)
    return p


def one_clean_line(p) -> None:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edge-bench: error: "), p.stderr


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    cfg = write(tmp_path, LAUGHS)
    assert cfg.stat().st_size < 700
    p = edge_bench(["devices", "--config", str(cfg)], tmp_path)   # used to hang
    assert p.returncode == 2
    one_clean_line(p)
    assert f"{cfg}:7: YAML alias *a is not allowed" in p.stderr


@pytest.mark.parametrize("yaml_text,pattern", [
    # a plain alias of a scalar is refused too: one rule, no counting
    ("version: 1\ndefaults: {workdir: &w /tmp/x}\ndevices: {a: {transport: local, workdir: *w}}\n",
     r":3: YAML alias \*w is not allowed"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    timeout_s: .inf\n",
     r":5: field devices.a.timeout_s is inf; expected a finite number"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    idle_timeout_s: .nan\n",
     r":5: field devices.a.idle_timeout_s is nan; expected a finite number"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    timeout_s: 1000000000000\n",
     r":5: field devices.a.timeout_s is 1000000000000; expected a number > 0 and <= 604800"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    retries: 100000000\n",
     r":5: field devices.a.retries is 100000000"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    lock_wait_s: -1\n",
     r":5: field devices.a.lock_wait_s is -1"),
    ("version: 1\ndevices:\n  a:\n    transport: ssh\n    host: h\n    port: 0\n",
     r":6: field devices.a.port is 0"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    workdir: ''\n",
     r":5: field devices.a.workdir is empty"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    workdir: \"/tmp/a\\nb\"\n",
     r":5: field devices.a.workdir contains a control character"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    env: {X: [1, 2]}\n",
     r"field devices.a.env.X is a list; expected text or a number"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    env: {X: {y: 1}}\n",
     r"field devices.a.env.X is a mapping; expected text or a number"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    env: {'A B': x}\n",
     r"'A B' is not an environment variable name"),
    ("version: 1\ndevices:\n  a:\n    transport: local\n    tags: [pi, [x]]\n",
     r":5: field devices.a.tags must be a list of words"),
    ("version: 1\ndevices:\n  ? [a, b]\n  : {transport: local}\n",
     r":3: a key must be a plain word"),
])
def test_hostile_values_are_refused_with_file_line_field(tmp_path: Path, yaml_text: str,
                                                          pattern: str) -> None:
    cfg = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=pattern) as ei:
        load_fleet(cfg, env={})
    assert str(cfg) in str(ei.value)


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    with open(cfg, "w") as fh:
        fh.write("version: 1\ndevices:\n  a: {transport: local}\n")
        fh.write("# padding\n" * (10 * MAX_CONFIG_BYTES // 10 // 10 * 10))   # ~10 MB
    assert cfg.stat().st_size > 9 * MAX_CONFIG_BYTES
    with pytest.raises(ConfigError, match=r"larger than 1 MB"):
        load_fleet(cfg, env={})


def test_binary_file_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "devices.yaml"
    cfg.write_bytes(b"version: 1\n\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage")
    p = edge_bench(["devices", "--config", str(cfg)], tmp_path)
    assert p.returncode == 2
    one_clean_line(p)
    assert str(cfg) in p.stderr and "not UTF-8" in p.stderr
    cfg.write_bytes(b"version: 1\x00\x01\x02\n")        # valid UTF-8, but not printable YAML
    p = edge_bench(["devices", "--config", str(cfg)], tmp_path)
    assert p.returncode == 2
    one_clean_line(p)


@pytest.mark.parametrize("name,value", [
    ("EDGE_BENCH_TIMEOUT_S", "inf"), ("EDGE_BENCH_TIMEOUT_S", "nan"),
    ("EDGE_BENCH_TIMEOUT_S", "-1"), ("EDGE_BENCH_CONNECT_TIMEOUT_S", "1e9"),
    ("EDGE_BENCH_RETRIES", "99999999"), ("EDGE_BENCH_RETRIES", "\u0663"),   # Arabic-Indic 3
])
def test_environment_numbers_are_range_checked(tmp_path: Path, name: str, value: str) -> None:
    cfg = write(tmp_path, "version: 1\ndevices: {a: {transport: local}}\n")
    with pytest.raises(ConfigError, match=name):
        load_fleet(cfg, env={name: value})


@pytest.mark.parametrize("flags,pattern", [
    (["--min-seconds", "nan"], "--min-seconds nan"),
    (["--max-seconds", "inf"], "--max-seconds inf"),
    (["--timeout", "-1"], "--timeout -1"),
    (["--timeout", "0"], "--timeout 0"),
    (["--runs", "0"], "--runs 0"),
    (["--lock-wait", "nan"], "--lock-wait nan"),
    (["--cooldown-temp", "inf"], "--cooldown-temp inf"),
    (["--threshold", "nan"], "--threshold nan"),
    (["--label", ""], "--label is empty"),
    (["--label", "a\nb"], "control character"),
    (["--label", "last~2"], "run reference"),
])
def test_run_flags_are_checked_before_any_work(tmp_path: Path, flags: list, pattern: str) -> None:
    p = edge_bench(["run", "--no-store", *flags], tmp_path)
    assert p.returncode == 2, p.stderr
    one_clean_line(p)
    assert pattern in p.stderr
    assert not (tmp_path / "cache").exists()            # refused before quantizing anything
