"""Files on a shared board: trust nothing another user can write (docs/security.md "Shared
boards"). ONE home for these rules, for the host (which runs WORKDIR_SCRIPT over its transport
before it pushes) and the agent (safe_workdir before it locks, read_checked for every file it
uses, BOOTSTRAP to start itself).

- A workdir is reached without trusting another user: every path component is looked at with
  lstat (never following a link blindly); a symlink is followed only if root or this user owns
  it; a directory others may write to (o+w) is passed only with the sticky bit and only if root
  or this user owns it (the owner of a sticky directory may still remove anything in it).
- The workdir itself is this user's and writable by no one else. A shared sticky directory
  (`/tmp/x`, mode 1777) is not used as is: the host makes a private 0700 directory
  `edge-bench-<uid>` inside it (mkdir, then lstat: a symlink or another user's directory there is
  refused) and works in that. Missing directories are made 0700.
- What is verified is what runs: BOOTSTRAP opens the agent with O_NOFOLLOW, checks that this user
  owns it and no one else may write it, reads it once, checks the sha256 of those bytes and runs
  THOSE bytes (from a memfd on Linux). Models and data are opened the same way (read_checked):
  hashed through the open descriptor, then used through it (/proc/self/fd/N), never by path.

Python >= 3.8 syntax, stdlib only (it runs on the device).
"""
from __future__ import annotations

import hashlib
import os
import stat
from typing import Optional, Tuple

from .protocol import AgentError

#: the private directory made inside a shared sticky workdir, `%d` = this user's uid
PRIVATE_NAME = "edge-bench-%d"
#: partial pushes (`.part-*` of SSH, `.tmp-*` of adb, `.*.part` of local) untouched this long
#: are left over from a killed push: WORKDIR_SCRIPT removes them from the workdir and blobs/
STALE_PART_MINUTES = 10
#: symlinks followed while resolving one workdir (as the kernel's ELOOP limit)
MAX_LINKS = 40


def _unsafe(text: str) -> AgentError:
    return AgentError("UnsafeWorkdir", text)


def others_can_write(st: os.stat_result, final: bool = True) -> bool:
    """Whether users other than the owner may write into this directory: world-writable, or
    (for the workdir itself, `final`) group-writable. A group-writable parent is trusted (Android's
    /data is system:system 0771)."""
    return bool(st.st_mode & (0o022 if final else 0o002))


def _lstat(path: str, want: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as e:
        raise _unsafe("cannot use the workdir %s: %s: %s" % (want, path, e.strerror or e))


def _make_dir(path: str, want: str) -> os.stat_result:
    """lstat of `path`, made 0700 first if missing (mkdir never follows a planted symlink)."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _unsafe("cannot use the workdir %s: %s: %s" % (want, path, e.strerror or e))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise _unsafe("cannot create the workdir %s: %s: %s" % (want, path, e.strerror or e))
    return _lstat(path, want)


def safe_workdir(workdir: str, private_in_shared: bool = False) -> str:
    """The workdir as a real absolute path (no symlinks), made 0700 where missing; AgentError
    UnsafeWorkdir saying why and what to do when another user could change what is in it.
    A shared sticky directory gives its private `edge-bench-<uid>` with `private_in_shared`
    (the host's choice, WORKDIR_SCRIPT), and is refused without (the agent is always given the
    private directory)."""
    want = os.path.abspath(os.path.expanduser(workdir))
    me = os.geteuid()
    parts = [c for c in want.split("/") if c]
    cur, links, st = "", 0, None
    while parts:
        c = parts.pop(0)
        if c == ".":
            continue
        if c == "..":
            cur = cur.rsplit("/", 1)[0]
            continue
        path = cur + "/" + c
        st = _make_dir(path, want)
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in (0, me):
                raise _unsafe("workdir %s: %s is a symlink of another user (uid %d), who can"
                              " point it anywhere at any time; refusing to follow it (use a"
                              " workdir of your own, e.g. under your home)" % (want, path,
                                                                               st.st_uid))
            links += 1
            if links > MAX_LINKS:
                raise _unsafe("workdir %s: too many symlinks" % want)
            target = os.readlink(path)
            if target.startswith("/"):
                cur = ""
            parts = [x for x in target.split("/") if x] + parts
            continue
        if not stat.S_ISDIR(st.st_mode):
            if not parts and path == want:
                raise _unsafe("workdir %s is not a directory" % want)
            raise _unsafe("workdir %s: %s is not a directory" % (want, path))
        if parts and others_can_write(st, final=False) and not st.st_mode & stat.S_ISVTX:
            raise _unsafe("workdir %s: %s is writable by everyone (mode %03o) without the sticky"
                          " bit, so others can replace anything in it; run `chmod o-w %s` on"
                          " the device (or use a private workdir)"
                          % (want, path, st.st_mode & 0o7777, path))
        if others_can_write(st, final=False) and parts and st.st_uid not in (0, me):
            raise _unsafe("workdir %s: %s is a shared directory of another user (uid %d), who"
                          " may remove or replace anything in it; use a workdir of your own"
                          % (want, path, st.st_uid))
        cur = path
    if not cur or st is None:
        raise _unsafe("workdir %s: the root directory cannot be a workdir" % want)
    return _final(cur, _lstat(cur, want), me, private_in_shared)   # (a last `..` moved up)


def _final(path: str, st: os.stat_result, me: int, private_in_shared: bool) -> str:
    """The workdir itself: this user's and writable by no one else, or (sticky) its private
    directory."""
    mode = st.st_mode & 0o7777
    if others_can_write(st):
        who = "everyone" if mode & 0o002 else "its group"
        if not mode & stat.S_ISVTX:
            raise _unsafe("workdir %s is writable by %s (mode %03o) without the sticky bit, so"
                          " others can plant symlinks or replace files in it; run `chmod go-w %s`"
                          " on the device (or use a private workdir)" % (path, who, mode, path))
        if st.st_uid not in (0, me):
            raise _unsafe("workdir %s is a shared directory of another user (uid %d), who may"
                          " remove or replace anything in it; use a workdir of your own"
                          % (path, st.st_uid))
        private = path + "/" + PRIVATE_NAME % me
        if not private_in_shared:
            raise _unsafe("workdir %s is shared (writable by %s, mode %03o); the agent works only"
                          " in a private directory such as %s" % (path, who, mode, private))
        pst = _make_dir(private, private)
        if not stat.S_ISDIR(pst.st_mode) or pst.st_uid != me or others_can_write(pst):
            raise _unsafe("%s in the shared workdir %s is not a private directory of this user"
                          " (%s, uid %d, mode %03o): someone else made it first; remove it or"
                          " use a workdir of your own" % (private, path, _kind(pst), pst.st_uid,
                                                          pst.st_mode & 0o7777))
        return private
    if st.st_uid != me:
        raise _unsafe("workdir %s belongs to another user (uid %d, this login is uid %d); give"
                      " each login its own workdir" % (path, st.st_uid, me))
    return path


def _kind(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    return "a directory" if stat.S_ISDIR(st.st_mode) else "not a directory"


def file_problem(st: os.stat_result, me: int) -> Optional[str]:
    """Why a file opened (O_NOFOLLOW) for use is not to be trusted, or None: it must be a
    regular file of this user that no one else may write."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != me:
        return "belongs to another user (uid %d, this login is uid %d)" % (st.st_uid, me)
    if st.st_mode & 0o022:
        return "is writable by others (mode %03o)" % (st.st_mode & 0o7777)
    return None


def open_checked(path: str, what: str) -> int:
    """An fd of `path` opened without following a symlink, checked by file_problem;
    AgentError FileMissing / UnsafeWorkdir otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise AgentError("FileMissing", "%s file is missing on the device: %s" % (what, path))
    except OSError as e:
        if os.path.islink(path):
            raise _unsafe("%s file %s is a symlink; refusing to follow it (remove it: rm %s)"
                          % (what, path, path))
        raise AgentError("FileMissing", "cannot open the %s file %s: %s" % (what, path, e))
    problem = file_problem(os.fstat(fd), os.geteuid())
    if problem:
        os.close(fd)
        raise _unsafe("%s file %s %s, so it may be swapped under us; refusing to use it (remove"
                      " it, or give each login its own workdir)" % (what, path, problem))
    return fd


def hash_fd(fd: int, keep: bool = False) -> Tuple[str, int, Optional[bytes]]:
    """(sha256, size, the bytes if `keep`) of everything read from `fd`, from its start."""
    h = hashlib.sha256()
    chunks = []
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        h.update(data)
        size += len(data)
        if keep:
            chunks.append(data)
    return h.hexdigest(), size, b"".join(chunks) if keep else None


def fd_path(fd: int) -> Optional[str]:
    """A path that opens the very file behind `fd` (Linux, Android), or None."""
    path = "/proc/self/fd/%d" % fd
    try:
        st, real = os.stat(path), os.fstat(fd)
    except OSError:
        return None
    return path if (st.st_dev, st.st_ino) == (real.st_dev, real.st_ino) else None


#: how the host starts the agent: `python -c BOOTSTRAP <agent path> <sha256> [agent args]`.
#: Refusals are one protocol `error` line (type UnsafeWorkdir / ChecksumMismatch) and exit 5.
BOOTSTRAP = r'''import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]
import hashlib, json, os, stat, types
def _no(kind, text):
    for e in ({"event": "error", "type": kind, "message": text, "task": None},
              {"event": "bye", "tasks": 0, "errors": 1}):
        e["proto"] = 1
        sys.stdout.write(json.dumps(e) + "\n")
    sys.stdout.flush()
    sys.exit(5)
p, want = sys.argv[1], sys.argv[2]
try:
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
except OSError as e:
    _no("FileMissing" if isinstance(e, FileNotFoundError) else "UnsafeWorkdir",
        "cannot open the agent %s without following links: %s" % (p, e))
st = os.fstat(fd)
if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
    _no("UnsafeWorkdir", "the agent %s is not a plain file of this user that only it may write"
        " (uid %d, mode %03o); refusing to run it (remove it: the next run pushes a fresh"
        " copy)" % (p, st.st_uid, st.st_mode & 0o7777))
buf = []
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    buf.append(b)
os.close(fd)
data = b"".join(buf)
if hashlib.sha256(data).hexdigest() != want:
    _no("ChecksumMismatch", "the agent %s has sha256 %s, expected %s; push it again"
        " (edge-bench deploy)" % (p, hashlib.sha256(data).hexdigest(), want))
run = p
if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
    try:
        m = os.memfd_create("edge-bench-agent")
        v = memoryview(data)
        while v:
            v = v[os.write(m, v):]
        run = "/proc/self/fd/%d" % m
    except OSError:  # no memfd in this kernel or policy: the checked file, in the private dir
        run = p
boot = types.ModuleType("edge_bench_boot")
boot.origin, boot.sha256, boot.runs = p, want, run
sys.modules["edge_bench_boot"] = boot
sys.argv = [run] + sys.argv[3:]
import runpy
runpy.run_path(run, run_name="__main__")
'''


def bootstrap_argv(agent_path: str, sha256: str) -> list:
    """The words after the device's python that run the agent at `agent_path` (whose content is
    `sha256`) through BOOTSTRAP."""
    return ["-c", BOOTSTRAP, agent_path, sha256]


def worker_argv() -> Optional[list]:
    """The words after python that start this agent again (a worker) through BOOTSTRAP, when
    this process was started by it; None otherwise."""
    import sys
    boot = sys.modules.get("edge_bench_boot")
    if boot is None:
        return None
    return bootstrap_argv(boot.origin, boot.sha256)  # type: ignore[attr-defined]


#: the host's check of a workdir on the device, run as `sh -c WORKDIR_SCRIPT sh <abs path>`
#: (POSIX sh + stat/readlink/id/find of coreutils, busybox or toybox). The same walk as
#: safe_workdir(private_in_shared=True); prints `ok <real path>` or `refuse <why and what to do>`,
#: then removes partial pushes left over from a killed push (STALE_PART_MINUTES).
WORKDIR_SCRIPT = r'''umask 077
me=$(id -u) || exit 3
want=$1
case $want in /*) ;; *) want=$(pwd -P)/$want;; esac
no() { echo "refuse workdir $want: $*"; exit 0; }
st() { s=$(stat -c '%u %f' -- "$1" 2>/dev/null) || return 1; set -- $s; o=$1; m=$((0x$2)); }
mk() { st "$1" || { mkdir -m 700 -- "$1" 2>/dev/null; st "$1"; } || no "cannot create $1"; }
rest=${want#/}; cur=; links=0; m=0; o=
while [ -n "$rest" ]; do
  c=${rest%%/*}
  case $rest in */*) rest=${rest#*/};; *) rest=;; esac
  case $c in ''|.) continue;; ..) cur=${cur%/*}; continue;; esac
  p=$cur/$c
  mk "$p"
  if [ $((m & 61440)) -eq 40960 ]; then
    [ "$o" = 0 ] || [ "$o" = "$me" ] || no "$p is a symlink of another user (uid $o), who can point it anywhere at any time; refusing to follow it (use a workdir of your own, e.g. under your home)"
    links=$((links + 1)); [ $links -le @LINKS@ ] || no "too many symlinks"
    l=$(readlink -- "$p") || no "cannot read the symlink $p"
    case $l in /*) cur=;; esac
    rest=${l#/}${rest:+/$rest}
    continue
  fi
  [ $((m & 61440)) -eq 16384 ] || no "$p is not a directory"
  if [ -n "$rest" ] && [ $((m & 2)) -ne 0 ] && [ $((m & 512)) -eq 0 ]; then
    no "$p is writable by everyone (mode $(printf %o $((m & 4095)))) without the sticky bit, so others can replace anything in it; run \`chmod o-w $p\` on the device (or use a private workdir)"
  fi
  if [ $((m & 2)) -ne 0 ] && [ -n "$rest" ]; then
    [ "$o" = 0 ] || [ "$o" = "$me" ] || no "$p is a shared directory of another user (uid $o), who may remove or replace anything in it; use a workdir of your own"
  fi
  cur=$p
done
[ -n "$cur" ] || no "the root directory cannot be a workdir"
st "$cur" || no "cannot stat $cur"
if [ $((m & 18)) -ne 0 ]; then
  [ $((m & 512)) -ne 0 ] || no "it is writable by others (mode $(printf %o $((m & 4095)))) without the sticky bit, so others can plant symlinks or replace files in it; run \`chmod go-w $cur\` on the device (or use a private workdir)"
  [ "$o" = 0 ] || [ "$o" = "$me" ] || no "$cur is a shared directory of another user (uid $o), who may remove or replace anything in it; use a workdir of your own"
  cur=$cur/@PRIVATE@
  mk "$cur"
  [ $((m & 61440)) -eq 16384 ] && [ "$o" = "$me" ] && [ $((m & 18)) -eq 0 ] || no "$cur in the shared workdir is not a private directory of this user (uid $o, mode $(printf %o $((m & 4095)))): someone else made it first; remove it or use a workdir of your own"
else
  [ "$o" = "$me" ] || no "it belongs to another user (uid $o, this login is uid $me); give each login its own workdir"
fi
if [ -e "$cur/blobs" ] || [ -L "$cur/blobs" ]; then
  st "$cur/blobs" || no "cannot stat $cur/blobs"
  [ $((m & 61440)) -eq 16384 ] && [ "$o" = "$me" ] && [ $((m & 18)) -eq 0 ] || no "$cur/blobs is not a private directory of this user (uid $o, mode $(printf %o $((m & 4095)))); remove it (rm -r $cur/blobs) and run again"
else
  mkdir -m 700 -- "$cur/blobs" 2>/dev/null
fi
echo "ok $cur"
find "$cur" "$cur/blobs" -maxdepth 1 -type f \( -name '*.part-*' -o -name '*.tmp-*' -o -name '.*.part' \) -mmin +@STALE@ -exec rm -f -- {} + 2>/dev/null
exit 0
'''.replace("@LINKS@", str(MAX_LINKS)).replace(
    "@PRIVATE@", PRIVATE_NAME.replace("%d", "$me")).replace("@STALE@", str(STALE_PART_MINUTES))
