"""Running the real CLI as a user would, in its own cache, without the caller's config or store
(one home for the helper several end-to-end tests share)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List


def cli_env(tmp: Path) -> Dict[str, str]:
    e = dict(os.environ)
    e["EDGE_BENCH_CACHE"] = str(tmp / "cache")
    e.pop("EDGE_BENCH_CONFIG", None)
    e.pop("EDGE_BENCH_DB", None)
    return e


def edge_bench(args: List[str], tmp: Path,
               timeout: float = 600) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "edge_bench.cli", *args], capture_output=True,
                          text=True, env=cli_env(tmp), cwd=str(tmp), timeout=timeout)
