"""Content-addressed push: the agent and every model/data file go to the device under a name
derived from their sha256, so an unchanged file is never pushed twice. Every pushed file is
verified by sha256 ON the device after the push (and the agent checks again before use)."""
from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .artifact import agent_artifact
from ..errors import DeviceError
from ..hashing import sha256_file
from ..transports.base import Transport

#: pushes of files at least this big are reported to `on_push` (the live display shows them)
BIG_PUSH_BYTES = 4 << 20
#: how often a big push reports its bytes and rate
PUSH_PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class Blob:
    """A local file and where it lives on the device, relative to the workdir."""

    local: Path
    sha256: str
    remote_rel: str

    @classmethod
    def for_file(cls, local: Path, prefix: str = "blobs/") -> "Blob":
        digest = sha256_file(local)
        suffix = "".join(Path(local).suffixes[-1:])
        return cls(local=Path(local), sha256=digest, remote_rel=f"{prefix}{digest}{suffix}")


def agent_blob() -> Blob:
    """The agent: one zipapp (fleet.artifact), pushed as agent-<sha256>.pyz."""
    path, digest = agent_artifact()
    return Blob(local=path, sha256=digest, remote_rel=f"agent-{digest}.pyz")


@dataclass
class DeployReport:
    pushed: List[Blob] = field(default_factory=list)
    present: List[Blob] = field(default_factory=list)
    bytes_pushed: int = 0


def _throttled(name: str, t0: float, on_push: Callable[[Dict[str, Any]], None]
               ) -> Callable[[int, int], None]:
    """A transport's byte progress as `on_push` events, one per PUSH_PROGRESS_EVERY_S at most,
    with the rate so far."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PUSH_PROGRESS_EVERY_S and done < total:
            last[0] = now
            on_push({"file": name, "total": total, "bytes": done,
                     "rate": done / max(1e-6, now - t0)})
    return progress


def remote_path(workdir: str, blob: Blob) -> str:
    return posixpath.join(workdir, blob.remote_rel)


def check_workdir(transport: Transport, workdir: str) -> str:
    """The workdir to use on the device: `workdir` made (0700) and checked by
    edge_bench_agent.safepath.WORKDIR_SCRIPT, or the private `edge-bench-<uid>` directory inside
    it when it is a shared sticky directory (`/tmp/x`, 1777); DeviceError saying why and what to
    do when another user could change what is in it (a symlink of theirs, a directory they own
    or may write to). Partial pushes a killed push left behind are removed. Asked once per
    transport and workdir."""
    from edge_bench_agent.safepath import WORKDIR_SCRIPT
    cache: Dict[str, str] = transport.__dict__.setdefault("_safe_workdirs", {})
    if workdir in cache:
        return cache[workdir]
    res = transport.run(["sh", "-c", WORKDIR_SCRIPT, "sh", workdir], timeout=60)
    # the script's one verdict line (a login file of the device's shell may print more)
    said = [x for x in res.stdout.splitlines() if x.startswith(("ok /", "refuse "))]
    verdict, _, text = (said[-1] if said else "").partition(" ")
    if verdict == "refuse":
        raise DeviceError(transport.device.name, text)
    if verdict != "ok" or not text.startswith("/"):
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-2:])
        raise DeviceError(transport.device.name, f"cannot check the workdir {workdir} on the"
                          f" device (exit {res.exit_code}): {tail or 'no output'}",
                          hint="the device needs sh, id, stat and readlink (coreutils, busybox"
                               " or toybox)")
    cache[workdir] = text
    return text


def ensure_blobs(transport: Transport, workdir: str, blobs: Sequence[Blob],
                 on_push: Optional[Callable[[Dict[str, Any]], None]] = None) -> DeployReport:
    """Make every blob present and verified under workdir on the device (`workdir` as
    check_workdir returned it). `on_push` hears of each push of a file over BIG_PUSH_BYTES: {file, total,
    bytes, elapsed_s, finished}."""
    if check_workdir(transport, workdir) != workdir:
        raise DeviceError(transport.device.name, f"workdir {workdir} is shared: files go to the"
                          f" private {check_workdir(transport, workdir)} (call check_workdir"
                          " first)")
    report = DeployReport()
    unique = list({b.remote_rel: b for b in blobs}.values())
    dirs = sorted({posixpath.dirname(remote_path(workdir, b)) for b in unique})
    for d in dirs:
        transport.makedirs(d)
    paths = [remote_path(workdir, b) for b in unique]
    have = transport.sha256_many(paths)
    missing = []
    for b, p in zip(unique, paths):
        if have.get(p) == b.sha256:
            report.present.append(b)
        else:
            missing.append((b, p))
    before = transport.bytes_pushed
    for b, p in missing:
        size = b.local.stat().st_size
        if on_push is None or size < BIG_PUSH_BYTES:
            transport.put(b.local, p)
            continue
        t0 = time.monotonic()
        on_push({"file": b.local.name, "total": size, "bytes": 0, "first": True})
        transport.put(b.local, p, progress=_throttled(b.local.name, t0, on_push))
        on_push({"file": b.local.name, "total": size, "bytes": size, "finished": True,
                 "elapsed_s": time.monotonic() - t0})
    if missing:
        got = transport.sha256_many([p for _, p in missing])
        for b, p in missing:
            if got.get(p) != b.sha256:
                raise DeviceError(transport.device.name,
                                  f"{p}: sha256 on the device is {got.get(p) or 'missing'},"
                                  f" expected {b.sha256} after pushing {b.local}",
                                  hint="the transfer was corrupted or the disk is full; run again")
            report.pushed.append(b)
    report.bytes_pushed = transport.bytes_pushed - before
    return report


def agent_argv(python: Sequence[str], workdir: str, agent: Blob, *args: str) -> List[str]:
    """The command that runs the pushed agent: the device's python with the fixed bootstrap
    (edge_bench_agent.safepath.BOOTSTRAP), which reads the file once without following links,
    checks its owner and sha256 and runs those very bytes (never the path a second time)."""
    from edge_bench_agent.safepath import bootstrap_argv
    return [*python, *bootstrap_argv(remote_path(workdir, agent), agent.sha256), *args]
