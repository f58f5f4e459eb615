"""Shared pytest fixtures. Each helper module keeps its fixtures in its own marked section."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, NoReturn

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


# =============================================================================================
# PARALLEL WORKERS (pytest -n N, pytest-xdist): the README's test command runs two.
#
# - Each worker gets its own HOME, set here before any test module is imported: the built-in
#   `local` device keeps its agent, models and device lock under ~/.cache/edge-bench, and two
#   runs on it at once would find it busy. The test caches that are built once (the corpus of
#   production models, the emulated Pi's root file system) stay shared, in the real home.
# - @pytest.mark.exclusive: the test runs with no other test running (it measures speed or a
#   wall-clock bound that another worker's load would move). Every other test holds a shared
#   lock for its setup, call and teardown; an exclusive one the exclusive lock. A turnstile
#   stops new shared holders while an exclusive test waits, so it is never starved.
# =============================================================================================
def _isolate_worker() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    import pwd
    real = Path(pwd.getpwuid(os.getuid()).pw_dir)
    test_cache = Path(os.environ.setdefault(
        "EDGE_BENCH_TEST_CACHE", str(real / ".cache" / "edge-bench-test")))
    import arm_rootfs
    os.environ.setdefault("EDGE_BENCH_ARM_ROOTFS", str(arm_rootfs.default_path()))
    home = test_cache / "worker-homes" / worker
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    # xdist's workers export COLUMNS=80 LINES=24: the commands the tests start would take them
    # for their terminal's size (the one-process run has no such variables)
    for k in ("COLUMNS", "LINES"):
        os.environ.pop(k, None)


_isolate_worker()


def _deliverable_sigint() -> None:
    """A shell without job control (a script's `pytest &`, `nohup`) starts the suite with SIGINT
    ignored, every command the tests start inherits that, and edge-bench keeps an ignored
    SIGINT ignored, as `nohup` asks (tests/test_interrupt_delivery.py): the Ctrl-C tests would
    fail only for how the suite was started. Python's own handler makes it deliverable again
    (a child process gets the default action at exec, and Python's default handler)."""
    import signal
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_deliverable_sigint()


def _suite_lock_dir() -> Path:
    import tempfile
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID", "solo")
    d = Path(tempfile.gettempdir()) / f"edge-bench-test-run-{uid}"
    d.mkdir(exist_ok=True)
    return d


@pytest.hookimpl(trylast=True)   # after pytest-randomly's shuffle
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Under -n: the exclusive tests last (each worker collects the same order, xdist hands the
    tests out in it). Scattered among the others, each one waited for whatever long test the
    other worker had started (the corpus run: 150 s), and its worker stood idle meanwhile."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda it: it.get_closest_marker("exclusive") is not None)  # stable


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: object):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import fcntl
    d = _suite_lock_dir()
    exclusive = item.get_closest_marker("exclusive") is not None
    with open(d / "turnstile", "a") as turn, open(d / "suite", "a") as suite:
        fcntl.flock(turn, fcntl.LOCK_EX)
        if exclusive:
            fcntl.flock(suite, fcntl.LOCK_EX)     # the turnstile stays held: nobody new starts
        else:
            fcntl.flock(turn, fcntl.LOCK_UN)
            fcntl.flock(suite, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(suite, fcntl.LOCK_UN)
            fcntl.flock(turn, fcntl.LOCK_UN)


def missing_system(reason: str) -> NoReturn:
    """The one way a test gives up for want of a system package, a service or a registry
    (`reason` names it and how to install it): a skip on a developer's machine, a FAILURE in CI
    (CI=true), where .ci/run installs everything the suite needs, so a skip there would hide a
    broken install step. Import it with `from conftest import missing_system`."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)", pytrace=False)
    pytest.skip(reason)


# =============================================================================================
# SSH: a real OpenSSH sshd (tests/sshd.py)
#
#   sshd_server   (session)  -> sshd.SSHD: one running sshd on 127.0.0.1:<free port>, root login
#                               with a throwaway client key; .host .port .user .client_key
#                               .known_hosts .host_key_line .host_key_fingerprint .device(...)
#   sshd_factory  (session)  -> start(**kw) -> sshd.SSHD: more sshd instances (a fleet); kwargs
#                               as sshd.start_sshd (host=, port=, user=, client_key=, wrapper=...);
#                               all stopped at session end. Reuses the session's client key
#                               unless client_key= is given.
#   sshd_device   (function) -> edge_bench.config.Device for sshd_server: transport ssh,
#                               host/port/user/key/known_hosts set, python = [sys.executable],
#                               workdir = a fresh tmp dir, retries=0.
#   make_sshd_device (function) -> make(name="sshbox", **overrides) -> Device for sshd_server
#                               with a fresh tmp workdir unless overridden.
# All of them skip (with the reason) when sshd is not installed or not running as root.
# =============================================================================================
@pytest.fixture(scope="session")
def _sshd_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sshd
    reason = sshd.sshd_missing_reason()
    if reason:
        missing_system(reason)
    return tmp_path_factory.mktemp("sshd")


@pytest.fixture(scope="session")
def sshd_factory(_sshd_base: Path):
    import sshd
    started = []
    shared_key = sshd.make_keypair(_sshd_base / "fleet_client_key", "edge-bench-fleet")

    def start(**kw):
        kw.setdefault("client_key", shared_key)
        s = sshd.start_sshd(_sshd_base, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def sshd_server(_sshd_base: Path):
    import sshd
    s = sshd.start_sshd(_sshd_base, name="main")
    yield s
    s.stop()


@pytest.fixture
def make_sshd_device(sshd_server, tmp_path_factory: pytest.TempPathFactory):
    def make(name: str = "sshbox", **overrides):
        overrides.setdefault("workdir", str(tmp_path_factory.mktemp("sshwork")))
        return sshd_server.device(name, **overrides)
    return make


@pytest.fixture
def sshd_device(make_sshd_device):
    return make_sshd_device()
# ============================================================================ end of SSH section


# =============================================================================================
# FLEET: several SSH devices, each a real sshd in its own network namespace (tests/netns.py)
#
#   make_fleet    (function) -> make(n, cpu=None, start=True, names=None) -> netns.Fleet:
#                               n devices dev0..dev{n-1}, each an sshd on its own IP
#                               (10.213.X.(10+i), port 22) behind its own veth on a private
#                               bridge, in its own cgroup v1 cpu group (set_cpu(fraction)).
#                               Falls back to sshd on 127.0.0.1 ports when namespaces are not
#                               permitted; a test marked @pytest.mark.netns is skipped then.
#                               Everything (sshd, device processes, namespaces, links, cgroups,
#                               mounts) is removed at teardown, also after a failure.
#   fleet4        (function) -> make_fleet(4)
# Skips (with the reason) when sshd is not installed or not running as root.
# =============================================================================================
@pytest.fixture(scope="session")
def _fleet_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sshd
    reason = sshd.sshd_missing_reason()
    if reason:
        missing_system(reason)
    base = tmp_path_factory.mktemp("fleet")
    sshd.make_keypair(base / "client_key", "edge-bench-fleet")
    return base


@pytest.fixture
def make_fleet(_fleet_base: Path, request: pytest.FixtureRequest):
    import netns
    if request.node.get_closest_marker("netns") is not None:
        reason = netns.netns_missing_reason()
        if reason:
            missing_system(f"needs network namespaces: {reason}")
    fleets = []

    def make(n: int, **kw):
        kw.setdefault("client_key", _fleet_base / "client_key")
        f = netns.start_fleet(_fleet_base, n, **kw)
        fleets.append(f)
        return f

    yield make
    for f in fleets:
        f.close()


@pytest.fixture
def fleet4(make_fleet):
    return make_fleet(4)
# ========================================================================== end of FLEET section


# =============================================================================================
# POSTGRESQL: a throwaway cluster (tests/pgserver.py), for the shared store and the job queue
#
#   pg_cluster (session)  -> pgserver.PgCluster: initdb + pg_ctl as the `postgres` user on
#                            127.0.0.1:<free port>, trust auth (except role edge_secret, which
#                            needs its password); .url(db) .create_db(name) .restart() .sql()
#   pg_url     (function) -> postgresql://postgres@127.0.0.1:PORT/<fresh database for this test>
# Skips (with the reason) when the server binaries, the postgres user or psycopg are missing.
# =============================================================================================
@pytest.fixture(scope="session")
def pg_cluster():
    import pgserver
    reason = pgserver.pg_missing_reason()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests: {reason} (see .ci/run)")
    if reason:
        pytest.skip(reason)
    c = pgserver.start_cluster()
    yield c
    pgserver.remove_cluster(c)


@pytest.fixture
def pg_url(pg_cluster, request: pytest.FixtureRequest) -> str:
    import re
    import uuid
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    return pg_cluster.create_db(name)
# ===================================================================== end of POSTGRESQL section
