"""The agent as ONE content-addressed artifact: a deterministic zipapp of `edge_bench_agent`.

The same sources always give the same bytes (entries sorted, fixed timestamps and permissions,
stored uncompressed so no zlib version can change them), so the artifact's sha256 names it on
the device (`agent-<sha256>.pyz`) and an unchanged agent is never pushed twice. A device runs it
with its own python: `python agent-<sha256>.pyz` (docs/protocol.md "Invocation").
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Tuple

#: the zipapp's interpreter line (the device's configured python runs it anyway)
SHEBANG = b"#!/usr/bin/env python3\n"
#: the zip entry that runs the package
ROOT_MAIN = (b"import sys\n"
             b"from edge_bench_agent.__main__ import main\n"
             b"sys.exit(main())\n")
#: 1980-01-01 00:00:00, the earliest time a zip entry can hold
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PACKAGE = "edge_bench_agent"


def agent_package_dir() -> Path:
    import edge_bench_agent
    return Path(edge_bench_agent.__file__).resolve().parent


def _sources(pkg: Path) -> Tuple[Tuple[str, Path], ...]:
    """(arcname, file) of every .py of the package, sorted by arcname."""
    return tuple(sorted((f"{PACKAGE}/{p.name}", p) for p in pkg.glob("*.py") if p.is_file()))


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (0o100644 & 0xFFFF) << 16  # regular file, rw-r--r--
    info.create_system = 3  # unix, whatever the building host is
    return info


def build_pyz(pkg: Path) -> bytes:
    """The zipapp bytes of the package in `pkg`: byte-identical for identical sources."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_entry("__main__.py"), ROOT_MAIN)
        for arcname, path in _sources(pkg):
            zf.writestr(_entry(arcname), path.read_bytes())
    return SHEBANG + buf.getvalue()


def cache_dir() -> Path:
    root = os.environ.get("EDGE_BENCH_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "edge-bench") / "agent"


@lru_cache(maxsize=8)
def _cached(pkg: Path, stamp: Tuple[Tuple[str, int, int], ...], where: Path) -> Tuple[Path, str]:
    data = build_pyz(pkg)
    digest = hashlib.sha256(data).hexdigest()
    target = where / f"agent-{digest}.pyz"
    if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".agent-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target, digest


def agent_artifact() -> Tuple[Path, str]:
    """(path, sha256) of the built agent zipapp, built once per source state and cached under
    $EDGE_BENCH_CACHE/agent (default ~/.cache/edge-bench/agent)."""
    pkg = agent_package_dir()
    stamp = tuple((a, p.stat().st_mtime_ns, p.stat().st_size) for a, p in _sources(pkg))
    return _cached(pkg, stamp, cache_dir())
