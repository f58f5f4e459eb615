"""A fleet of SSH "devices" for tests and benchmarks: each one a real OpenSSH sshd in its own
network namespace with its own IP on a private bridge, reachable from the root namespace.

    from netns import start_fleet
    fleet = start_fleet(base_dir, 4, client_key=key)      # -> Fleet
    fleet.devices[0].ip, .sshd (sshd.SSHD), .link_down(), .set_cpu(0.1), .pids("agent-")
    fleet.close()                                          # always: also after failures

Layout (names carry this process's pid in base 36, so parallel runs never collide and a later
run removes what a killed run left behind):

    root ns:  bridge  ebt<pid>.<k>b   10.213.X.1/24
              veth    ebt<pid>.<k>h<i>  --(peer)-->  ns ebt<pid>.<k>n<i>: eth0 10.213.X.(10+i)/24
    ns i:     sshd listening on 10.213.X.(10+i):22, and lo

Addresses are only ever assigned inside these namespaces and on the private bridge; X is picked
so that 10.213.X.0/24 is not in use on this machine.

CPU: every device gets its own cgroup v1 `cpu` group (when the controller is mounted and
writable) holding its sshd, so every session, agent and worker it forks is in it too (each
device weighs like one ordinary process: the groups' cpu.shares are set accordingly);
`set_cpu(fraction)` writes cpu.cfs_quota_us to hold the device to a slice of a CPU, the way a
real fleet is bound by its boards. The group is also how the fixture finds a device's processes
(`pids()`), even after they were orphaned by a killed sshd.

Where namespaces are not permitted (not root, no `ip`, a sandbox without CAP_SYS_ADMIN), the
fleet falls back to sshd instances on 127.0.0.1 with distinct ports (`fleet.netns` is False):
everything works except `link_down()`, which needs a link to pull. EDGE_BENCH_TEST_NETNS=0
forces that fallback.
"""
from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import sshd as sshd_mod

_PID = os.getpid()
_LOCK = threading.Lock()
_COUNTER = [0]
_LIVE: List["Fleet"] = []
_NAME_RE = re.compile(r"^ebt([0-9a-z]+)\.")
CGROUP_GROUP = "edge-bench-test"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _sh(argv: Sequence[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# ---------------------------------------------------------------------------- capabilities
_NETNS_REASON: List[Optional[str]] = []


def netns_missing_reason() -> Optional[str]:
    """Why network namespaces cannot be used here, or None when they can (cached)."""
    if _NETNS_REASON:
        return _NETNS_REASON[0]
    reason: Optional[str] = None
    if os.environ.get("EDGE_BENCH_TEST_NETNS", "1") == "0":
        reason = "disabled by EDGE_BENCH_TEST_NETNS=0"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    elif not shutil.which("ip"):
        reason = "iproute2 (`ip`) is not installed"
    else:
        probe = f"ebt{_b36(_PID)}.probe"
        r = _sh(["ip", "netns", "add", probe], check=False)
        if r.returncode != 0:
            reason = f"cannot create a network namespace: {r.stderr.strip()}"
        else:
            r2 = _sh(["ip", "link", "add", f"ebt{_b36(_PID)}.pb", "type", "bridge"], check=False)
            if r2.returncode != 0:
                reason = f"cannot create a bridge: {r2.stderr.strip()}"
            else:
                _sh(["ip", "link", "del", f"ebt{_b36(_PID)}.pb"], check=False)
            _sh(["ip", "netns", "del", probe], check=False)
    _NETNS_REASON.append(reason)
    return reason


def cgroup_cpu_root() -> Optional[Path]:
    """The mount point of the cgroup v1 `cpu` controller, if it is there and writable."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "cgroup" and "cpu" in parts[3].split(","):
            p = Path(parts[1])
            if (p / "cpu.cfs_quota_us").exists() and os.access(p, os.W_OK):
                return p
    return None


def cleanup_stale() -> None:
    """Remove namespaces, links and cgroups left by test processes that no longer run."""
    def stale(name: str) -> bool:
        m = _NAME_RE.match(name)
        if not m:
            return False
        try:
            pid = int(m.group(1), 36)
        except ValueError:
            return False
        return pid != _PID and not _pid_alive(pid)

    if shutil.which("ip") and os.geteuid() == 0:
        r = _sh(["ip", "netns", "list"], check=False)
        for line in r.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if stale(name):
                _kill_netns_pids(name)
                _sh(["ip", "netns", "del", name], check=False)
        r = _sh(["ip", "-o", "link", "show"], check=False)
        for line in r.stdout.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                name = parts[1].strip().split("@")[0]
                if stale(name):
                    _sh(["ip", "link", "del", name], check=False)
    root = cgroup_cpu_root()
    if root is not None and (root / CGROUP_GROUP).is_dir():
        for d in (root / CGROUP_GROUP).iterdir():
            if d.is_dir() and stale(d.name):
                _remove_cgroup_tree(d)


def _kill_netns_pids(ns: str) -> None:
    r = _sh(["ip", "netns", "pids", ns], check=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def _cgroup_pids(cg: Path) -> List[int]:
    try:
        return [int(x) for x in (cg / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _remove_cgroup_tree(cg: Path) -> None:
    for sub in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _empty_cgroup(sub)
        try:
            sub.rmdir()
        except OSError:
            pass
    _empty_cgroup(cg)
    try:
        cg.rmdir()
    except OSError:
        pass


def _empty_cgroup(cg: Path) -> None:
    for _ in range(50):
        pids = _cgroup_pids(cg)
        if not pids:
            return
        for pid in pids:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.05)


# ---------------------------------------------------------------------------- processes
def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _children_map() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


# ---------------------------------------------------------------------------- fleet
@dataclass
class FleetDevice:
    """One device of a fleet."""

    fleet: "Fleet"
    index: int
    name: str                       # device name for devices.yaml (dev0, dev1, ...)
    ip: str
    port: int
    sshd: Any                       # sshd.SSHD
    ns: Optional[str] = None        # network namespace (None in loopback mode)
    veth: Optional[str] = None      # root-side end of its veth pair (on the bridge)
    cgroup: Optional[Path] = None   # its cgroup v1 cpu group
    mounts: List[str] = field(default_factory=list)

    # -- network
    def link_down(self) -> None:
        """Pull the cable: the device stays up, packets stop (open streams do not notice)."""
        if not self.veth:
            raise RuntimeError("link_down needs network namespaces (fleet is in loopback mode)")
        _sh(["ip", "link", "set", self.veth, "down"])

    def link_up(self) -> None:
        if self.veth:
            _sh(["ip", "link", "set", self.veth, "up"])

    # -- cpu
    def set_cpu(self, fraction: Optional[float], period_us: int = 100_000) -> None:
        """Hold the device to `fraction` of one CPU (None: unlimited)."""
        if self.cgroup is None:
            raise RuntimeError("no writable cgroup v1 cpu controller on this machine")
        (self.cgroup / "cpu.cfs_period_us").write_text(str(int(period_us)))
        quota = -1 if fraction is None else max(1000, int(period_us * fraction))
        (self.cgroup / "cpu.cfs_quota_us").write_text(str(quota))

    def cpu_stat(self) -> Dict[str, int]:
        """cpu.stat of its cgroup: nr_periods, nr_throttled, throttled_time (ns)."""
        if self.cgroup is None:
            return {}
        out: Dict[str, int] = {}
        for line in (self.cgroup / "cpu.stat").read_text().splitlines():
            k, _, v = line.partition(" ")
            try:
                out[k] = int(v)
            except ValueError:
                pass
        return out

    # -- processes
    def pids(self, contains: str = "") -> List[int]:
        """Live (not zombie) processes of this device whose command line contains `contains`:
        its sshd and everything it started, found through the device's cgroup (orphans too),
        or as the sshd's descendants when there is no cgroup."""
        if self.cgroup is not None:
            cand = _cgroup_pids(self.cgroup)
        else:
            kids = _children_map()
            root = self.sshd.pid
            cand, todo = [], [root] if root else []
            while todo:
                p = todo.pop()
                cand.append(p)
                todo.extend(kids.get(p, []))
        return [p for p in cand if p != os.getpid() and _proc_state(p) not in ("Z", "X")
                and contains in proc_cmdline(p)]

    def agent_pids(self) -> List[int]:
        """The agent (job) and worker processes running on this device."""
        return [p for p in self.pids() if re.search(r"agent-[0-9a-f]+\.pyz", proc_cmdline(p))]

    def wait_for(self, contains: str, timeout: float = 60.0) -> List[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.pids(contains)
            if found:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no process matching {contains!r} within {timeout} s")

    def kill_sshd(self) -> None:
        """Kill the listener and every session sshd of this device (the agent is orphaned)."""
        listener = self.sshd.pid
        targets = [p for p in self.pids() if proc_cmdline(p).startswith(("sshd", "/usr/sbin/sshd"))]
        if listener:
            targets.append(listener)
        for p in set(targets):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def enter(self) -> List[str]:
        """argv prefix that runs a command in this device's mount+net namespaces (its sshd's)."""
        pid = self.sshd.pid
        if pid is None:
            raise RuntimeError(f"{self.name}: sshd not running")
        return ["nsenter", "-t", str(pid), "-m", "-n"] if self.ns else []

    def mount_tmpfs(self, path: str, size: str = "100k") -> None:
        """A tiny tmpfs at `path`, visible to this device's sshd and its sessions only (mounted in
        its own mount namespace when there is one). Unmounted by close()."""
        Path(path).mkdir(parents=True, exist_ok=True)
        _sh([*self.enter(), "mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", path])
        self.mounts.append(path)

    @property
    def workdir(self) -> Path:
        """The default workdir of this device (a fresh directory per fleet)."""
        return self.fleet.base / f"d{self.index}-workdir"

    def device_yaml(self, **extra: Any) -> Dict[str, Any]:
        """The devices.yaml entry for this device."""
        d: Dict[str, Any] = {"transport": "ssh", "host": self.ip, "port": self.port,
                             "user": self.sshd.user, "key": str(self.sshd.client_key),
                             "known_hosts": str(self.sshd.known_hosts),
                             "python": list(self.sshd.python),
                             "workdir": str(self.workdir),
                             "retries": 0, "connect_timeout_s": 5, "tags": ["fleet"]}
        d.update(extra)
        return d


class Fleet:
    """N SSH devices; see the module docstring. Use as a context manager or call close()."""

    def __init__(self, base: Path, prefix: str, netns: bool, subnet: Optional[str],
                 cgroup: Optional[Path]) -> None:
        self.base = base
        self.prefix = prefix
        self.netns = netns
        self.subnet = subnet          # "10.213.X" or None
        self.bridge = f"{prefix}b" if netns else None
        self.cgroup = cgroup
        self.devices: List[FleetDevice] = []
        self._closed = False

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, i: int) -> FleetDevice:
        return self.devices[i]

    def __len__(self) -> int:
        return len(self.devices)

    def write_yaml(self, path: Path, per_device: Optional[Dict[str, Dict[str, Any]]] = None,
                   **common: Any) -> Path:
        """devices.yaml for the whole fleet; `per_device` = {name: {field: value}}."""
        import yaml
        devs = {}
        for d in self.devices:
            entry = d.device_yaml(**common)
            entry.update((per_device or {}).get(d.name, {}))
            devs[d.name] = entry
        Path(path).write_text(yaml.safe_dump({"version": 1, "devices": devs}, sort_keys=False))
        return Path(path)

    def close(self) -> None:
        """Stop every sshd, kill every process of the devices, delete namespaces, links,
        cgroups and mounts. Safe to call twice; never raises."""
        if self._closed:
            return
        self._closed = True
        for d in self.devices:
            for m in reversed(d.mounts):
                try:
                    if d.sshd.pid and d.ns:
                        _sh([*d.enter(), "umount", "-l", m], check=False)
                    else:
                        _sh(["umount", "-l", m], check=False)
                except Exception:  # noqa: BLE001
                    pass
            try:
                d.sshd.stop()
            except Exception:  # noqa: BLE001
                pass
            if d.cgroup is not None:
                _empty_cgroup(d.cgroup)
            if d.ns:
                _kill_netns_pids(d.ns)
        for d in self.devices:
            if d.ns:
                _sh(["ip", "netns", "del", d.ns], check=False)
            if d.veth:
                _sh(["ip", "link", "del", d.veth], check=False)
        if self.bridge:
            _sh(["ip", "link", "del", self.bridge], check=False)
        if self.cgroup is not None:
            _remove_cgroup_tree(self.cgroup)
            try:
                reweigh_devices(self.cgroup.parent.parent)
            except OSError:
                pass
        with _LOCK:
            if self in _LIVE:
                _LIVE.remove(self)


def _free_subnet(start: int) -> str:
    used = _sh(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    used += _sh(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    for k in range(255):
        x = (start + k) % 250 + 1
        if f"10.213.{x}." not in used:
            return f"10.213.{x}"
    raise RuntimeError("no free 10.213.X.0/24 subnet")


def start_fleet(base_dir: Path, n: int, *, client_key: Optional[Path] = None,
                netns: Optional[bool] = None, cpu: Optional[float] = None,
                cpu_period_us: int = 100_000, start: bool = True,
                names: Optional[Sequence[str]] = None) -> Fleet:
    """Start `n` SSH devices (see the module docstring).

    netns: None = namespaces when permitted, else loopback; True = require them.
    cpu: hold every device to this fraction of one CPU (cgroup quota); None = unlimited.
    start: False creates the devices' sshd configs but leaves them stopped
    (call `dev.sshd.restart()` to start one)."""
    reason = sshd_mod.sshd_missing_reason()
    if reason:
        raise RuntimeError(reason)
    cleanup_stale()
    use_ns = (netns_missing_reason() is None) if netns is None else netns
    if use_ns and netns_missing_reason():
        raise RuntimeError(netns_missing_reason())
    with _LOCK:
        _COUNTER[0] += 1
        k = _COUNTER[0]
    prefix = f"ebt{_b36(_PID)}.{_b36(k)}"
    base = Path(base_dir) / prefix
    base.mkdir(parents=True, exist_ok=True)
    key = Path(client_key) if client_key else sshd_mod.make_keypair(base / "client_key")
    cg_root = cgroup_cpu_root()
    cg: Optional[Path] = None
    if cg_root is not None:
        cg = cg_root / CGROUP_GROUP / prefix
        try:
            cg.mkdir(parents=True, exist_ok=True)
            # cpu.shares are hierarchical: left at the default 1024, ALL devices together would
            # weigh as much as one process of the root group, and any other load on the machine
            # would starve the fleet far below its quotas. Weigh every device as one process.
            _set_shares(cg, 1024 * max(1, n))
            reweigh_devices(cg_root)
        except OSError:
            cg = None
    claim = open(Path(tempfile.gettempdir()) / "edge-bench-test-subnets.lock", "a")
    try:
        # parallel test workers (pytest -n): a subnet is chosen and taken (its bridge address
        # set) under one lock, so two fleets never pick the same free one
        fcntl.flock(claim, fcntl.LOCK_EX)
        subnet = _free_subnet(_PID + 7 * k) if use_ns else None
        fleet = Fleet(base, prefix, use_ns, subnet, cg)
        with _LOCK:
            _LIVE.append(fleet)
        try:
            if use_ns:
                br = fleet.bridge
                assert br and subnet
                _sh(["ip", "link", "add", br, "type", "bridge"])
                _sh(["ip", "addr", "add", f"{subnet}.1/24", "dev", br])
                _sh(["ip", "link", "set", br, "up"])
        except BaseException:
            fleet.close()
            raise
    finally:
        claim.close()
    try:
        for i in range(n):
            name = names[i] if names else f"dev{i}"
            ns = veth = None
            if use_ns:
                ns, veth, peer = f"{prefix}n{i}", f"{prefix}h{i}", f"{prefix}p{i}"
                ip, port = f"{subnet}.{10 + i}", 22
                _sh(["ip", "netns", "add", ns])
                _sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
                _sh(["ip", "link", "set", veth, "master", fleet.bridge])
                _sh(["ip", "link", "set", veth, "up"])
                _sh(["ip", "link", "set", peer, "netns", ns])
                _sh(["ip", "-n", ns, "link", "set", peer, "name", "eth0"])
                _sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
                _sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
                _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
                wrapper: Sequence[str] = ["ip", "netns", "exec", ns]
            else:
                ip, port, wrapper = "127.0.0.1", None, ()
            dcg: Optional[Path] = None
            if cg is not None:
                dcg = cg / f"d{i}"          # device names may hold any character
                dcg.mkdir(exist_ok=True)
            srv = sshd_mod.start_sshd(base, host=ip, port=port, client_key=key, wrapper=wrapper,
                                      name=f"d{i}")
            dev = FleetDevice(fleet=fleet, index=i, name=name, ip=ip, port=srv.port, sshd=srv,
                              ns=ns, veth=veth, cgroup=dcg)
            fleet.devices.append(dev)
            _adopt(dev)
            if cpu is not None and dcg is not None:
                dev.set_cpu(cpu, cpu_period_us)
            if not start:
                srv.stop()
        # restart() must put the new sshd into the cgroup too
        for dev in fleet.devices:
            _hook_restart(dev)
    except BaseException:
        fleet.close()
        raise
    return fleet


def _set_shares(cg: Path, shares: int) -> None:
    f = cg / "cpu.shares"
    if f.exists():
        try:
            f.write_text(str(max(2, min(shares, 262144))))
        except OSError:
            pass


def reweigh_devices(cg_root: Path) -> int:
    """Give the group of all fleets the weight of the devices now in it (1024 each: one
    ordinary process each), and return it. Not more: the group once weighed 64 processes, and
    then three busy devices on two cores left `edge-bench run` in the root group ~1.5% of the
    CPU (with the kernel's autogroup, the whole test session weighs one process): a controller
    frozen for 10-20 s while its devices went on timing (a SIGTERM acted on 28 s late)."""
    group = cg_root / CGROUP_GROUP
    total = 0
    for fleet in group.iterdir() if group.is_dir() else ():
        f = fleet / "cpu.shares"
        if fleet.is_dir() and f.exists():
            try:
                total += int(f.read_text().strip() or 0)
            except (OSError, ValueError):
                pass
    shares = max(1024, total)
    _set_shares(group, shares)
    return shares


def _adopt(dev: FleetDevice) -> None:
    """Move the device's sshd listener into its cgroup (its children will follow), and give it
    a board's light login shell (see _light_shell_rc)."""
    pid = dev.sshd.pid
    if dev.cgroup is not None and pid:
        (dev.cgroup / "cgroup.procs").write_text(str(pid))
    if dev.ns and pid:
        _light_shell_rc(dev)


def _light_shell_rc(dev: FleetDevice) -> None:
    """Bash sources ~/.bashrc for every command run over SSH. This host's root ~/.bashrc runs
    `pyenv init` (about 110 ms of CPU and a `pyenv rehash` behind a global lock file, per
    command), which no board does and which serializes a fleet of devices sharing that home.
    Inside the device's own mount namespace only, an empty rc file is bind-mounted over it."""
    import pwd
    try:
        home = Path(pwd.getpwnam(dev.sshd.user).pw_dir)
    except KeyError:
        return
    empty = dev.fleet.base / "empty-shell-rc"
    if not empty.exists():
        empty.write_text("# a device's login shell: nothing to do\n")
    for rc in (".bashrc",):
        target = home / rc
        if target.is_file():
            _sh([*dev.enter(), "mount", "--bind", str(empty), str(target)], check=False)


def _hook_restart(dev: FleetDevice) -> None:
    srv = dev.sshd
    orig = srv.restart

    def restart() -> None:
        orig()
        _adopt(dev)

    srv.restart = restart  # type: ignore[method-assign]


@atexit.register
def _close_all() -> None:
    for f in list(_LIVE):
        f.close()
