"""An emulated Raspberry Pi 4 (aarch64) for the test suite: a cached Debian bookworm arm64 root
filesystem with Python 3.11, numpy and the aarch64 LiteRT wheel, run under qemu-user.

Build it (or check the cached one) with the one command

    python tests/arm_rootfs.py

and run aarch64 Python with the command that `python_cmd(ensure_rootfs())` returns:

    qemu-aarch64-static -cpu cortex-a72 -L ROOTFS ROOTFS/usr/bin/python3.11

How it is built, without running any ARM code on the host and without touching binfmt_misc:
1. `debootstrap --foreign --variant=minbase --arch=arm64 --include=python3,... bookworm DIR`
   (debootstrap's default mirror). The first stage unpacks the essential packages and only
   downloads the others (the python3 ones among them); they are unpacked here with
   `dpkg-deb --fsys-tarfile | tar -x --keep-directory-symlink` (the plain `dpkg -x` would turn
   the merged-/usr `lib -> usr/lib` symlink into a directory and break the dynamic loader).
   Nothing is configured: no maintainer script runs (they would be ARM code).
2. `pip download --platform manylinux_2_27_aarch64 ... --only-binary=:all:` of numpy and
   ai-edge-litert (pinned to the host's versions, so outputs can be compared) and their deps;
   each wheel is a zip, unpacked into /usr/local/lib/python3.11/dist-packages.
3. The stdlib and the wheels are byte-compiled by the host's Python (same 3.11 bytecode) so
   the emulated interpreter does not compile them at every start.
4. A fake ARM /proc/cpuinfo (Cortex-A72 / BCM2711, the host's processor count) and
   /proc/device-tree/model: qemu's -L prefix serves ROOTFS paths first, and LiteRT's CPU
   detection crashes on the host's x86 cpuinfo.

The result is cached in a directory keyed by a hash of this recipe
(`~/.cache/edge-bench-test/arm-rootfs-<hash>`, or `$EDGE_BENCH_ARM_ROOTFS`), built in a
temporary directory beside it and renamed into place, so an interrupted build never leaves a
half rootfs behind. Host needs: `apt-get install qemu-user-static debootstrap` (plus
debian-archive-keyring and gpgv, which debootstrap recommends) and network access to Debian's
archive and PyPI for the first build only.

binfmt_misc is NOT registered (and must not be): the emulated Python cannot exec another
aarch64 program directly, so anything that starts a Python subprocess must use the full
`python_cmd()` argv.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

RECIPE_VERSION = 1
SUITE = "bookworm"
DEB_ARCH = "arm64"
PY_VERSION = "3.11"
# debootstrap resolves their dependencies (libssl3, libffi8, libexpat1, ...) itself.
DEB_INCLUDE = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
               "python3-minimal", "python3.11", "python3"]
WHEEL_PLATFORMS = ["manylinux_2_27_aarch64", "manylinux_2_28_aarch64",
                   "manylinux2014_aarch64", "manylinux_2_17_aarch64"]
QEMU = "qemu-aarch64-static"
QEMU_CPU = "cortex-a72"  # a Pi 4's core; `-cpu max` makes LiteRT slow and numpy noisy
BOARD_MODEL = "Raspberry Pi 4 Model B Rev 1.4"
APT_PACKAGES = ["qemu-user-static", "debootstrap", "debian-archive-keyring", "gpgv"]
STAMP = ".edge-bench-rootfs.json"
# Big and useless to an emulated benchmark device.
PRUNE = ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/locale", "usr/share/info"]


def _log(msg: str) -> None:
    print(f"[arm-rootfs] {msg}", file=sys.stderr, flush=True)


def _host_version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def wheel_requirements() -> List[str]:
    """numpy and ai-edge-litert pinned to the host's versions (so outputs compare like for like)."""
    reqs = []
    for dist in ("numpy", "ai-edge-litert"):
        v = _host_version(dist)
        reqs.append(f"{dist}=={v}" if v else dist)
    return reqs


def recipe() -> Dict[str, object]:
    return {"version": RECIPE_VERSION, "suite": SUITE, "arch": DEB_ARCH, "variant": "minbase",
            "include": DEB_INCLUDE, "python": PY_VERSION, "wheels": wheel_requirements(),
            "platforms": WHEEL_PLATFORMS, "prune": PRUNE, "board": BOARD_MODEL}


def recipe_hash() -> str:
    blob = json.dumps(recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def default_path() -> Path:
    env = os.environ.get("EDGE_BENCH_ARM_ROOTFS")
    if env:
        return Path(env).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "edge-bench-test" / f"arm-rootfs-{recipe_hash()}").resolve()


def missing_tools() -> List[str]:
    """Host commands the build or the run needs that are not installed."""
    need = [QEMU, "debootstrap", "dpkg-deb", "tar"]
    return [t for t in need if not _which(t)]


def _which(cmd: str) -> Optional[str]:
    # debootstrap lives in /usr/sbin, which a non-login PATH may lack.
    extra = os.pathsep.join(["/usr/sbin", "/sbin"])
    return shutil.which(cmd, path=os.environ.get("PATH", "") + os.pathsep + extra)


def is_ready(rootfs: Path) -> bool:
    return (rootfs / STAMP).is_file() and (rootfs / "usr/bin" / f"python{PY_VERSION}").exists()


def python_cmd(rootfs: Path) -> List[str]:
    """argv that runs the rootfs's aarch64 Python 3.11 under qemu-user (no binfmt needed)."""
    rootfs = Path(rootfs).resolve()
    return [_which(QEMU) or QEMU, "-cpu", QEMU_CPU, "-L", str(rootfs),
            str(rootfs / "usr/bin" / f"python{PY_VERSION}")]


def clean_env(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The host environment without variables that would point the aarch64 Python at host
    (x86_64) packages or that qemu would read."""
    env = dict(os.environ if env is None else env)
    for k in list(env):
        if k in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE") \
                or k.startswith("QEMU_") or k == "VIRTUAL_ENV":
            env.pop(k)
    return env


# ---------------------------------------------------------------------------------------------
# build steps

def _run(cmd: List[str], **kw) -> None:
    _log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-30:])
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{tail}")


def _debootstrap(root: Path) -> None:
    cmd = [_which("debootstrap") or "debootstrap", "--foreign", "--variant=minbase",
           f"--arch={DEB_ARCH}", "--include=" + ",".join(DEB_INCLUDE), SUITE, str(root)]
    _run(cmd)


def _unpack_downloaded_debs(root: Path) -> int:
    """Unpack every package the foreign first stage downloaded but did not extract."""
    dbs = root / "debootstrap"
    paths = {}
    for line in (dbs / "debpaths").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            paths[parts[0]] = parts[1]
    base = (dbs / "base").read_text().split()
    required = set((dbs / "required").read_text().split())
    n = 0
    for pkg in base:
        if pkg in required or pkg not in paths:
            continue
        deb = root / paths[pkg].lstrip("/")
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(root)],
                             stdin=dpkg.stdout, stderr=subprocess.PIPE)
        dpkg.stdout.close()
        if dpkg.wait() != 0 or tar.returncode != 0:
            raise RuntimeError(f"unpacking {deb.name} failed: {tar.stderr.decode()[-500:]}")
        n += 1
    return n


def _site_packages(root: Path) -> Path:
    return root / "usr/local/lib" / f"python{PY_VERSION}" / "dist-packages"


def _install_wheels(root: Path, wheel_dir: Path) -> List[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--dest", str(wheel_dir), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", PY_VERSION, "--abi", "cp" + PY_VERSION.replace(".", "")]
    for plat in WHEEL_PLATFORMS:
        cmd += ["--platform", plat]
    _run(cmd + wheel_requirements())
    site = _site_packages(root)
    site.mkdir(parents=True, exist_ok=True)
    names = []
    for whl in sorted(wheel_dir.glob("*.whl")):
        _unpack_wheel(whl, site, root)
        names.append(whl.name)
    return names


def _unpack_wheel(whl: Path, site: Path, root: Path) -> None:
    """A minimal wheel install: the zip into site-packages, `.data/{purelib,platlib}` merged in,
    `.data/scripts` into /usr/local/bin; file modes kept."""
    with zipfile.ZipFile(whl) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            parts = name.split("/")
            if parts[0].endswith(".data") and len(parts) > 2:
                kind, rest = parts[1], parts[2:]
                if kind in ("purelib", "platlib"):
                    dest = site.joinpath(*rest)
                elif kind == "scripts":
                    dest = root.joinpath("usr/local/bin", *rest)
                else:  # headers, data: not needed on a benchmark device
                    continue
            else:
                dest = site.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(dest, mode)


def _compile(root: Path) -> None:
    """Byte-compile with the host's Python 3.11 (same bytecode): the emulated interpreter would
    otherwise compile every stdlib module it imports, slowly, under emulation."""
    if sys.version_info[:2] != tuple(int(x) for x in PY_VERSION.split(".")):
        _log(f"host Python is not {PY_VERSION}: skipping byte-compilation")
        return
    targets = [root / "usr/lib" / f"python{PY_VERSION}", _site_packages(root)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "2", "-x",
                    r"/(test|tests|idlelib|lib2to3)/"]
                   + [str(t) for t in targets], stdout=subprocess.DEVNULL, check=False)


def fake_cpuinfo(ncpu: int) -> str:
    """/proc/cpuinfo as a Pi 4 (BCM2711, 4x Cortex-A72) running a 64-bit kernel shows it."""
    core = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
            "CPU part\t: 0xd08\nCPU revision\t: 3\n\n")
    body = "".join(core.format(i=i) for i in range(ncpu))
    return body + ("Hardware\t: BCM2835\nRevision\t: d03114\nSerial\t\t: 10000000c0ffee42\n"
                   f"Model\t\t: {BOARD_MODEL}\n")


def _write_fakes(root: Path) -> None:
    proc = root / "proc"
    if proc.is_symlink():  # debootstrap leaves proc -> /proc: writing through it hits the host
        proc.unlink()
    proc.mkdir(exist_ok=True)
    _write_cpuinfo(root)
    dt = proc / "device-tree"
    dt.mkdir(exist_ok=True)
    (dt / "model").write_bytes(BOARD_MODEL.encode() + b"\0")
    # the device-tree is also at /sys/firmware/devicetree/base on a real board
    fw = root / "sys/firmware/devicetree/base"
    fw.mkdir(parents=True, exist_ok=True)
    (fw / "model").write_bytes(BOARD_MODEL.encode() + b"\0")
    (root / "etc/hostname").write_text("pi4-emulated\n")


def _write_cpuinfo(root: Path) -> None:
    path = root / "proc/cpuinfo"
    if path.parent.is_symlink():
        raise RuntimeError(f"{path.parent} is a symlink; refusing to write through it")
    text = fake_cpuinfo(os.cpu_count() or 1)
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".cpuinfo.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _prune(root: Path) -> None:
    for rel in PRUNE:
        p = root / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            p.mkdir(parents=True, exist_ok=True)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_blocks * 512
    return total


def build(dest: Path) -> Path:
    """Build the rootfs into `dest` (which must not exist) atomically."""
    miss = missing_tools()
    if miss:
        raise RuntimeError(f"missing host tools {miss}: apt-get install {' '.join(APT_PACKAGES)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
    try:
        root = tmp / "root"
        _log(f"[1/5] debootstrap --foreign {SUITE} {DEB_ARCH} (minbase + python3) -> {root}")
        _debootstrap(root)
        _log(f"      {time.monotonic() - t0:.1f}s")
        n = _unpack_downloaded_debs(root)
        _log(f"[2/5] unpacked {n} downloaded packages (no maintainer scripts run)"
             f"  {time.monotonic() - t0:.1f}s")
        wheels = _install_wheels(root, tmp / "wheels")
        _log(f"[3/5] installed {len(wheels)} aarch64 wheels: {', '.join(wheels)}"
             f"  {time.monotonic() - t0:.1f}s")
        _prune(root)
        _write_fakes(root)
        _log(f"[4/5] fake /proc/cpuinfo ({os.cpu_count()} x Cortex-A72) and device-tree model")
        _compile(root)
        _log(f"[5/5] byte-compiled  {time.monotonic() - t0:.1f}s")
        stamp = dict(recipe(), hash=recipe_hash(), wheel_files=wheels,
                     built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     build_s=round(time.monotonic() - t0, 1))
        (root / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        try:
            os.rename(root, dest)
        except OSError:
            if not is_ready(dest):
                raise
            _log("another process finished the same rootfs first; using it")
        _log(f"built {dest} in {time.monotonic() - t0:.1f}s, {_du(dest) / 1e6:.0f} MB")
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_rootfs(path: Optional[Path] = None) -> Path:
    """Return a ready rootfs, building it the first time (about 30 s and 250 MB)."""
    dest = Path(path).resolve() if path else default_path()
    if is_ready(dest):
        _warn_if_stale(dest)
        _write_cpuinfo(dest)  # the processor count follows the host
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (parallel test workers)
        if is_ready(dest):
            return dest
        _check_replaceable(dest)
        if dest.exists():
            dest.rmdir()  # empty
        # builds killed half way (we hold the lock: nobody else is building this one)
        for stale in dest.parent.glob(f".{dest.name}.build-*"):
            _log(f"removing an interrupted build: {stale}")
            shutil.rmtree(stale, ignore_errors=True)
        return build(dest)


def _warn_if_stale(dest: Path) -> None:
    try:
        built = json.loads((dest / STAMP).read_text()).get("hash")
    except (OSError, ValueError):
        built = None
    if built != recipe_hash():
        _log(f"warning: {dest} was built from another recipe ({built} != {recipe_hash()});"
             " `python tests/arm_rootfs.py --rebuild` refreshes it")


def _check_replaceable(dest: Path) -> None:
    """Only an empty directory or a rootfs of ours may be replaced (EDGE_BENCH_ARM_ROOTFS could
    point anywhere)."""
    if dest.exists() and not (dest / STAMP).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise RuntimeError(f"{dest} exists and is not an edge-bench arm rootfs (no {STAMP});"
                           " refusing to touch it: remove it or choose another path")


def smoke(rootfs: Path) -> Dict[str, object]:
    """Run the emulated Python once; return what it reports."""
    code = ("import json, platform, sys, numpy, ai_edge_litert, ai_edge_litert.interpreter as I\n"
            "from importlib.metadata import version\n"
            "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),"
            " 'numpy': numpy.__version__, 'litert': version('ai-edge-litert'),"
            " 'litert_file': I.__file__}))\n")
    p = subprocess.run(python_cmd(rootfs) + ["-c", code], capture_output=True, text=True,
                       env=clean_env(), timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"emulated python failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Build (or reuse) the emulated Raspberry Pi 4 "
                                             "(aarch64) root filesystem for `pytest -m arm`.")
    ap.add_argument("--path", type=Path, help="rootfs directory (default: the recipe-keyed "
                    "cache, or $EDGE_BENCH_ARM_ROOTFS)")
    ap.add_argument("--rebuild", action="store_true", help="delete and rebuild")
    ap.add_argument("--no-check", action="store_true", help="skip the emulated import check")
    args = ap.parse_args(argv)
    dest = args.path.resolve() if args.path else default_path()
    if args.rebuild and dest.exists():
        try:
            _check_replaceable(dest)
        except RuntimeError as e:
            _log(f"error: {e}")
            return 1
        shutil.rmtree(dest)
    t0 = time.monotonic()
    try:
        root = ensure_rootfs(dest)
    except RuntimeError as e:
        _log(f"error: {e}")
        return 1
    _log(f"rootfs ready: {root}  ({time.monotonic() - t0:.1f}s)")
    if not args.no_check:
        t1 = time.monotonic()
        info = smoke(root)
        _log(f"emulated python: {info}  ({time.monotonic() - t1:.1f}s)")
    print(" ".join(python_cmd(root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
