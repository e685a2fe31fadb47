"""findings.json (interface.md shape), findings.csv (formula cells neutralised) and the report CLI."""

from __future__ import annotations

import csv
import json
import re

import pytest
from click.testing import CliRunner
from report_builders import TENANT, finding, make_scan, open_store, user

from reports import write_outputs
from reports.cli import report_command
from reports.exports import neutralise_cell

FINDING_KEYS = {"id", "account", "detector", "technique", "severity", "title", "evidence", "new_since_last_scan"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def scanned(tmp_path):
    store = open_store(tmp_path)
    accounts = [user("alice@contoso.com"), user("bob@contoso.com"), user("carol@contoso.com")]
    fs = [
        finding("alice@contoso.com", "mail.inbox_rule_external_forward", severity="critical", artefact="r1",
                title="=HYPERLINK(\"http://evil\",\"x\")",
                evidence={"rule_name": "+cmd|' /C calc'!A0", "destinations": [{"destination": "-x@evil.com"}]}),
        finding("bob@contoso.com", "mail.mailbox_external_forward", severity="info", artefact="f",
                suppressed="allowlist: partner.com", new=False, evidence={"destination": "@sum(1)"}),
    ]
    scan_id = make_scan(store, accounts, fs, errors=[("carol@contoso.com", "inbox_rules", "Access is denied",
                                                      "ErrorAccessDenied"),
                                                     (None, "roles", "403", None)])
    out = tmp_path / "out"
    paths = write_outputs(store, scan_id, out)
    yield store, scan_id, paths
    store.close()


def test_findings_json_has_the_interface_shape(scanned) -> None:
    store, scan_id, paths = scanned
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    scan = data["scan"]
    assert scan["id"] == scan_id and scan["tenant_id"] == TENANT and scan["accounts_scanned"] == 3
    assert ISO.match(scan["started"]) and ISO.match(scan["finished"])
    assert [{k: e[k] for k in ("account", "collector", "message")} for e in scan["errors"]] == [
        {"account": "carol@contoso.com", "collector": "inbox_rules", "message": "Access is denied"},
        {"account": None, "collector": "roles", "message": "403"}]
    assert [(a["userPrincipalName"], a["verdict"], a["score"]) for a in data["accounts"]] == [
        ("alice@contoso.com", "compromised", 40), ("bob@contoso.com", "clean", 40),
        ("carol@contoso.com", "clean", 0)]
    assert len(data["findings"]) == 2
    for f in data["findings"]:
        assert FINDING_KEYS <= set(f)
        assert f["severity"] in ("info", "low", "medium", "high", "critical")
        assert isinstance(f["evidence"], dict) and isinstance(f["new_since_last_scan"], bool)
    crit = data["findings"][0]
    assert (crit["account"], crit["technique"], crit["severity"], crit["new_since_last_scan"]) == \
        ("alice@contoso.com", "T1114.003", "critical", True)
    assert crit["evidence"]["rule_name"] == "+cmd|' /C calc'!A0"  # JSON keeps the exact value
    assert data["findings"][1]["suppressed"] == "allowlist: partner.com"


def test_csv_one_row_per_finding_with_formulas_neutralised(scanned) -> None:
    _, _, paths = scanned
    # A script reading it as plain UTF-8 gets the documented column names (no byte-order mark before "id").
    assert paths["csv"].read_bytes().startswith(b"id,")
    with paths["csv"].open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["account"] for r in rows] == ["alice@contoso.com", "bob@contoso.com"]
    assert rows[0]["title"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    for r in rows:
        for col, cell in r.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (col, cell)
    assert "+cmd|' /C calc'!A0" in rows[0]["evidence"]  # inside a JSON cell that starts with "{"


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("\uff1d1", "'\uff1d1"), ("safe", "safe"), ("a=b", "a=b"), (None, ""), (True, "true"), (3, "3"),
])
def test_neutralise_cell(value, expected) -> None:
    assert neutralise_cell(value) == expected


def test_json_streams_a_large_account_list(tmp_path) -> None:
    store = open_store(tmp_path)
    scan_id = make_scan(store, [user(f"u{i:05d}@contoso.com", id=f"id{i}") for i in range(3000)], [])
    paths = write_outputs(store, scan_id, tmp_path / "o")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert len(data["accounts"]) == 3000 and data["findings"] == []
    assert ">3,000<" in paths["html"].read_text(encoding="utf-8")  # accounts scanned card


def _config(tmp_path, db="m365sweep.db"):
    p = tmp_path / "m365sweep.toml"
    p.write_text(f'[tenant]\ntenant_id = "{TENANT}"\n[auth]\nmethod = "access_token"\n'
                 f'[storage]\ndatabase = "{db}"\n', encoding="utf-8")
    return p


def test_report_command_rerenders_latest_or_named_scan(tmp_path) -> None:
    store = open_store(tmp_path)
    first = make_scan(store, [user("a@contoso.com")], [finding("a@contoso.com", "mail.x", artefact="1")])
    make_scan(store, [user("a@contoso.com"), user("b@contoso.com")], [])
    store.close()
    cfg = _config(tmp_path)
    res = CliRunner().invoke(report_command, ["--config", str(cfg), "--out", str(tmp_path / "latest")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "latest" / "findings.json").read_text())["scan"]["accounts_scanned"] == 2
    res = CliRunner().invoke(report_command, ["--config", str(cfg), "--scan", first, "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "f" / "findings.json").read_text())
    assert data["scan"]["id"] == first and len(data["findings"]) == 1
    assert (tmp_path / "f" / "report.html").exists() and (tmp_path / "f" / "findings.csv").exists()


def test_report_command_unknown_scan_is_one_line_exit_2(tmp_path) -> None:
    store = open_store(tmp_path)
    make_scan(store, [user("a@contoso.com")], [])
    store.close()
    res = CliRunner().invoke(report_command, ["--config", str(_config(tmp_path)), "--scan", "nope",
                                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "unknown scan id 'nope'" in res.output
    assert "Traceback" not in res.output


def test_report_command_missing_database_or_config_exit_2(tmp_path) -> None:
    res = CliRunner().invoke(report_command, ["--config", str(_config(tmp_path, "absent.db"))])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(report_command, ["--config", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and res.output.startswith("error: config file not found")
