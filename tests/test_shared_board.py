"""Shared boards (issue 25, findings 1, 2 and 7): another user of the device must never get
code run as the device user, over a REAL sshd with a REAL second local user (`ebattacker`)
doing the planting, as root and as an ordinary device user (`edgebench`).

The races are made deterministic with a hook the test controls: the device's `python:` is a
wrapper that does the attacker's move (rewrite the planted agent, re-point a link) right before
it execs the real python, i.e. after the host's `sha256sum` and checks ran and before the agent
file is read: exactly the window the attacker aims at. The attacker's files are made writable
for that wrapper (it acts on the attacker's behalf); that changes nothing for the rules, which
look at owners, links and who may write into the directories.

Evidence of code execution: the evil agent writes a marker file named after the uid that ran it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from edge_bench.fleet.artifact import agent_package_dir, build_pyz
from test_run_local import edge_bench

ATTACKER = "ebattacker"
VICTIMS = ["root", "edgebench"]

pytestmark = pytest.mark.timeout(600)


def _as(user: str, script: str, data: bytes = b"") -> None:
    subprocess.run(["runuser", "-u", user, "--", "sh", "-c", script], input=data, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def attacker() -> str:
    import sshd
    if os.geteuid() != 0:
        pytest.skip("needs root to make local users")
    sshd._ensure_user(ATTACKER)
    return ATTACKER


@pytest.fixture(scope="module")
def servers(sshd_factory: Any, sshd_server: Any) -> Dict[str, Any]:
    return {"root": sshd_server, "edgebench": sshd_factory(user="edgebench")}


@pytest.fixture()
def scratch() -> Iterator[Dict[str, Path]]:
    """/tmp/eb-*-<token> paths made by the test, removed afterwards; `marks` is a 1777
    directory where an evil agent leaves its marker."""
    tok = secrets.token_hex(4)
    paths = {k: Path(f"/tmp/eb-{k}-{tok}") for k in ("shared", "marks", "att", "link", "wd")}
    paths["marks"].mkdir()
    os.chmod(paths["marks"], 0o1777)
    yield paths
    for p in paths.values():
        subprocess.run(["rm", "-rf", "--", str(p)])


def genuine_agent() -> bytes:
    return build_pyz(agent_package_dir())


def evil_agent(marks: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__main__.py", "import os\nopen(%r + '/ran-as-%%d' %% os.getuid(), 'w')"
                                   ".write('pwned')\n" % str(marks))
    return b"#!/usr/bin/env python3\n" + buf.getvalue()


def victim_python(srv: Any, move: str) -> List[str]:
    """The device's python, after the attacker's `move` (a shell command)."""
    real = srv.python[0] if srv.user == "root" else "/usr/bin/python3"
    return ["sh", "-c", move + ' 2>/dev/null; exec "$0" "$@"', real]


def devices_yaml(tmp_path: Path, srv: Any, workdir: str, python: List[str]) -> Path:
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("\n".join([
        "version: 1", "devices:", "  box:", "    transport: ssh",
        f"    host: {srv.host}", f"    port: {srv.port}", f"    user: {srv.user}",
        f"    key: {srv.client_key}", f"    known_hosts: {srv.known_hosts}",
        f"    python: {json.dumps(python)}", f"    workdir: {json.dumps(workdir)}",
        "    retries: 0"]) + "\n")
    return cfg


def run(tmp_path: Path, cfg: Path, model: str = "builtin:digits") -> subprocess.CompletedProcess:
    out = tmp_path / "out.json"
    if out.exists():
        out.unlink()
    return edge_bench(["run", "--config", str(cfg), "--devices", "box", "--no-store",
                       "--model", model, "--variants", "fp32", "--runs", "3", "--warmup", "0",
                       "--min-seconds", "0", "--processes", "1", "--json", str(out)], tmp_path)


def results(tmp_path: Path) -> List[Dict[str, Any]]:
    out = tmp_path / "out.json"
    return json.loads(out.read_text())["results"] if out.exists() else []


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def marks_of(scratch: Dict[str, Path]) -> List[str]:
    return sorted(p.name for p in scratch["marks"].glob("ran-as-*"))


@pytest.mark.parametrize("victim", VICTIMS)
def test_an_agent_planted_in_a_sticky_workdir_never_runs(
        tmp_path: Path, victim: str, attacker: str, servers: Dict[str, Any],
        scratch: Dict[str, Path]) -> None:
    """Finding 1: workdir /tmp/x (root's, mode 1777, as a lab sets up a shared board). The
    attacker plants agent-<sha>.pyz with the genuine bytes (the name is public: the build is
    deterministic), so sha256sum passes and nothing is pushed; then rewrites it before it runs.
    Now the host works in a private 0700 directory of the victim inside /tmp/x."""
    srv = servers[victim]
    shared = scratch["shared"]
    shared.mkdir()
    os.chmod(shared, 0o1777)
    good = genuine_agent()
    planted = shared / f"agent-{hashlib.sha256(good).hexdigest()}.pyz"
    _as(attacker, f"cat > {planted} && chmod 666 {planted}", good)
    evil = scratch["marks"] / "evil.pyz"
    evil.write_bytes(evil_agent(scratch["marks"]))
    cfg = devices_yaml(tmp_path, srv, str(shared),
                       victim_python(srv, f"cat {evil} > {planted}"))
    p = run(tmp_path, cfg)
    assert marks_of(scratch) == [], f"the planted agent ran: {p.stderr[-2000:]}"
    private = shared / f"edge-bench-{uid_of(victim)}"
    st = private.lstat()
    assert st.st_uid == uid_of(victim) and st.st_mode & 0o7777 == 0o700
    assert (private / planted.name).is_file()          # the victim's own copy is what ran
    (r,) = results(tmp_path)
    if victim == "root":
        assert p.returncode == 0, p.stderr[-2000:]
        assert r["status"] == "ok", r["error"]
    else:   # the system python has no numpy: the real agent ran and said so
        assert "NoRuntime" in str(r["error"]), r["error"]


@pytest.mark.parametrize("victim", VICTIMS)
def test_a_workdir_that_is_another_users_symlink_is_refused(
        tmp_path: Path, victim: str, attacker: str, servers: Dict[str, Any],
        scratch: Dict[str, Path]) -> None:
    """Finding 2: the victim's workdir /tmp/eb-link-* is a symlink the attacker planted, through
    a directory of theirs, to a directory in the victim's home (checks that follow links saw the
    victim's own directory). After the checks the attacker re-points it to their own directory
    holding an evil agent under the right name. Now: refused at once, in one line, nothing
    written to the link's target."""
    srv = servers[victim]
    home = Path(pwd.getpwnam(victim).pw_dir)
    target = home / f"eb-target-{secrets.token_hex(4)}"
    target.mkdir(mode=0o700)
    shutil.chown(target, victim, victim)
    att, link = scratch["att"], scratch["link"]
    good = genuine_agent()
    name = f"agent-{hashlib.sha256(good).hexdigest()}.pyz"
    evil = evil_agent(scratch["marks"])
    try:
        _as(attacker, f"mkdir -m 777 {att} {att}/evil && cat > {att}/evil/{name} &&"
                      f" chmod 777 {att}/evil && ln -s {target} {att}/hop && ln -s {att}/hop {link}",
            evil)
        cfg = devices_yaml(tmp_path, srv, str(link),
                           victim_python(srv, f"ln -sfn {att}/evil {att}/hop"))
        p = run(tmp_path, cfg)
        assert marks_of(scratch) == [], f"the attacker's agent ran: {p.stderr[-2000:]}"
        assert list(target.iterdir()) == [], "files were written through the planted link"
        assert p.returncode == 3, p.stderr[-2000:]
        (r,) = results(tmp_path)
        assert r["status"] == "error"
        assert f"{link} is a symlink of another user (uid {uid_of(attacker)})" in r["error"]
        lines = [x for x in p.stderr.splitlines() if "symlink of another user" in x]
        assert lines and "Traceback" not in p.stderr
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.mark.parametrize("victim", VICTIMS)
def test_a_model_in_a_blobs_directory_of_another_user_is_refused(
        tmp_path: Path, victim: str, attacker: str, servers: Dict[str, Any],
        scratch: Dict[str, Path]) -> None:
    """Finding 1 (blobs): the victim's workdir is theirs, but blobs/ in it belongs to the
    attacker, who planted the model under its content address with the right bytes, so
    sha256sum passes, nothing is pushed and the agent's own check passes too; the attacker may
    swap it between that check and the load. Now: refused in one line naming blobs/."""
    srv = servers[victim]
    wd = scratch["wd"]
    first = devices_yaml(tmp_path, srv, str(wd / "probe"), victim_python(srv, "true"))
    wd.mkdir(mode=0o755)
    shutil.chown(wd, victim, victim)
    run(tmp_path, first)                  # learn the model's content address on the device
    blob_dir = next(wd.rglob("blobs"))
    models = {p.name: p.read_bytes() for p in blob_dir.iterdir() if p.suffix == ".tflite"}
    assert models
    subprocess.run(["rm", "-rf", "--", str(wd / "probe")], check=True)
    os.chmod(wd, 0o777)
    _as(attacker, f"mkdir -m 777 {wd}/blobs")
    for fname, data in models.items():
        _as(attacker, f"cat > {wd}/blobs/{fname} && chmod 666 {wd}/blobs/{fname}", data)
    os.chmod(wd, 0o755)
    cfg = devices_yaml(tmp_path, srv, str(wd), victim_python(srv, "true"))
    p = run(tmp_path, cfg)
    (r,) = results(tmp_path)
    assert r["status"] == "error", "a model in another user's directory was used"
    assert f"{wd}/blobs is not a private directory of this user (uid {uid_of(attacker)}" \
        in r["error"]
    assert p.returncode == 3 and "Traceback" not in p.stderr


def test_the_workdir_is_made_0700_and_stale_partial_pushes_are_removed(
        tmp_path: Path, servers: Dict[str, Any]) -> None:
    """Finding 7: a workdir made over SSH was 0755 (others could read the pushed models); the
    `.part-*` file of a push killed with kill -9 stayed forever. Now the workdir is 0700 and
    a partial file nobody touched for STALE_PART_MINUTES goes on the next push; a fresh one
    (a push in progress from another controller) stays."""
    from edge_bench.fleet.deploy import Blob, check_workdir, ensure_blobs
    from edge_bench.transports.ssh import SSHTransport
    from edge_bench_agent.safepath import STALE_PART_MINUTES
    srv = servers["root"]
    wd = tmp_path / "fresh" / "wd"
    src = tmp_path / "m.bin"
    src.write_bytes(b"model bytes\n")
    with SSHTransport(srv.device("box", workdir=str(wd))) as t:
        assert check_workdir(t, str(wd)) == str(wd)
        ensure_blobs(t, str(wd), [Blob.for_file(src)])
    assert wd.stat().st_mode & 0o7777 == 0o700
    assert (tmp_path / "fresh").stat().st_mode & 0o7777 == 0o700
    stale, fresh = wd / "blobs" / "x.bin.part-0123456789ab", wd / "blobs" / "y.bin.part-ba98"
    for f in (stale, fresh):
        f.write_bytes(b"half a model")
    old = time.time() - 60 * (STALE_PART_MINUTES + 1)
    os.utime(stale, (old, old))
    with SSHTransport(srv.device("box", workdir=str(wd))) as t:
        ensure_blobs(t, check_workdir(t, str(wd)), [Blob.for_file(src)])
    assert not stale.exists() and fresh.exists()


def test_the_agent_loads_the_model_it_hashed_even_if_the_path_is_swapped(
        tmp_path: Path) -> None:
    """What is verified is what is loaded: after the agent checked a model, a file renamed
    over its path is not what the agent reads."""
    from edge_bench_agent import task
    wd = tmp_path / "wd"
    (wd / "blobs").mkdir(parents=True, mode=0o700)
    good, bad = b"TFL3 the real model", b"TFL3 the attacker's model"
    f = wd / "blobs" / "m.tflite"
    f.write_bytes(good)
    got = task.verify_file(str(wd), {"path": "blobs/m.tflite",
                                     "sha256": hashlib.sha256(good).hexdigest()}, "model")
    swap = wd / "swap"
    swap.write_bytes(bad)
    os.replace(swap, f)
    assert Path(got[0]).read_bytes() == good


@pytest.mark.parametrize("how", ["symlink", "other-owner", "group-writable"])
def test_the_agent_refuses_a_model_file_another_user_could_swap(tmp_path: Path,
                                                                 how: str) -> None:
    from edge_bench_agent import task
    from edge_bench_agent.protocol import AgentError
    wd = tmp_path / "wd"
    (wd / "blobs").mkdir(parents=True, mode=0o700)
    real = tmp_path / "real.tflite"
    real.write_bytes(b"TFL3 model")
    f = wd / "blobs" / "m.tflite"
    if how == "symlink":
        f.symlink_to(real)
    else:
        shutil.copy(real, f)
        if how == "other-owner":
            if os.geteuid() != 0:
                pytest.skip("needs root to give the file to another uid")
            os.chown(f, 12345, -1)
        else:
            os.chmod(f, 0o664)
    with pytest.raises(AgentError) as e:
        task.verify_file(str(wd), {"path": "blobs/m.tflite",
                                   "sha256": hashlib.sha256(b"TFL3 model").hexdigest()}, "model")
    assert e.value.type == "UnsafeWorkdir" and str(f) in e.value.message


def _boot(path: Path, sha: str, *args: str) -> subprocess.CompletedProcess:
    from edge_bench_agent.safepath import bootstrap_argv
    return subprocess.run([sys.executable, *bootstrap_argv(str(path), sha), *args],
                          capture_output=True, text=True, timeout=120)


def test_the_bootstrap_runs_only_the_agent_it_verified(tmp_path: Path) -> None:
    """python -c BOOTSTRAP: the agent file is opened without following links, must be this
    user's and writable by no one else, and its bytes must have the sha256 asked for; a refusal
    is one protocol error line."""
    good = genuine_agent()
    sha = hashlib.sha256(good).hexdigest()
    f = tmp_path / f"agent-{sha}.pyz"
    f.write_bytes(good)
    os.chmod(f, 0o644)
    ok = _boot(f, sha, "--version")
    from edge_bench_agent.protocol import AGENT_VERSION
    assert ok.returncode == 0 and ok.stdout.strip() == AGENT_VERSION, ok.stderr
    link = tmp_path / "link.pyz"
    link.symlink_to(f)
    wrong = tmp_path / "wrong.pyz"
    wrong.write_bytes(good + b"\0")
    writable = tmp_path / "writable.pyz"
    writable.write_bytes(good)
    os.chmod(writable, 0o666)
    for path, kind in ((link, "UnsafeWorkdir"), (wrong, "ChecksumMismatch"),
                       (writable, "UnsafeWorkdir")):
        p = _boot(path, sha, "--version")
        assert p.returncode == 5, (path, p.stdout, p.stderr)
        err = json.loads(p.stdout.splitlines()[0])
        assert err["event"] == "error" and err["type"] == kind and str(path) in err["message"]


def test_devices_check_says_why_the_bootstrap_refused_the_agent(tmp_path: Path) -> None:
    """An agent file that others may write (here: made 0666 after the push; the content, so
    sha256sum, is unchanged and nothing is pushed again) is not run: `devices --check` says why
    in one line."""
    wd = tmp_path / "wd"
    cfg = tmp_path / "devices.yaml"
    cfg.write_text("version: 1\ndevices:\n  box:\n    transport: local\n"
                   f"    workdir: {json.dumps(str(wd))}\n")
    first = edge_bench(["devices", "--check", "--config", str(cfg)], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    (agent,) = wd.glob("agent-*.pyz")
    os.chmod(agent, 0o666)
    p = edge_bench(["devices", "--check", "--config", str(cfg)], tmp_path)
    text = p.stdout + p.stderr
    assert "UnsafeWorkdir: the agent" in text and "refusing to run it" in text, text
    assert "Traceback" not in text


LAYOUTS = ["new", "mine-0755", "sticky-root", "sticky-other", "world-writable", "group-writable",
           "other-owner", "file", "link-mine", "link-other", "private-taken", "private-link",
           "under-sticky-other", "relative-dots", "dots-into-sticky", "under-world-writable",
           "under-sticky-root", "uncreatable"]


def _layout(base: Path, how: str) -> str:
    """A workdir path laid out as `how` under `base` (root makes the other user's parts)."""
    other = 12345
    wd = base / "wd"
    if how == "new":
        return str(wd / "a" / "b")
    if how == "relative-dots":
        (base / "x").mkdir()
        return str(base / "x" / ".." / "wd" / "." / "c")
    if how == "uncreatable":          # mkdir fails (even for root)
        return "/proc/edge-bench-no/wd"
    if how in ("under-world-writable", "under-sticky-root"):   # a parent others may write to
        (base / "x").mkdir()
        os.chmod(base / "x", 0o777 if how == "under-world-writable" else 0o1777)
        return str(base / "x" / "mine")
    if how == "dots-into-sticky":   # the last component is `..`: the walk ends in a 1777 dir
        (base / "x").mkdir(mode=0o777)
        os.chmod(base / "x", 0o1777)
        return str(base / "x" / "mine" / "..")
    if how == "file":
        wd.write_text("x")
        return str(wd)
    if how in ("link-mine", "link-other"):
        (base / "real").mkdir(mode=0o700)
        wd.symlink_to(base / "real")
        if how == "link-other":
            os.lchown(wd, other, -1)
        return str(wd)
    wd.mkdir()
    modes = {"mine-0755": 0o755, "sticky-root": 0o1777, "sticky-other": 0o1777,
             "world-writable": 0o777, "group-writable": 0o770, "other-owner": 0o700,
             "private-taken": 0o1777, "private-link": 0o1777, "under-sticky-other": 0o1777}
    os.chmod(wd, modes[how])
    if how in ("sticky-other", "other-owner", "under-sticky-other"):
        os.chown(wd, other, -1)
    private = wd / f"edge-bench-{os.geteuid()}"
    if how == "private-taken":
        private.mkdir(mode=0o700)
        os.chown(private, other, -1)
    if how == "private-link":
        private.symlink_to(base)
    if how == "under-sticky-other":
        return str(wd / "mine")
    return str(wd)


#: how a device runs the script: (shell argv, the multi-call binary whose stat/readlink/id/
#: mkdir/find/rm/printf it uses, or None for the system's): dash + coreutils (Debian, Pi OS),
#: mksh + toybox (Android), busybox ash + busybox (Buildroot, Yocto)
SHELLS = {"dash-coreutils": (["sh"], None), "mksh-toybox": (["mksh"], "toybox"),
          "busybox": (["busybox", "sh"], "busybox")}


def _shell(tmp_path: Path, kind: str) -> Any:
    argv, multi = SHELLS[kind]
    if not shutil.which(argv[0]) or (multi and not shutil.which(multi)):
        pytest.skip(f"{argv[0]} / {multi} not installed (.ci/run installs them)")
    env = dict(os.environ)
    if multi:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("stat", "readlink", "id", "mkdir", "find", "rm", "printf"):
            (bin_dir / tool).symlink_to(shutil.which(multi))
        env["PATH"] = str(bin_dir)
        argv = [shutil.which(argv[0]), *argv[1:]]
    return argv, env


@pytest.mark.parametrize("shell", list(SHELLS))
@pytest.mark.parametrize("how", LAYOUTS)
def test_the_host_script_and_the_agent_walk_agree(tmp_path: Path, how: str, shell: str) -> None:
    """One rule, two spellings (safepath.WORKDIR_SCRIPT in sh for the host over any transport,
    safepath.safe_workdir in Python for the agent): the same verdict and the same directory on
    every layout, with the shells and tools of the devices edge-bench supports."""
    from edge_bench_agent import safepath
    from edge_bench_agent.protocol import AgentError
    if os.geteuid() != 0:
        pytest.skip("needs root to make files of another uid")
    sh_argv, sh_env = _shell(tmp_path, shell)
    results_ = []
    for side in ("sh", "py"):
        base = tmp_path / side
        base.mkdir()
        path = _layout(base, how)
        if side == "sh":
            out = subprocess.run([*sh_argv, "-c", safepath.WORKDIR_SCRIPT, "sh", path],
                                 capture_output=True, text=True, timeout=60, env=sh_env)
            verdict, _, text = out.stdout.strip().partition(" ")
        else:
            try:
                verdict, text = "ok", safepath.safe_workdir(path, private_in_shared=True)
            except AgentError as e:
                verdict, text = "refuse", e.message
        results_.append((verdict, text.replace(str(base), "BASE") if verdict == "ok" else ""))
        if verdict == "ok":
            st = Path(text).lstat()
            assert st.st_uid == os.geteuid() and not st.st_mode & 0o022, (side, how)
    assert results_[0] == results_[1], results_
    expect_ok = how in ("new", "mine-0755", "sticky-root", "link-mine", "relative-dots",
                        "dots-into-sticky", "under-sticky-root")
    assert (results_[0][0] == "ok") == expect_ok, results_


def test_the_bootstrap_imports_from_the_bytes_it_verified_not_from_the_path(
        tmp_path: Path) -> None:
    """After the check the agent's file is never read again: a zipapp that, once started,
    replaces its own file with another one and then imports its second module still gets the
    module it was verified with (a memfd on Linux)."""
    def pyz(second: str) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("__main__.py", "import os, sys\n"
                        "boot = sys.modules['edge_bench_boot']\n"
                        "tmp = boot.origin + '.new'\n"
                        "open(tmp, 'wb').write(open(boot.origin + '.other', 'rb').read())\n"
                        "os.replace(tmp, boot.origin)\n"
                        "import second\n"
                        "print(second.WHO, sys.argv[0].startswith('/proc/self/fd/'))\n")
            zf.writestr("second.py", "WHO = %r\n" % second)
        return buf.getvalue()
    good, other = pyz("verified"), pyz("swapped")
    f = tmp_path / "agent.pyz"
    f.write_bytes(good)
    Path(str(f) + ".other").write_bytes(other)
    p = _boot(f, hashlib.sha256(good).hexdigest())
    assert p.returncode == 0, p.stderr
    assert f.read_bytes() == other                 # the file was swapped under it
    assert p.stdout.split() == ["verified", "True"]
