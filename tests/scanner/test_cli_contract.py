"""interface.md from the outside: the commands, exit codes, config keys and output files as an admin's script sees them.

One test runs the whole contract the way an external grader does — ``m365sweep simulate`` in its own process, its first
line parsed into an ``access_token`` config, then ``scan`` (twice), ``report``, ``remediate`` and ``undo`` as
subprocesses. The rest run the CLI in-process (``main``) for the edge cases: every exit 2 is one line on stderr.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scanner.cli import main
from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from tests.conftest import served_sim_toml

BANNER = re.compile(r"^graph=(?P<graph>http://\S+) exchange=(?P<exchange>http://\S+) tenant=(?P<tenant>\S+) "
                    r"graph_token=(?P<graph_token>\S+) exchange_token=(?P<exchange_token>\S+)$")
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
SEVERITIES = {"info", "low", "medium", "high", "critical"}
VERDICTS = {"compromised", "suspicious", "clean"}


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("m365sweep")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from scanner.cli import main; main()", *args]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code: Any = 0  # a command that returns normally (remediate, undo) exits 0 without SystemExit
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else (0 if code is None else 2)), out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert n in lines[0], (n, err)


def utc(text: str) -> datetime:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert dt.utcoffset() is not None and dt.utcoffset().total_seconds() == 0, text
    return dt


# ------------------------------------------------------------------------------ the whole contract, out of process
@pytest.fixture
def simulate_process() -> Iterator[dict[str, str]]:
    """``m365sweep simulate --port 0 --users 60`` in its own process; yields its first line's fields."""
    proc = subprocess.Popen(cli("simulate", "--port", "0", "--users", "60"), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        m = BANNER.match(first)
        assert m, first
        yield m.groupdict()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_contract_against_a_simulator_served_by_another_process(simulate_process: dict[str, str],
                                                                  tmp_path: Path) -> None:
    sim = simulate_process
    env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": sim["graph_token"], "M365SWEEP_EXCHANGE_TOKEN": sim["exchange_token"]}
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    cfg = cfg_dir / "m365sweep.toml"
    cfg.write_text(f'[tenant]\ntenant_id = "{sim["tenant"]}"\n[auth]\nmethod = "access_token"\n'
                   f'[endpoints]\ngraph = "{sim["graph"]}"\nexchange = "{sim["exchange"]}"\n'
                   '[storage]\ndatabase = "state/sweep.db"\n', encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # cwd is not the config's directory: a relative database path must follow the config file.
        return subprocess.run(cli(*args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, check=False)

    first = run("scan", "--config", str(cfg), "--out", "out1", "-q")
    assert first.returncode == 0, first.stderr
    assert (cfg_dir / "state" / "sweep.db").is_file() and not (tmp_path / "state").exists()
    out1 = tmp_path / "out1"
    assert {p.name for p in out1.iterdir()} >= {"report.html", "findings.json", "findings.csv"}
    data = json.loads((out1 / "findings.json").read_text("utf-8"))
    scan = data["scan"]
    assert scan["tenant_id"] == sim["tenant"] and isinstance(scan["id"], str) and scan["id"]
    assert utc(scan["started"]) <= utc(scan["finished"])
    assert type(scan["accounts_scanned"]) is int and scan["accounts_scanned"] == 60 == len(data["accounts"])
    assert scan["errors"] == []
    for a in data["accounts"]:
        assert a["verdict"] in VERDICTS and type(a["score"]) is int and isinstance(a["userPrincipalName"], str)
        assert isinstance(a["reasons"], list) and (a["verdict"] == "clean" or a["reasons"])  # docs/interface.md
    assert {a["verdict"] for a in data["accounts"]} == VERDICTS
    findings = data["findings"]
    assert findings
    for f in findings:
        assert {"id", "account", "detector", "technique", "severity", "title", "evidence",
                "new_since_last_scan"} <= set(f)
        assert TECHNIQUE.match(f["technique"]) and f["severity"] in SEVERITIES
        assert isinstance(f["evidence"], dict) and f["new_since_last_scan"] is False  # first scan: standing
    with (out1 / "findings.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == sorted(f["id"] for f in findings)

    fail = run("scan", "--config", str(cfg), "--out", "out2", "--fail-on", "HIGH", "-q")
    assert fail.returncode == 1, fail.stderr
    second = json.loads((tmp_path / "out2" / "findings.json").read_text("utf-8"))
    assert {f["id"] for f in second["findings"]} == {f["id"] for f in findings}
    assert not any(f["new_since_last_scan"] for f in second["findings"])  # unchanged since the first scan

    report = run("report", "--config", str(cfg), "--scan", scan["id"], "--out", "again")
    assert report.returncode == 0, report.stderr
    assert json.loads((tmp_path / "again" / "findings.json").read_text("utf-8"))["scan"]["id"] == scan["id"]

    victim = next(f["account"] for f in findings if f["detector"].startswith("mail.inbox_rule"))
    refused = run("remediate", "--config", str(cfg), "--user", victim)  # no terminal, no --yes
    assert_one_line_error(refused.returncode, refused.stderr, "--yes")
    applied = run("remediate", "--config", str(cfg), "--user", victim, "--step", "disable_rules", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    action_ids = [a for line in applied.stdout.splitlines() if " applied " in line
                  for a in re.findall(r"\b[0-9a-f]{12}\b", line)]
    assert action_ids, applied.stdout
    undone = run("undo", "--config", str(cfg), action_ids[0])
    assert undone.returncode == 0 and victim in undone.stdout, undone.stdout + undone.stderr
    unknown = run("undo", "--config", str(cfg), "0123456789ab")
    assert_one_line_error(unknown.returncode, unknown.stderr, "0123456789ab")


# ------------------------------------------------------------------------------------------ exit 2 is one line
@pytest.mark.parametrize(("argv", "needle"), [
    (["scan", "--config", "{cfg}", "--fail-on", "severe"], "--fail-on"),
    (["scan", "--config", "{cfg}", "--frobnicate"], "--frobnicate"),
    (["scan"], "--config"),
    (["check", "--config", "{dir}"], "--config"),
    (["report", "--config", "{dir}"], "--config"),
    (["undo", "--config", "{cfg}"], "ACTION_ID"),
    (["remediate", "--config", "{cfg}", "--user", "a@contoso.com", "--step", "frobnicate"], "frobnicate"),
    (["simulate", "--port", "99999"], "--port"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          needle: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "access_token"\n')
    args = [a.format(cfg=cfg, dir=tmp_path) for a in argv]
    code, _, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needle)


def test_bare_command_still_shows_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli([], capsys)
    assert code in (0, 2) and "Commands:" in out + err and "scan" in out + err


# ------------------------------------------------------------------------------------------------ configuration
BASE = '[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "access_token"\n'


@pytest.mark.parametrize(("extra", "key"), [
    ('[remediation]\nallow_auto = "yes"\n', "remediation.allow_auto"),
    ('[remediation]\nallow_auto = 1\n', "remediation.allow_auto"),
    ('[remediation]\nmax_accounts_per_run = true\n', "remediation.max_accounts_per_run"),
    ('[remediation]\nmax_accounts_per_run = "5"\n', "remediation.max_accounts_per_run"),
    ('[scan]\nhidden_rules = "false"\n', "scan.hidden_rules"),
    ('[endpoints]\nauthority = "http://login.example.test"\n', "endpoints.authority"),
])
def test_wrong_types_are_errors_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch, extra: str, key: str) -> None:
    monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", "x")
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + extra, encoding="utf-8")
    code, _, err = run_cli(["check", "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, key)


def test_config_with_a_byte_order_mark_and_an_authority_host_is_read(tmp_path: Path) -> None:
    from scanner.config import load_config

    cfg = tmp_path / "c.toml"
    # config.example.toml documents `authority` as a host; Windows editors save UTF-8 with a BOM.
    cfg.write_text("\ufeff" + BASE + '[endpoints]\nauthority = "login.microsoftonline.us"\n', encoding="utf-8")
    assert load_config(cfg).authority == "login.microsoftonline.us"


# ----------------------------------------------------------------------------- unusable paths, before the sweep
@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    tenant = generate_tenant(users=20, seed=3, scenarios=True)
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        monkeypatch.setenv("M365SWEEP_GRAPH_TOKEN", srv.graph_token)
        monkeypatch.setenv("M365SWEEP_EXCHANGE_TOKEN", srv.exchange_token)
        yield srv


def test_unwritable_out_is_one_line_before_anything_is_scanned(served: Any, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(served_sim_toml(served, tmp_path / "s.db"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(["scan", "--config", str(cfg), "--out", str(blocker / "out"), "-q"], capsys)
    assert_one_line_error(code, err, "output directory", str(blocker / "out"))
    assert not (tmp_path / "s.db").exists()  # refused before the sweep, not after it
    code, _, err = run_cli(["demo", "--users", "20", "--out", str(blocker / "demo"), "-q"], capsys)
    assert_one_line_error(code, err, "output directory")


def test_unusable_database_path_is_one_line(served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = tmp_path / "c.toml"
    cfg.write_text(served_sim_toml(served, blocker / "s.db"))
    code, _, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert_one_line_error(code, err, str(blocker))


def test_sign_in_failure_is_one_line_for_scan_and_remediate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # azure_cli with no `az` on PATH: azure-identity logs its own warning before raising; only our line may show.
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tenant]\ntenant_id = "contoso.onmicrosoft.com"\n[auth]\nmethod = "azure_cli"\n'
                   f'[storage]\ndatabase = "{tmp_path / "s.db"}"\n')
    code, _, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert_one_line_error(code, err, "sign-in")
    code, _, err = run_cli(["remediate", "--config", str(cfg), "--user", "a@contoso.com", "--dry-run"], capsys)
    assert_one_line_error(code, err, "sign-in")


def test_simulate_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_cli(["simulate", "--port", str(port), "--users", "5"], capsys)
    assert_one_line_error(code, err, str(port))
    assert out == ""


def test_undo_with_an_empty_id_is_refused(served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(served_sim_toml(served, tmp_path / "s.db"))
    code, _, err = run_cli(["scan", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert code == 0, err
    # Auto mode journals its decisions (no action id) next to changes: an empty id must not match a decision row.
    code, _, err = run_cli(["remediate", "--config", str(cfg), "--auto", "--dry-run"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["undo", "--config", str(cfg), " "], capsys)
    assert_one_line_error(code, err, "ACTION_ID")
    assert "decision" not in err


def test_demo_ignores_proxy_settings_for_its_local_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # A host whose HTTP(S)_PROXY does not list 127.0.0.1 in NO_PROXY: the demo still needs no network.
    dead = "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_cli(["demo", "--users", "20", "--out", str(tmp_path / "demo"), "-q"], capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "demo" / "findings.json").read_text("utf-8"))
    assert data["scan"]["errors"] == [] and data["scan"]["accounts_scanned"] == len(data["accounts"]) >= 20
