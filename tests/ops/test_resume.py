"""A scan process killed with SIGKILL mid-way resumes with ``scan --resume`` to the same findings as an uninterrupted
scan, without re-reading the mailboxes it had finished (observed in the simulator's request log)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from scanner.store import Store
from scanner.sweep import run_scan_sync
from tests.conftest import make_sim_config, served_sim_toml
from tests.ops.recording import RecordingApp

USERS = 100


def toml(srv: Any, db: Path) -> str:
    return served_sim_toml(srv, db) + """[scan]
concurrency = 2  # chunks finish one after another, so the kill lands mid-scan (not after the last chunk)
"""


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("m365sweep")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from scanner.cli import main; main()", *args]


def stored_accounts(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from accounts").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def findings(out: Path) -> set[tuple[str, str, str, str]]:
    data = json.loads((out / "findings.json").read_text("utf-8"))
    return {(f["id"], f["account"], f["detector"], f["severity"]) for f in data["findings"]}


def test_kill_9_mid_scan_then_resume_gives_the_same_findings(tmp_path: Path) -> None:
    tenant = generate_tenant(users=USERS, seed=5, scenarios=True)
    rec = RecordingApp(create_app(tenant, SimOptions(latency_ms=25)))
    with SimulatorServer(rec, port=0) as srv:  # type: ignore[arg-type]
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token}
        db = tmp_path / "resume.db"
        cfg = tmp_path / "resume.toml"
        cfg.write_text(toml(srv, db), encoding="utf-8")

        proc = subprocess.Popen(cli("scan", "--config", str(cfg), "--out", str(tmp_path / "killed"), "-q"),
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while stored_accounts(db) < 40:  # two chunks of 20 are stored: kill it now
                assert time.monotonic() < deadline, "the scan stored no accounts in time"
                try:
                    proc.wait(timeout=0.05)  # the poll interval doubles as "did it exit early?"
                    raise AssertionError(f"scan finished before it could be killed: {proc.stderr.read()!r}")
                except subprocess.TimeoutExpired:
                    pass
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        with Store(db) as store:
            (scan,) = store.scans()
            assert scan["finished"] is None  # killed mid-way: an unfinished scan is the checkpoint
            done = store.done_upns(scan["id"])
        assert 40 <= len(done) < USERS
        done_keys = set()
        for upn in done:
            u = tenant.user(upn)
            done_keys |= {k.lower() for k in (u.id, u.userPrincipalName, getattr(u, "mail", None)) if k}

        rec.clear()
        res = subprocess.run(cli("scan", "--config", str(cfg), "--out", str(tmp_path / "resumed"), "--resume", "-q"),
                             env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        targets = rec.targets()
        assert targets, "the request log saw no per-mailbox reads"
        assert not (targets & done_keys), sorted(targets & done_keys)[:5]  # finished mailboxes were not re-read

        with Store(db) as store:
            (scan2,) = store.scans()  # the same scan, continued and finished — not a new one
            assert scan2["id"] == scan["id"] and scan2["finished"] and scan2["accounts_scanned"] == USERS

    # An uninterrupted scan of the same tenant (in-process: same simulator, no latency) gives the same findings.
    sim = make_sim_config(tmp_path / "full", tenant, create_app(tenant, SimOptions()))
    result = run_scan_sync(sim.cfg, out_dir=tmp_path / "full", **sim.kwargs)
    assert result.exit_code == 0 and result.accounts_scanned == USERS
    resumed, full = findings(tmp_path / "resumed"), findings(tmp_path / "full")
    assert resumed and resumed == full
