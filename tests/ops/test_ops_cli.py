"""The operations side of the CLI: `scan` with two --config values against two served simulators, a second scan of a
tenant whose scan is running (clear message, exit 2), `schedule` refusing a bad cron with exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import main
from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from tests.ops.receiver import Receiver
from tests.ops.test_resume import cli, stored_accounts


class Gate:
    """ASGI wrapper: requests whose path contains ``part`` wait until the test opens the gate (``arrived`` tells the
    test one is waiting), so a test can act while a scan is known to be in flight."""

    def __init__(self, app: Any, part: str) -> None:
        self.app, self.part = app, part
        self.arrived, self.opened = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:  # tenant, graph_token, exchange_token … of the simulator app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.part in scope["path"] and not self.opened.is_set():
            self.arrived.set()
            await asyncio.to_thread(self.opened.wait, 120)
        await self.app(scope, receive, send)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 2)), out, err


def toml(srv: Any, db: Path, name: str, extra: str = "") -> str:
    return (f'[tenant]\ntenant_id = "{srv.tenant_id}"\nname = "{name}"\n[auth]\nmethod = "access_token"\n'
            f'[endpoints]\ngraph = "{srv.graph_url}"\nexchange = "{srv.exchange_url}"\n'
            f'[storage]\ndatabase = "{db}"\n{extra}')


def test_scan_two_configs_two_databases_two_reports_one_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # access_token auth reads one token pair from the environment, so both configs point at one served simulated
    # tenant under two labels (separately simulated tenants, with per-tenant credentials: test_tenants.py).
    tenant = generate_tenant(users=25, seed=41, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        confs = tmp_path / "tenants"
        confs.mkdir()
        (confs / "alpha.toml").write_text(toml(srv, tmp_path / "alpha.db", "Alpha"))
        (confs / "beta.toml").write_text(toml(srv, tmp_path / "beta.db", "Beta <EU>"))
        code, out, err = run_cli(["scan", "--config", str(confs / "alpha.toml"), "--config",
                                  str(confs / "beta.toml"), "--out", str(tmp_path / "o"), "-q"], capsys)
        assert code == 0, err
        code2, out2, err2 = run_cli(["scan", "--config", str(confs), "--out", str(tmp_path / "o2"), "-q"], capsys)
        assert code2 == 0, err2
    assert (tmp_path / "alpha.db").is_file() and (tmp_path / "beta.db").is_file()
    for root in (tmp_path / "o", tmp_path / "o2"):
        for d in ("Alpha", "Beta_EU"):
            assert (root / d / "report.html").is_file() and (root / d / "findings.json").is_file()
        summary = json.loads((root / "summary.json").read_text())
        assert [t["label"] for t in summary["tenants"]] == ["Alpha", "Beta <EU>"]
        n = {t["accounts_scanned"] for t in summary["tenants"]}
        assert len(n) == 1 and n.pop() >= 25 and all(t["exit_code"] == 0 for t in summary["tenants"])
        assert "Beta &lt;EU&gt;" in (root / "summary.html").read_text()
    assert "Alpha: " in out and " accounts, " in out and "summary: " in out


def test_second_scan_of_a_running_tenant_exits_2_with_a_clear_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = generate_tenant(users=100, seed=5, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions(latency_ms=25)), port=0) as srv:
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token}
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        db = tmp_path / "t.db"
        cfg = tmp_path / "t.toml"
        cfg.write_text(toml(srv, db, "Contoso"))
        first = subprocess.Popen(cli("scan", "--config", str(cfg), "--out", str(tmp_path / "o1"), "-q"), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while stored_accounts(db) < 1:  # the first scan holds the lock and is collecting
                assert time.monotonic() < deadline and first.poll() is None
                try:
                    first.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            code, out, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o2"), "-q"], capsys)
            assert first.poll() is None, "the first scan ended before the second one was tried"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("error: another scan of tenant Contoso is already running")
    assert f"pid {first.pid}" in lines[0]
    assert not (tmp_path / "o2").exists()


def test_schedule_refuses_a_bad_cron_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "access_token"\n'
                   '[schedule]\ncron = "0 25 * * *"\n')
    code, out, err = run_cli(["schedule", "--config", str(cfg)], capsys)
    assert code == 2 and err.startswith("error: ") and "schedule.cron" in err and "Traceback" not in err


def test_single_tenant_scan_notifies_the_webhook(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = generate_tenant(users=30, seed=9, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv, Receiver() as rx:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        monkeypatch.setenv("TEAMS_HOOK", rx.url)
        cfg = tmp_path / "t.toml"
        cfg.write_text(toml(srv, tmp_path / "t.db", "Contoso",
                            '[notify]\nwebhook_url_env = "TEAMS_HOOK"\nformat = "teams"\nmin_severity = "critical"\n'))
        code, out, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
        assert code == 0, err
        assert rx.wait_for(1)
    card = rx.received[0]["attachments"][0]["content"]
    crit = [f for f in json.loads((tmp_path / "o" / "findings.json").read_text())["findings"]
            if f["severity"] == "critical" and not f.get("suppressed")]
    assert card["body"][0]["text"] == f"m365sweep: first scan, {len(crit)} finding(s) in Contoso"
    assert "SECRETPART" not in out + err


def test_schedule_command_runs_now_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    tenant = generate_tenant(users=20, seed=12, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv, Receiver() as rx:
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token,
               "HOOK": rx.url}
        db = tmp_path / "t.db"
        cfg = tmp_path / "t.toml"
        cfg.write_text(toml(srv, db, "Contoso", '[notify]\nwebhook_url_env = "HOOK"\nmin_severity = "high"\n'
                                              '[logging]\nformat = "json"\n'))
        proc = subprocess.Popen(cli("schedule", "--config", str(cfg), "--out", str(tmp_path / "o"), "--run-now"),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert rx.wait_for(1, timeout=120), "the immediate scheduled run sent no notification"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "o" / "report.html").is_file()
    assert "scheduled Contoso: cron '0 2 * * *' (UTC)" in err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("scheduled scan of Contoso done" in r["message"] for r in logs)
    assert srv.graph_token not in err and "SECRETPART" not in err


def test_sigterm_during_a_scheduled_scan_lets_that_scan_finish_then_exits(tmp_path: Path) -> None:
    # systemd's stop: scheduling ends at once, but the scan in flight is finished and stored, not cut off.
    tenant = generate_tenant(users=20, seed=13, scenarios=True)
    gate = Gate(create_app(tenant, SimOptions()), "/adminapi/")
    with SimulatorServer(gate, port=0) as srv:
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token}
        db = tmp_path / "t.db"
        cfg = tmp_path / "t.toml"
        cfg.write_text(toml(srv, db, "Contoso", '[logging]\nformat = "json"\n'))
        proc = subprocess.Popen(cli("schedule", "--config", str(cfg), "--out", str(tmp_path / "o"), "--run-now"),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert gate.arrived.wait(120), "the immediate scheduled run never reached Exchange"
            proc.send_signal(signal.SIGTERM)
            seen = []
            assert proc.stderr is not None
            for line in proc.stderr:  # the scheduler acknowledges the signal while the scan is still held
                seen.append(line)
                if "scheduler stopping on SIGTERM" in line:
                    break
            gate.opened.set()
            _, rest = proc.communicate(timeout=120)
        finally:
            gate.opened.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    err = "".join(seen) + rest
    assert proc.returncode == 0, err
    assert "scheduler stopping on SIGTERM" in err and "Traceback" not in err
    assert any("scheduled scan of Contoso done" in json.loads(x)["message"] for x in err.splitlines()
               if x.startswith("{"))
    assert (tmp_path / "o" / "findings.json").is_file()
    assert stored_accounts(db) >= 20
