"""The device lock's rules, one function at a time (agent/lock.py, in process, real files).

Written from docs/protocol.md "Device lock" and lock.py's docstrings: the workdir is absolute,
created 0700, refused when another user owns it or others may write to it without the sticky
bit; the lock file is opened without following a symlink and must be a plain file of this user
with one link, its bytes never written; the holder goes to `lock.holder` through a temp file
renamed into place; a held lock waits up to `lock_wait_s`, polling every 0.2 s, telling the
host at once and then every 10 s, then fails with DeviceBusy naming the holder ("that pid has
exited ..." when the holder's pid is gone). The waiting is driven by a fake clock (the module's
`time`), so the counts are exact; the flock itself is the kernel's (a second open file
description in this process conflicts with it like another process would).
test_lock.py runs the same rules end to end (two real `edge-bench run`, kill -9 of a holder).
"""
from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from edge_bench_agent import lock as L
from edge_bench_agent.protocol import AgentError

HOLDER = {"pid": 4242, "job_id": "r7-pi4", "since": "2026-11-27T02:00:03Z",
          "controller_host": "ci-runner-3", "controller_user": "bench"}
# docs/protocol.md, the DeviceBusy example, built by hand from HOLDER
HOLDER_TEXT = ("held by job r7-pi4 (pid 4242, since 2026-11-27T02:00:03Z) from controller "
               "bench@ci-runner-3")


class FakeTime:
    """monotonic() and sleep() for lock.py: sleep advances the clock; `on_sleep` runs after."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now = 1000.0
        self.sleeps: List[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    def sleep(self, dt: float) -> None:
        assert dt >= 0
        self.sleeps.append(dt)
        self.now += dt
        if self.on_sleep is not None:
            self.on_sleep(self)


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(L, "time", fake)
    return fake


def hold(workdir: Path) -> int:
    """Another holder of <workdir>/lock (a separate open file description: flock conflicts)."""
    workdir.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(str(workdir / "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def is_free(workdir: Path) -> bool:
    fd = os.open(str(workdir / "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def busy(workdir: Path, **kw: Any) -> AgentError:
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(workdir), {"pid": os.getpid(), "job_id": "me"}, **kw)
    assert e.value.type == "DeviceBusy"
    return e.value


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- the workdir --------------------------------------------------------------------------------
def test_a_missing_workdir_is_created_0700_and_returned_absolute(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.chdir(tmp_path)
    got = L.check_workdir("a/b")
    assert got == str(tmp_path / "a" / "b")
    assert stat.S_IMODE(os.stat(got).st_mode) & 0o777 == 0o700 & ~_umask()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert L.check_workdir("~/wd") == str(tmp_path / "home" / "wd")
    assert (tmp_path / "home" / "wd").is_dir()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.parametrize("mode, refused", [
    (0o700, ""), (0o755, ""), (0o775, "chmod go-w"), (0o757, "chmod go-w"),
    (0o777, "chmod go-w"),
    # sticky, like /tmp: others cannot replace our files, but they can plant the agent's
    # (public) file name before we push, so the agent works only in a private directory
    (0o1777, "edge-bench-"), (0o1775, "edge-bench-"),
])
def test_a_workdir_others_may_write_to_is_refused(
        tmp_path: Path, mode: int, refused: str) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    os.chmod(wd, mode)
    if refused:
        with pytest.raises(AgentError) as e:
            L.check_workdir(str(wd))
        assert e.value.type == "UnsafeWorkdir" and str(wd) in e.value.message
        assert refused in e.value.message
    else:
        assert L.check_workdir(str(wd)) == str(wd)


def test_a_workdir_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the workdir to another uid (a system privilege)")
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    os.chown(wd, 12345, -1)
    with pytest.raises(AgentError) as e:
        L.check_workdir(str(wd))
    assert e.value.type == "UnsafeWorkdir" and "another user" in e.value.message


def test_a_workdir_that_is_a_file_or_cannot_be_made_is_unsafe(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    for path in (f, f / "sub"):
        with pytest.raises(AgentError) as e:
            L.check_workdir(str(path))
        assert e.value.type == "UnsafeWorkdir" and str(path) in e.value.message


def test_a_workdir_swapped_for_a_file_after_it_was_made_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race makedirs cannot see: the path is a file by the time it is checked."""
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setattr(L.os, "makedirs", lambda *a, **kw: None)   # "created", then swapped
    with pytest.raises(AgentError) as e:
        L.check_workdir(str(f))
    assert e.value.type == "UnsafeWorkdir"
    assert e.value.message == f"workdir {f} is not a directory"


# ---- the lock file ------------------------------------------------------------------------------
def test_taking_a_free_lock_writes_the_holder_beside_it_and_never_the_lock(
        tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    fd = L.acquire_lock(str(wd), HOLDER)
    assert isinstance(fd, int)
    try:
        assert not is_free(wd)
        assert (wd / "lock").read_bytes() == b""
        assert json.loads((wd / "lock.holder").read_text()) == HOLDER
        assert sorted(p.name for p in wd.iterdir()) == ["lock", "lock.holder"]  # no temp left
        # docs: anyone on the device may read who holds it; only its owner writes it
        assert stat.S_IMODE(os.stat(wd / "lock.holder").st_mode) == 0o644 & ~_umask()
        lk = os.stat(wd / "lock")
        assert stat.S_ISREG(lk.st_mode) and lk.st_mode & 0o077 == 0  # nobody else's business
    finally:
        L.release_lock(fd, str(wd))
    assert is_free(wd) and not (wd / "lock.holder").exists()
    assert (wd / "lock").read_bytes() == b""


def test_a_lock_file_with_content_is_used_and_left_as_it_is(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    (wd / "lock").write_bytes(b"not ours to change\n")
    fd = L.acquire_lock(str(wd), HOLDER)
    L.release_lock(fd, str(wd))
    assert (wd / "lock").read_bytes() == b"not ours to change\n"


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (wd / "lock").symlink_to(victim)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and "symlink" in e.value.message
    assert f"rm {wd / 'lock'}" in e.value.message
    assert victim.read_bytes() == b"precious" and (wd / "lock").is_symlink()
    (wd / "lock").unlink()
    (wd / "lock").symlink_to(tmp_path / "nowhere")   # dangling: not created through it either
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("err, plant_link", [("ELOOP", False), ("EMLINK", True)])
def test_a_symlink_is_named_as_such_whichever_way_the_kernel_says_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: str, plant_link: bool) -> None:
    """Linux says ELOOP for O_NOFOLLOW on a symlink (the link may be gone again by the time
    anyone looks); FreeBSD says EMLINK: either way it is a planted symlink, UnsafeWorkdir."""
    import errno
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    if plant_link:
        (wd / "lock").symlink_to(tmp_path / "victim")
    real_open = os.open

    def kernel_says(path: Any, flags: int, *a: Any) -> int:
        if str(path) == str(wd / "lock"):
            raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))
        return real_open(path, flags, *a)
    monkeypatch.setattr(L.os, "open", kernel_says)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and "is a symlink" in e.value.message


def test_a_hard_linked_lock_is_refused(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, wd / "lock")
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir"
    assert "not a plain file of this user (regular, 2 links" in e.value.message
    assert victim.read_bytes() == b"precious"


def test_a_lock_file_unlinked_while_it_is_opened_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removed (and maybe re-created) by someone else between open and check: this job would
    lock an inode no other job can find. Only a file with exactly one link is the lock."""
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    real_fstat = os.fstat

    def fstat_after_unlink(fd: int) -> os.stat_result:
        os.unlink(wd / "lock")
        return real_fstat(fd)
    monkeypatch.setattr(L.os, "fstat", fstat_after_unlink)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and "regular, 0 links" in e.value.message


def test_a_lock_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    os.mkfifo(wd / "lock")
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir"
    assert "not a plain file of this user (special, 1 links" in e.value.message


def test_a_lock_file_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the lock file to another uid (a system privilege)")
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    (wd / "lock").write_bytes(b"")
    os.chown(wd / "lock", 12345, -1)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and "uid 12345" in e.value.message


def test_a_lock_that_cannot_be_opened_is_an_internal_error(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    (wd / "lock").mkdir(parents=True)      # a directory: cannot be opened for writing
    os.chmod(wd, 0o700)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "InternalError" and "cannot open the device lock" in e.value.message


# ---- the holder file ----------------------------------------------------------------------------
def test_the_holder_replaces_a_planted_symlink_instead_of_writing_through_it(
        tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (wd / "lock.holder").symlink_to(victim)
    fd = L.acquire_lock(str(wd), HOLDER)
    try:
        assert victim.read_bytes() == b"precious"
        assert not (wd / "lock.holder").is_symlink()
        assert json.loads((wd / "lock.holder").read_text()) == HOLDER
    finally:
        L.release_lock(fd, str(wd))


def test_a_holder_that_cannot_be_written_does_not_cost_the_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The flock is the lock; the holder file is a courtesy: logged, no temp file left."""
    wd = tmp_path / "wd"
    (wd / "lock.holder").mkdir(parents=True)   # rename over a directory fails
    os.chmod(wd, 0o700)
    fd = L.acquire_lock(str(wd), HOLDER)
    try:
        assert not is_free(wd)
        assert "cannot write" in capsys.readouterr().err
        assert sorted(p.name for p in wd.iterdir()) == ["lock", "lock.holder"]
    finally:
        L.release_lock(fd, str(wd))


def test_a_stale_temp_file_of_the_same_pid_is_not_written_through(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    tmp = wd / ("lock.holder.%d.tmp" % os.getpid())
    tmp.symlink_to(victim)
    fd = L.acquire_lock(str(wd), HOLDER)
    try:
        assert victim.read_bytes() == b"precious"
        assert "cannot write" in capsys.readouterr().err
        assert not tmp.is_symlink() and not tmp.exists()   # cleaned up
        assert not is_free(wd)
    finally:
        L.release_lock(fd, str(wd))


def test_read_lock_holder_reads_the_json_beside_the_lock(tmp_path: Path, clock: FakeTime) -> None:
    (tmp_path / "lock.holder").write_text(json.dumps(HOLDER))
    assert L.read_lock_holder(str(tmp_path / "lock")) == HOLDER
    assert clock.sleeps == []                      # there at once: no waiting


@pytest.mark.parametrize("content", [None, "", "  \n", "not json", "[1, 2]", '"text"'])
def test_no_usable_holder_is_none_after_a_brief_retry(tmp_path: Path, clock: FakeTime,
                                                     content: Optional[str]) -> None:
    if content is not None:
        (tmp_path / "lock.holder").write_text(content)
    assert L.read_lock_holder(str(tmp_path / "lock"), tries=4) is None
    assert clock.sleeps == [0.02] * 3              # between tries, not after the last
    assert L.read_lock_holder(str(tmp_path / "lock"), tries=1) is None
    assert clock.sleeps == [0.02] * 3


def test_many_tries_still_sleep_only_between_them(tmp_path: Path, clock: FakeTime) -> None:
    assert L.read_lock_holder(str(tmp_path / "lock"), tries=300) is None
    assert len(clock.sleeps) == 299


def test_a_holder_written_while_retrying_is_found(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def write_late(t: FakeTime) -> None:
        if len(t.sleeps) == 3:
            (tmp_path / "lock.holder").write_text(json.dumps(HOLDER))
    fake = FakeTime(write_late)
    monkeypatch.setattr(L, "time", fake)
    assert L.read_lock_holder(str(tmp_path / "lock"), tries=5) == HOLDER
    assert len(fake.sleeps) == 3


def test_a_symlinked_holder_file_is_not_read(tmp_path: Path, clock: FakeTime) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(HOLDER))
    (tmp_path / "lock.holder").symlink_to(target)
    assert L.read_lock_holder(str(tmp_path / "lock"), tries=2) is None


# ---- a held lock --------------------------------------------------------------------------------
def _held(tmp_path: Path, holder: Optional[Dict[str, Any]]) -> Tuple[Path, int]:
    wd = tmp_path / "wd"
    fd = hold(wd)
    if holder is not None:
        (wd / "lock.holder").write_text(json.dumps(holder))
    return wd, fd


def test_a_held_lock_fails_at_once_naming_the_holder(tmp_path: Path, clock: FakeTime) -> None:
    wd, other = _held(tmp_path, dict(HOLDER, pid=os.getpid()))   # a live pid
    try:
        e = busy(wd)
        assert e.message == HOLDER_TEXT.replace("4242", str(os.getpid()))
        assert e.extra == {"holder": dict(HOLDER, pid=os.getpid()),
                           "lock_path": str(wd / "lock")}
        assert clock.now == 1000.0                   # no wait with lock_wait_s 0
        assert json.loads((wd / "lock.holder").read_text())["pid"] == os.getpid()  # untouched
    finally:
        os.close(other)


def test_without_holder_info_the_message_says_so(tmp_path: Path, clock: FakeTime) -> None:
    wd, other = _held(tmp_path, None)
    try:
        assert busy(wd).message == "held by another process (no holder info in the lock file)"
    finally:
        os.close(other)
    assert clock.sleeps == [0.02] * 9          # docs: 10 reads 20 ms apart before giving up


def test_a_holder_whose_pid_is_gone_is_named_as_exited(tmp_path: Path, clock: FakeTime) -> None:
    """The job process died but a worker it started still holds the flock."""
    gone = dead_pid()
    wd, other = _held(tmp_path, dict(HOLDER, pid=gone))
    try:
        assert busy(wd).message == (HOLDER_TEXT.replace("4242", str(gone))
                                    + "; that pid has exited but a worker process it started"
                                      " still holds the lock")
    finally:
        os.close(other)


@pytest.mark.parametrize("pid", [None, "4242", True, 0, -99999])
def test_a_holder_pid_that_is_not_a_process_id_is_not_called_exited(
        tmp_path: Path, clock: FakeTime, pid: Any) -> None:
    wd, other = _held(tmp_path, dict(HOLDER, pid=pid))
    try:
        assert "exited" not in busy(wd).message
    finally:
        os.close(other)


def test_lock_wait_polls_every_fifth_of_a_second_and_reports_every_ten_seconds(
        tmp_path: Path, clock: FakeTime) -> None:
    wd, other = _held(tmp_path, HOLDER)
    notes: List[Tuple[Any, float]] = []
    try:
        e = busy(wd, wait_s=25.0, on_wait=lambda h, left: notes.append((h, left)))
    finally:
        os.close(other)
    assert e.message.startswith(HOLDER_TEXT) and e.message.endswith(" after waiting 25 s")
    assert clock.now - 1000.0 == pytest.approx(25.0)
    assert max(clock.sleeps) == 0.2 and clock.sleeps[0] == 0.2
    assert len(clock.sleeps) in (125, 126)            # 25 s / 0.2 s (a last sliver may remain)
    # at once, then every 10 s, with the time left
    assert [h for h, _ in notes] == [HOLDER] * 3
    assert [round(left, 6) for _, left in notes] == [25.0, 15.0, 5.0]


def test_the_last_poll_sleeps_only_the_time_left(tmp_path: Path, clock: FakeTime) -> None:
    wd, other = _held(tmp_path, HOLDER)
    try:
        e = busy(wd, wait_s=0.5, on_wait=None)
    finally:
        os.close(other)
    assert clock.sleeps == pytest.approx([0.2, 0.2, 0.1])
    assert e.message.startswith(HOLDER_TEXT) and " after waiting " in e.message


def test_custom_poll_and_note_intervals(tmp_path: Path, clock: FakeTime) -> None:
    wd, other = _held(tmp_path, HOLDER)
    notes: List[float] = []
    try:
        busy(wd, wait_s=3.0, poll_s=1.0, note_every_s=2.0,
             on_wait=lambda h, left: notes.append(left))
    finally:
        os.close(other)
    assert clock.sleeps == [1.0, 1.0, 1.0]
    assert notes == [3.0, 1.0]


def test_a_lock_freed_while_waiting_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    wd, other = _held(tmp_path, HOLDER)
    freed = []

    def free_after_a_second(t: FakeTime) -> None:
        if t.now - 1000.0 >= 1.0 - 1e-9 and not freed:
            os.close(other)             # the other holder ends (the kernel drops its flock)
            freed.append(t.now)
    fake = FakeTime(free_after_a_second)
    monkeypatch.setattr(L, "time", fake)
    mine = dict(HOLDER, job_id="next")
    fd = L.acquire_lock(str(wd), mine, wait_s=30.0)
    try:
        assert freed and fake.now == pytest.approx(1.0 + 1000.0)   # taken at the next poll
        assert json.loads((wd / "lock.holder").read_text()) == mine   # the old holder replaced
        assert not is_free(wd)
    finally:
        L.release_lock(fd, str(wd))


def test_release_without_a_workdir_keeps_the_holder_file_and_frees_the_lock(
        tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    fd = L.acquire_lock(str(wd), HOLDER)
    L.release_lock(fd)
    assert is_free(wd) and (wd / "lock.holder").exists()
    L.release_lock(None, str(wd))                   # nothing held: nothing removed
    assert (wd / "lock.holder").exists()


def test_a_holder_pid_of_another_users_process_is_alive_not_exited() -> None:
    """Signalling another user's process fails with EPERM: it exists, so the holder has not
    exited. As root (who may signal anyone) the check runs as the unprivileged `nobody`, with
    a copy of the agent package it can read (the checkout may be private to root)."""
    import shutil
    import tempfile
    pkg = Path(L.__file__).resolve().parent
    shared = Path(tempfile.mkdtemp(prefix="eb-lock-"))   # under /tmp: pytest's tmp is 0700
    shared.chmod(0o755)
    shutil.copytree(pkg, shared / "edge_bench_agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (shared / "edge_bench_agent").chmod(0o755)
    for f in (shared / "edge_bench_agent").iterdir():
        f.chmod(0o644)
    code = "from edge_bench_agent import lock; print(lock._pid_alive(1))"   # init: root's
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                sys.executable, "-c", code]
    else:
        argv = [sys.executable, "-c", code]
    env = dict(os.environ, PYTHONPATH=str(shared))
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/", env=env)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "True"
    assert L._pid_alive(dead_pid()) is False
    assert L._pid_alive(os.getpid()) is True


def test_releasing_is_harmless_when_the_holder_file_or_the_fd_is_gone(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    fd = L.acquire_lock(str(wd), HOLDER)
    (wd / "lock.holder").unlink()            # removed by hand meanwhile
    L.release_lock(fd, str(wd))              # no error
    assert is_free(wd)
    L.release_lock(fd, str(wd))              # released twice: the fd is closed already


def test_a_flock_error_other_than_busy_is_an_internal_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """e.g. ENOLCK on a network filesystem: not `busy`, and no waiting for it to pass."""
    import errno

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(L.fcntl, "flock", no_locks)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(tmp_path / "wd"), HOLDER, wait_s=30.0)
    assert e.value.type == "InternalError"
    assert e.value.message.startswith(f"cannot lock {tmp_path / 'wd' / 'lock'}: ")
    assert "No locks available" in e.value.message


@pytest.mark.parametrize("err", ["EAGAIN", "EACCES", "EWOULDBLOCK"])
def test_every_busy_errno_of_flock_means_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              clock: FakeTime, err: str) -> None:
    """flock(2) reports a held lock as EWOULDBLOCK (== EAGAIN on Linux); some systems say
    EACCES, as fcntl locks do: all three mean `busy`."""
    import errno

    def held(fd: int, op: int) -> None:
        raise OSError(getattr(errno, err), "busy")
    monkeypatch.setattr(L.fcntl, "flock", held)
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    (wd / "lock.holder").write_text(json.dumps(HOLDER))
    assert busy(wd).message.startswith(HOLDER_TEXT)


def test_a_holder_file_is_read_up_to_8_kib(tmp_path: Path, clock: FakeTime) -> None:
    """docs/protocol.md: lock.holder is read up to 8 KiB; anything longer is no holder."""
    def holder_of(size: int) -> Dict[str, Any]:
        base = json.dumps({"job_id": "J", "pad": ""})
        return {"job_id": "J", "pad": "x" * (size - len(base))}
    for size, ok in ((8192, True), (8193, False)):
        data = holder_of(size)
        text = json.dumps(data)
        assert len(text) == size
        (tmp_path / "lock.holder").write_text(text)
        assert L.read_lock_holder(str(tmp_path / "lock"), tries=1) == (data if ok else None)


def test_a_real_clock_wait_ends_with_device_busy(tmp_path: Path) -> None:
    """With time.sleep, the last poll overshoots: the time left goes below 0, never exactly 0."""
    wd, other = _held(tmp_path, HOLDER)
    try:
        e = busy(wd, wait_s=0.05, poll_s=0.02)
    finally:
        os.close(other)
    assert e.message.startswith(HOLDER_TEXT) and e.message.endswith(" after waiting 0 s")


def test_a_full_disk_while_writing_the_holder_is_logged_and_the_lock_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import errno
    wd = tmp_path / "wd"
    real_open = os.open

    def no_space(path: Any, flags: int, *a: Any) -> int:
        if str(path).endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *a)
    monkeypatch.setattr(L.os, "open", no_space)
    fd = L.acquire_lock(str(wd), HOLDER)
    try:
        assert not is_free(wd)
        assert "No space left on device" in capsys.readouterr().err
        assert sorted(p.name for p in wd.iterdir()) == ["lock"]
    finally:
        L.release_lock(fd, str(wd))


def test_looking_at_the_holder_does_not_signal_it(tmp_path: Path, clock: FakeTime) -> None:
    """The liveness check of the holder's pid must not disturb it (a signal-0 probe only).
    The holder here is this process, with handlers that record any signal: a signal sent to
    oneself is handled before the next Python instruction, so none may be recorded."""
    import signal
    got: List[int] = []
    sigs = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    old = {s: signal.signal(s, lambda n, f: got.append(n)) for s in sigs}
    try:
        wd, other = _held(tmp_path, dict(HOLDER, pid=os.getpid()))
        try:
            assert "exited" not in busy(wd).message
        finally:
            os.close(other)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert got == []


def test_an_error_opening_the_lock_that_is_no_symlink_is_internal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """e.g. a disk quota: said as it is (InternalError), not blamed on a planted symlink."""
    import errno
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    real_open = os.open

    def quota(path: Any, flags: int, *a: Any) -> int:
        if str(path) == str(wd / "lock"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return real_open(path, flags, *a)
    monkeypatch.setattr(L.os, "open", quota)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "InternalError" and "cannot open the device lock" in e.value.message


def test_a_lock_file_of_a_user_with_a_lower_uid_is_refused_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other owner, root included: this login is uid 5000 here, the lock file root's."""
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the workdir to uid 5000 (a system privilege)")
    wd = tmp_path / "wd"
    wd.mkdir(mode=0o700)
    (wd / "lock").write_bytes(b"")          # root's (uid 0)
    os.chown(wd, 5000, -1)
    monkeypatch.setattr(L.os, "geteuid", lambda: 5000)
    with pytest.raises(AgentError) as e:
        L.acquire_lock(str(wd), HOLDER)
    assert e.value.type == "UnsafeWorkdir" and "uid 0" in e.value.message
