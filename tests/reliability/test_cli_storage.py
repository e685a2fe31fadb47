"""The CLI under faults (a real process: exit code, stdout/stderr, outputs) and the storage guarantees.

- every fault class at once against a served simulator: the scan finishes, exit 3, every gap listed in findings.json,
  no traceback on stderr;
- the database is WAL and each chunk is one transaction; a process that dies right after a chunk was committed keeps
  it (the kill -9 + ``scan --resume`` test of the whole CLI is tests/ops/test_resume.py; the two-scans lock tests are
  tests/ops/test_locks.py and tests/ops/test_ops_cli.py);
- a damaged database (garbage, truncated) is one clear line and exit 2 for scan and report.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from scanner.store import Store, StoreError
from tests.conftest import served_sim_toml

VICTIM = "megan.bowen@contoso.com"


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("m365sweep")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from scanner.cli import main; main()", *args]


def toml(srv: Any, db: Path, extra: str = "") -> str:
    return served_sim_toml(srv, db, "[scan]\nmax_retries = 2\n" + extra)


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_cli_scan_under_every_fault_class_exits_3_and_lists_every_gap(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    users = [u.userPrincipalName for u in tenant.iter_users() if u.mailbox is not None][:6]
    f = tenant.faults
    f.add("/messageRules", kind="throttle", times=None, upn=users[0], retry_after="0.01")  # endless, fractional
    f.add("/authentication/methods", kind="status", status=503, times=None, upn=users[1], retry_after="0")
    f.add("Get-InboxRule", kind="reset", times=None, upn=users[2])
    f.add("/messageRules", kind="truncated", times=None, upn=users[3])
    f.add("Get-InboxRule", kind="malformed", times=None, upn=users[4])
    f.add("/mailFolders$", kind="status", status=504, times=None, upn=users[5], retry_after="0")
    f.add("^/v1.0/users$", kind="throttle", times=2, retry_after="0.05")  # recovered: no gap
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token}
        cfg = tmp_path / "c.toml"
        cfg.write_text(toml(srv, tmp_path / "s.db"))
        proc = run(["scan", "--config", str(cfg), "--out", str(tmp_path / "out"), "-q"], env)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.returncode == 3, proc.stderr
    data = json.loads((tmp_path / "out" / "findings.json").read_text("utf-8"))
    listed = {(e["account"], e["collector"]) for e in data["scan"]["errors"]}
    accounts = {a["userPrincipalName"].lower() for a in data["accounts"]}
    # Nothing lost: every user is in the report, or named in a gap, or a tenant-wide gap covers the rest.
    for u in tenant.iter_users():
        upn = u.userPrincipalName.lower()
        assert upn in accounts or any((a or "").lower() == upn for a, _ in listed), upn
    assert all(e["message"] for e in data["scan"]["errors"])
    assert "coverage gaps:" in proc.stdout


def test_database_is_wal_and_a_committed_chunk_survives_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import os
        from scanner.snapshot import AccountSnapshot, User
        from scanner.store import Store
        s = Store({str(db)!r})
        scan = s.begin_scan("t1", "crash test")
        s.put_accounts(scan, [AccountSnapshot(user=User(id=str(i), user_principal_name=f"u{{i}}@x.example"))
                              for i in range(20)])
        print(scan, flush=True)
        # a second chunk is being written when the process dies: nothing of it may be half-stored
        s.db.conn.execute("begin")
        s.db.conn.execute("insert into accounts (scan_id, upn) values (?, 'half@x.example')", [scan])
        os._exit(9)  # no close, no commit, no atexit: as good as kill -9
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 9, proc.stderr
    scan_id = proc.stdout.strip()
    with Store(db) as store:
        assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert store.unfinished_scan_id("t1") == scan_id  # resumable
        assert store.done_upns(scan_id) == {f"u{i}@x.example" for i in range(20)}


def test_an_exception_mid_chunk_writes_nothing_of_that_chunk(tmp_path: Path) -> None:
    from scanner.snapshot import AccountSnapshot, User

    class Boom(AccountSnapshot):
        def to_json(self) -> str:  # the 3rd snapshot of the chunk cannot be serialised
            raise RuntimeError("boom")

    with Store(tmp_path / "t.db") as store:
        scan = store.begin_scan("t1")
        store.put_accounts(scan, [AccountSnapshot(user=User(id="1", user_principal_name="a@x.example"))])
        chunk = [AccountSnapshot(user=User(id="2", user_principal_name="b@x.example")),
                 AccountSnapshot(user=User(id="3", user_principal_name="c@x.example")),
                 Boom(user=User(id="4", user_principal_name="d@x.example"))]
        with pytest.raises(RuntimeError):
            store.put_accounts(scan, chunk)
        assert store.done_upns(scan) == {"a@x.example"}


def _damaged(tmp_path: Path, kind: str) -> Path:
    db = tmp_path / "damaged.db"
    if kind == "garbage":
        db.write_bytes(os.urandom(64 * 1024))
    elif kind == "text":
        db.write_text("this is not a database\n" * 200)
    else:  # a real database cut in the middle
        with Store(db) as store:
            scan = store.begin_scan("t1")
            from scanner.snapshot import AccountSnapshot, User

            store.put_accounts(scan, [AccountSnapshot(user=User(id=str(i), user_principal_name=f"u{i}@x.example",
                                                                display_name="x" * 2000)) for i in range(300)])
            store.finish_scan(scan, "complete")
            store.db.execute("pragma wal_checkpoint(truncate)")
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    return db


@pytest.mark.parametrize("kind", ["garbage", "text", "truncated"])
def test_damaged_database_is_one_clear_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    db = _damaged(tmp_path, kind)
    cfg = tmp_path / "c.toml"
    cfg.write_text(textwrap.dedent(f"""
        [tenant]
        tenant_id = "contoso.onmicrosoft.com"
        [auth]
        method = "access_token"
        [endpoints]
        graph = "http://127.0.0.1:9"
        exchange = "http://127.0.0.1:9"
        [storage]
        database = "{db}"
        """))
    env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": "g" * 20, "M365SWEEP_EXCHANGE_TOKEN": "e" * 20}
    for args in (["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"],
                 ["report", "--config", str(cfg), "--out", str(tmp_path / "r")]):
        proc = run(args, env, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args[0], proc.stdout, proc.stderr)
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert str(db) in lines[0] and "internal error" not in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_store_raises_store_error_on_a_damaged_file(tmp_path: Path, kind: str) -> None:
    db = _damaged(tmp_path, kind)
    with pytest.raises(StoreError, match="damaged|cannot be used|not a database"):
        with Store(db) as store:
            store.latest_scan_id()
            list(store.iter_accounts(store.latest_scan_id() or ""))
            store.accounts(store.latest_scan_id() or "")


def test_database_left_by_another_program_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("create table accounts (x text)")
    con.commit()
    con.close()
    with pytest.raises(StoreError):
        Store(db)


def test_an_error_quoting_tenant_text_prints_one_inert_line(capsys: pytest.CaptureFixture[str]) -> None:
    from scanner.cli import UserError, _handle
    from scanner.graph.client import ApiError

    assert _handle(UserError("mailbox 'evil\x1b[2J\u202e' not found\nsecond line"), debug=False) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\u202e" not in err
    assert "\\u001b[2J\\u202e" in err
    denied = ApiError("Access denied for rule 'x\x07'", status=403, code="ErrorAccessDenied", service="exchange")
    assert _handle(denied, debug=False) == 2
    err = capsys.readouterr().err
    assert "\x07" not in err and "\\u0007" in err
