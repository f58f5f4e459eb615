"""Issue 25 item 3: no password from a `--db` URL or libpq key=value string reaches a store row,
the --json file, a report, a site page, the queue or a printed message, whatever it contains
(`/ # @ : % ? &`, spaces, quotes, backslashes, unicode)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List
from urllib.parse import quote

import pytest

import team
from edge_bench.cli import main
from edge_bench.results.dburl import is_pg_url, redact, redact_argv

# every password is two marker halves around one hostile piece: neither half may be shown
HOSTILE = ["/", "#", "@", ":", "%", "%40", " ", "'", '"', "\\", "é✓", "?x=1&y", "@h/db:5#"]
HALVES = ("Zqv", "Xwk")


def _pw(piece: str) -> str:
    return HALVES[0] + piece + HALVES[1]


def _dsn_quote(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _assert_hidden(text: str, what: str = "") -> None:
    for half in HALVES:
        assert half not in text, f"{half!r} shown in {what}: {text!r}"


@pytest.mark.parametrize("piece", HOSTILE)
def test_redact_hides_hostile_passwords_in_every_form(piece: str) -> None:
    pw = _pw(piece)
    forms = [
        f"postgresql://bench:{pw}@db.lab:5432/bench",            # as typed, not encoded
        f"postgres://bench:{quote(pw, safe='')}@db.lab/bench",    # percent-encoded
        f"--db=postgresql://bench:{pw}@db.lab/bench?sslmode=require",
        f"postgresql://bench@db.lab/bench?sslmode=require&password={pw}",
        f"host=db.lab dbname=bench user=bench password={_dsn_quote(pw)} sslmode=require",
        f"host=db.lab password = {_dsn_quote(pw)}",
        f"PGPASSWORD={_dsn_quote(pw)}",
    ]
    if not any(c.isspace() or c in "'\\" for c in pw):
        forms.append(f"host=db.lab password={pw} dbname=bench")
    for form in forms:
        out = redact(form)
        _assert_hidden(out, form)
        assert "***" in out
    # what is not a secret stays readable
    assert redact(forms[0]) == "postgresql://bench:***@db.lab:5432/bench"
    assert "sslmode=require" in redact(forms[4]) and "host=db.lab" in redact(forms[4])
    _assert_hidden(" ".join(redact_argv(["edge-bench", "run", "--db", *forms])), "argv")


def test_key_value_strings_are_postgresql_not_sqlite_files() -> None:
    assert is_pg_url("host=db.lab dbname=bench password='a b'")
    assert is_pg_url(" dbname = bench")
    assert not is_pg_url("results/store.db") and not is_pg_url("./host=x.db")


def _everything(tmp: Path, db: str) -> List[str]:
    """Every store row (runs, results, the queue's jobs) and every file written under tmp."""
    import psycopg
    texts = []
    with psycopg.connect(db.split("?")[0]) as c:
        for table in ("runs", "results"):
            texts += [repr(r) for r in c.execute(f"SELECT * FROM {table}").fetchall()]
        if c.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]:
            texts += [repr(r) for r in c.execute("SELECT * FROM procrastinate_jobs").fetchall()]
    for f in tmp.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".html", ".csv", ".txt", ".svg"):
            texts.append(f.read_text(encoding="utf-8", errors="replace"))
    return texts


def test_no_password_in_store_json_report_site_queue_or_messages(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture, monkeypatch: Any) -> None:
    """On the real PostgreSQL server (trust auth: the password is carried, not checked): a run
    through an encoded URL and one through a key=value string, then every reader; a submit; and
    unencoded URLs, which are refused in one line that names no part of the password."""
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(tmp_path / "cache"))
    host_port, dbname = pg_url.split("@", 1)[1].rsplit("/", 1)
    host, port = host_port.split(":")
    pw = _pw("/#@: '\"\\é%")
    url = f"postgresql://postgres:{quote(pw, safe='')}@{host_port}/{dbname}"
    dsn = f"host={host} port={port} dbname={dbname} user=postgres password={_dsn_quote(pw)}"
    said = []
    for i, db in enumerate((url, dsn)):
        assert main(["run", *team.FAST, "--db", db, "--label", f"secret-{i}",
                     "--json", str(tmp_path / f"run{i}.json")]) == 0
        assert main(["history", "--db", db]) == 0
        assert main(["report", "last", "--db", db, "--html", str(tmp_path / f"r{i}.html"),
                     "--csv", str(tmp_path / f"r{i}.csv")]) == 0
        cap = capsys.readouterr()
        said += [cap.out, cap.err]
    assert main(["report", "--site", str(tmp_path / "site"), f"--db={url}"]) == 0
    assert main(["submit", *team.FAST, "--db", url, "--label", "queued"]) == 0
    cap = capsys.readouterr()
    said += [cap.out, cap.err]
    runs = team.query(pg_url, "SELECT argv FROM runs ORDER BY started_at")
    assert len(runs) == 3 and all("***" in r[0] for r in runs)
    argv = json.loads((tmp_path / "run1.json").read_text())["argv"]
    assert argv[argv.index("--db") + 1].startswith(f"host={host} port={port}")  # still readable
    for raw in (f"postgresql://postgres:{pw}@{host_port}/{dbname}",
                f"postgresql://postgres:{_pw('@')}@{host_port}/{dbname}"):
        assert main(["history", "--db", raw]) == 2
        cap = capsys.readouterr()
        assert len(cap.err.strip().splitlines()) == 1 and "percent-encoded" in cap.err, cap.err
        said += [cap.out, cap.err]
    for text in _everything(tmp_path, pg_url) + said:
        _assert_hidden(text, "output")


def test_a_password_an_older_version_stored_is_not_shown(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Rows written before argv was redacted: reading them (HTML report, site, compare) hides it."""
    import sqlite3
    from test_store import add_run, make_result
    from edge_bench.results.store import Store
    db = tmp_path / "old.sqlite"
    st = Store(db)
    add_run(st, "old", "2024-07-01T00:00:00+00:00", [make_result("fp32")])
    st.close()
    pw = _pw("/@#")
    raw = json.dumps(["edge-bench", "run", "--db", f"postgresql://u:{pw}@h/db"])
    with sqlite3.connect(db) as c:
        c.execute("UPDATE runs SET argv = ?", (raw,))
    assert main(["report", "last", "--db", str(db), "--html", str(tmp_path / "r.html")]) == 0
    assert main(["compare", "last", "last", "--db", str(db), "--json", "-"]) == 0
    assert main(["report", "--site", str(tmp_path / "site"), "--db", str(db)]) == 0
    cap = capsys.readouterr()
    texts = [cap.out, cap.err] + [f.read_text() for f in tmp_path.rglob("*")
                                  if f.is_file() and f.suffix in (".json", ".html")]
    for text in texts:
        _assert_hidden(text, "report of an old store")


def test_usage_errors_do_not_echo_a_password(capsys: pytest.CaptureFixture) -> None:
    """argparse quotes what it could not place: a URL typed without --db is one of those."""
    pw = _pw("/@")
    for argv in (["history", f"postgresql://u:{pw}@h/db"],
                 ["history", "--db", "host=h dbname=d", f"password={pw}"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments" in err
        _assert_hidden(err, "usage error")


def test_store_copy_does_not_carry_an_old_password(tmp_path: Path, pg_url: str) -> None:
    import sqlite3
    from test_store import add_run, make_result
    from edge_bench.results.store import Store
    db = tmp_path / "old.sqlite"
    st = Store(db)
    add_run(st, "old", "2024-07-01T00:00:00+00:00", [make_result("fp32")])
    st.close()
    raw = json.dumps(["edge-bench", "run", "--db", f"postgresql://u:{_pw('#')}@h/db"])
    with sqlite3.connect(db) as c:
        c.execute("UPDATE runs SET argv = ?", (raw,))
    assert main(["store", "copy", str(db), pg_url]) == 0
    for text in _everything(tmp_path / "none", pg_url):
        _assert_hidden(text, "copied store row")
