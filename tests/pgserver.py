"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl from Debian's `postgresql` package.

The server refuses to run as root, so as root it runs as the `postgres` user (runuser) in a
directory under /tmp that user owns. Auth: trust on 127.0.0.1 for everyone except the role
`edge_secret`, which must give its password (scram-sha-256), for the password tests.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from sshd import free_port

SECRET_USER = "edge_secret"
SECRET_PASSWORD = "s3cr3t-Pa55-do-not-print"
FLEET_NET = "10.213.0.0/16"    # tests/netns.py's private bridges


def _bindir() -> Optional[str]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def pg_missing_reason() -> Optional[str]:
    if _bindir() is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` user to run the server as (the server refuses root)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'edge-bench[team]')"
    return None


def _as_owner(argv: List[str]) -> List[str]:
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


class PgCluster:
    def __init__(self, base: Path, port: int) -> None:
        self.base, self.port = base, port
        self.data = base / "data"
        self.sock = base / "sock"
        self.log = base / "server.log"
        self.bindir = _bindir() or ""

    def url(self, db: str = "postgres", user: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://{user}@{host}:{self.port}/{db}"

    def _ctl(self, *args: str, timeout: float = 90) -> None:
        # listening on every address, but pg_hba lets in only loopback and the private
        # 10.213.0.0/16 bridges of the test fleets (tests/netns.py: workers in lab namespaces)
        opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=* -c fsync=off"
                " -c max_connections=200")
        subprocess.run(_as_owner([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l",
                                  str(self.log), "-w", "-t", "60", "-o", opts, *args]),
                       check=True, capture_output=True, timeout=timeout)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def sql(self, statement: str, db: str = "postgres") -> None:
        import psycopg
        with psycopg.connect(self.url(db), autocommit=True) as c:
            c.execute(statement)

    def create_db(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        self.sql(f'GRANT ALL ON SCHEMA public TO {SECRET_USER}', db=name)
        return self.url(name)


def start_cluster() -> PgCluster:
    base = Path(tempfile.mkdtemp(prefix="edge-bench-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    c = PgCluster(base, free_port())
    subprocess.run(_as_owner([f"{c.bindir}/initdb", "-D", str(c.data), "-A", "trust", "-U",
                              "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"]),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_owner(["mkdir", "-p", str(c.sock)]), check=True)
    hba = ("local all all trust\n"
           f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
           "host all all 127.0.0.1/32 trust\n"
           f"host all all {FLEET_NET} trust\n")
    subprocess.run(_as_owner(["sh", "-c", f"cat > {c.data}/pg_hba.conf"]), input=hba.encode(),
                   check=True)
    c.start()
    c.sql(f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}' CREATEDB")
    return c


def remove_cluster(c: PgCluster) -> None:
    try:
        c.stop("immediate")
    except (subprocess.SubprocessError, OSError):
        pass
    shutil.rmtree(c.base, ignore_errors=True)


def wait_for(pred, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `pred()` until it returns something truthy (the event itself, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
