"""The CLI end to end: demo, scan against a simulator served on 127.0.0.1 with access_token auth, check, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import SEVERITIES, main
from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from tests.conftest import served_sim_toml


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 2)), out, err


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def sim_toml(srv: Any, db: Path) -> str:
    return served_sim_toml(srv, db, """
[allowlist]
forwarding_domains = [{ value = "partner-accounting.com", reason = "outsourced bookkeeper (demo allow-list entry)" }]
[remediation]
protected_accounts = ["breakglass@contoso.onmicrosoft.com"]
""")


def _findings(path: Path) -> set[tuple[str, str, str, str]]:
    data = json.loads((path / "findings.json").read_text("utf-8"))
    return {(f["id"], f["account"], f["detector"], f["severity"]) for f in data["findings"]}


def test_severities_match_config() -> None:
    from scanner.config import SEVERITIES as CONFIG_SEVERITIES

    assert SEVERITIES == CONFIG_SEVERITIES


def test_demo_then_scan_of_a_separately_served_simulator_give_the_same_findings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli(["demo", "--out", str(tmp_path / "demo"), "--users", "60", "-q"], capsys)
    assert code == 0, err
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    compromised = sorted(u for u, lab in tenant.labels.items() if lab["label"] == "compromised")
    named = [u for u in compromised if f"  - {u}" in out]
    assert len(named) >= len(compromised) * 3 // 4, (named, compromised)
    # Tenant-wide findings (no account row) are named too: the planted third-party app in a privileged role.
    assert "tenant-wide findings" in out and "Mail Sync Connector" in out, out
    assert "Microsoft Defender for Cloud Apps" not in out
    demo = json.loads((tmp_path / "demo" / "findings.json").read_text("utf-8"))
    assert demo["scan"]["accounts_scanned"] == 60 and len(demo["accounts"]) == 60
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "findings.csv").is_file()

    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        cfg = write_config(tmp_path / "sim.toml", sim_toml(srv, tmp_path / "scan.db"))
        code, out2, err2 = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "scan"), "-q"], capsys)
    assert code == 0, err2
    assert _findings(tmp_path / "scan") == _findings(tmp_path / "demo")
    assert "compromised accounts:" in out2


def test_scan_fail_on_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = generate_tenant(users=45, seed=3, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        cfg = write_config(tmp_path / "sim.toml", sim_toml(srv, tmp_path / "scan.db"))
        code, out, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "--fail-on",
                                  "high", "-q"], capsys)
        assert code == 1, err
        code, out, err = run_cli(["check", "--config", str(cfg)], capsys)
    assert code == 0, err
    assert "inbox_rules" in out and "MailboxSettings.Read" in out and "available" in out


def test_scan_users_forbidden_exits_2_naming_the_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.simulator.permissions import ALL_PERMISSIONS, DIR_READ

    tenant = generate_tenant(users=20, seed=3, scenarios=False)
    app = create_app(tenant, SimOptions(permissions=set(ALL_PERMISSIONS) - set(DIR_READ)))
    with SimulatorServer(app, port=0) as srv:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        cfg = write_config(tmp_path / "sim.toml", sim_toml(srv, tmp_path / "scan.db"))
        code, out, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
        assert code == 2
        assert err.count("\n") == 1 and "User.Read.All" in err and "Traceback" not in err
        code, out, err = run_cli(["check", "--config", str(cfg)], capsys)
    assert code == 2 and "User.Read.All" in err and "MISSING User.Read.All" in out


@pytest.mark.parametrize(("body", "needle"), [
    ('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\nbogus = 1\n', "tenant.bogus"),
    ('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[scan]\nconcurrency = "many"\n', "scan.concurrency"),
    ('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "access_token"\n', "M365SWEEP_GRAPH_TOKEN"),
    ('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "client_secret"\n', "client_id"),
    ('[tenant\n', "invalid TOML"),
])
def test_config_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, body: str, needle: str) -> None:
    monkeypatch.delenv("M365SWEEP_GRAPH_TOKEN", raising=False)
    cfg = write_config(tmp_path / "bad.toml", body)
    code, out, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file_and_unknown_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["scan", "--config", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "config file not found" in err
    code, _, err = run_cli(["frobnicate"], capsys)
    assert code == 2 and "No such command" in err


def test_help_lists_the_interface_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for name in ("demo", "scan", "check", "report", "simulate", "remediate", "undo", "schedule"):
        assert f"  {name} " in out, name
