"""Exchange mail-flow (transport) rules end to end (detections.md §0.1, §M): the simulator's ``Get-TransportRule``,
the tenant-wide collector through the real Exchange client, scans that find the planted rules (a Bcc of finance mail
to a look-alike, a redirect to free-mail, an SCL -1 bypass for a look-alike sender) and not the benign ones
(disclaimer, internal compliance Bcc, internal subdomain redirect, manager Bcc, hybrid routing; allow-listed partner
rules shown suppressed; a disabled external Bcc at Low), an RBAC refusal that is a coverage gap naming the Exchange
role (exit 3), drift on a second scan, and the report's escaping of attacker-chosen rule names."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from detectors._model import ScanContext, Severity, TenantFacts
from detectors.engine import evaluate_tenant
from scanner.collectors.transport_rules import read_transport_rules, transport_rule_row, transport_rules_gap
from scanner.graph.client import ApiError
from scanner.graph.factory import connect
from scanner.simulator import create_app, generate_tenant
from scanner.simulator.app import SimOptions
from scanner.snapshot import TransportRule
from scanner.store import Store
from scanner.sweep import run_scan
from tests.detectors.builders import NOW, TENANT

FWD, BYPASS = "mail.transport_rule_external_forward", "mail.transport_rule_spam_bypass"
EXO = "http://localhost:8765"
PARTNER = {"forwarding_domains": [{"value": "partner-accounting.com", "reason": "bookkeeper, CHG-204"}]}


def _invoke_url(t: Any) -> str:
    return f"{EXO}/adminapi/beta/{t.tenant_id}/InvokeCommand"


def _body(params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"CmdletInput": {"CmdletName": "Get-TransportRule", "Parameters": params or {}}}


def _outputs(out: Path) -> tuple[dict[str, Any], list[dict[str, str]], str]:
    data = json.loads((out / "findings.json").read_text("utf-8"))
    rows = list(csv.DictReader(io.StringIO((out / "findings.csv").read_text("utf-8-sig"))))
    return data, rows, (out / "report.html").read_text("utf-8")


def _rule_findings(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["account"]: f for f in data["findings"] if f["account"].startswith("transportrule:")}


# ---- the simulator ----------------------------------------------------------------------------------------------------
async def test_simulator_get_transport_rule_shape_paging_and_permissions() -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    app = create_app(t, SimOptions(exchange_rbac_denied=frozenset({"Get-TransportRule"})))
    open_app = create_app(t)
    assert len(t.transport_rules) >= 10
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=open_app)) as c:
        h = {"Authorization": f"Bearer {open_app.exchange_token}", "Prefer": "odata.maxpagesize=4"}
        # Paged like every other cmdlet: the same body POSTed to each nextLink until none.
        url: str | None = _invoke_url(t)
        seen: list[dict[str, Any]] = []
        while url:
            r = await c.post(url, headers=h, json=_body({"ResultSize": "Unlimited"}))
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["value"]) <= 4 and page["@adminapi.warnings"] == []
            seen.extend(page["value"])
            url = page.get("@odata.nextLink")
        assert [x["Name"] for x in seen] == [x["Name"] for x in t.transport_rules]
        assert [x["Priority"] for x in seen] == list(range(len(seen)))
        bcc = next(x for x in seen if x["Name"] == "Finance Compliance Journal")
        assert bcc["State"] == "Enabled" and bcc["Mode"] == "Enforce"
        assert bcc["BlindCopyTo"] == ["ap-archive@contoso-finance.com"]
        assert bcc["BlindCopyTo@odata.type"] == "#Collection(String)"
        assert bcc["RedirectMessageTo"] is None and bcc["SetSCL"] is None and bcc["DeleteMessage"] is False
        assert bcc["ExceptIfFrom"] is None and re.fullmatch(r"[0-9a-f-]{36}", bcc["Guid"])
        assert "Blind carbon copy (Bcc) the message to 'ap-archive@contoso-finance.com'" in bcc["Description"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", bcc["WhenChanged"])
        scl = next(x for x in seen if x["Name"] == "Trusted vendor")
        assert scl["SetSCL"] == -1 and scl["SenderDomainIs"] == ["contoso-payments.com"]
        assert next(x for x in seen if x["Name"] == "Auditor copy (year-end)")["State"] == "Disabled"

        # -Identity (name or Guid), -State, an unknown rule, an unknown parameter.
        one = (await c.post(_invoke_url(t), headers=h, json=_body({"Identity": bcc["Guid"]}))).json()["value"]
        assert [x["Name"] for x in one] == ["Finance Compliance Journal"]
        off = (await c.post(_invoke_url(t), headers=h, json=_body({"State": "Disabled"}))).json()["value"]
        assert [x["Name"] for x in off] == ["Auditor copy (year-end)"]
        r = await c.post(_invoke_url(t), headers=h, json=_body({"Identity": "nope"}))
        assert r.status_code == 404 and "ManagementObjectNotFoundException" in r.json()["error"]["details"][0]["message"]
        r = await c.post(_invoke_url(t), headers=h, json=_body({"Mailbox": "x"}))
        assert r.status_code == 400 and "ParameterBindingException" in r.json()["error"]["details"][0]["message"]
        # Without ResultSize only the first N (here 3) come back, with the usual warning.
        r = (await c.post(_invoke_url(t), headers=h, json=_body({"ResultSize": 3}))).json()
        assert len(r["value"]) == 3 and "ResultSize" in r["@adminapi.warnings"][0]

        # Permission checked like every cmdlet: a token without Exchange.ManageAsApp is refused.
        weak = open_app.issue_token("https://outlook.office365.com", roles={"User.Read.All"})
        r = await c.post(_invoke_url(t), headers={"Authorization": f"Bearer {weak}"}, json=_body())
        assert r.status_code == 403 and "Exchange.ManageAsApp" in r.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        # Exchange RBAC without a role holding the cmdlet: answered like an unknown cmdlet (403, NUL byte as gzip).
        r = await c.send(c.build_request("POST", _invoke_url(t), json=_body(),
                                         headers={"Authorization": f"Bearer {app.exchange_token}"}), stream=True)
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
        assert r.status_code == 403 and raw == b"\x00" and r.headers["content-encoding"] == "gzip"
        other = _body()
        other["CmdletInput"]["CmdletName"] = "Get-AcceptedDomain"  # the rest of the app's cmdlets still run
        assert (await c.post(_invoke_url(t), json=other,
                             headers={"Authorization": f"Bearer {app.exchange_token}"})).status_code == 200


# ---- the collector ------------------------------------------------------------------------------------------------------
def test_rule_row_reads_exchange_shapes_liberally() -> None:
    row = transport_rule_row({
        "Name": "x", "Guid": "0f0f", "State": "Enabled", "Mode": "AuditAndNotify", "Priority": "3",
        "RedirectMessageTo": "one@evil.example",  # a single value, not an array
        "BlindCopyTo": ['"Records" [SMTP:rec@c0ntoso.com]', {"Name": "N", "PrimarySmtpAddress": "n@x.example"}],
        "CopyTo": None, "AddToRecipients": [], "SetSCL": "-1", "DeleteMessage": "False", "StopRuleProcessing": "True",
        "SenderDomainIs": "contoso-payments.com", "SubjectContainsWords": ["invoice", ""], "FromScope": None,
        "AttachmentIsUnsupported": False, "HasSenderOverride": "True", "ExceptIfFrom": ["boss@contoso.com"],
        "WhenChanged": "/Date(1767225600000)/"})
    assert row is not None
    assert row["redirect_message_to"] == ["one@evil.example"]
    assert row["blind_copy_to"] == ["rec@c0ntoso.com", "n@x.example"]
    assert row["copy_to"] == [] and row["add_to_recipients"] == []
    assert row["set_scl"] == -1 and row["priority"] == 3 and row["mode"] == "AuditAndNotify"
    assert row["delete_message"] is False and row["stop_rule_processing"] is True
    assert row["conditions"] == {"SenderDomainIs": "contoso-payments.com", "SubjectContainsWords": ["invoice"],
                                 "HasSenderOverride": True}
    assert row["exceptions"] == {"From": ["boss@contoso.com"]}
    assert row["when_changed"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    assert TransportRule(**row).enabled
    assert transport_rule_row({"Identity": None, "Guid": "x"}) is None  # nothing to name it by


async def test_collector_reads_every_rule_through_the_client(make_sim_env: Any) -> None:
    env = make_sim_env(users=30, seed=7, scenarios=True, app_options={"exchange_page_size": 3})
    async with connect(env.cfg, credential=env.credential, transport=env.transport) as conn:
        rows = await read_transport_rules(conn.exchange)
    assert [r["name"] for r in rows] == [r["Name"] for r in env.tenant.transport_rules]  # every page, in priority order
    by_name = {r["name"]: TransportRule(**r) for r in rows}
    assert by_name["Departed employee mail to service desk"].redirect_message_to == ("servicedesk@eu.contoso.com",)
    assert by_name["Trusted vendor"].set_scl == -1
    assert not by_name["Auditor copy (year-end)"].enabled
    assert by_name["Manager copy for new starters"].add_manager_as_recipient_type == "Bcc"


def test_refusals_name_the_exchange_role() -> None:
    for err in (ApiError("access denied or cmdlet not available", status=403, service="exchange"),
                ApiError("The term 'Get-TransportRule' is not recognized as a name of a cmdlet, function, script "
                         "file, or executable program.", status=400, service="exchange")):
        gap = transport_rules_gap(err)
        assert gap is not None and "View-Only Configuration" in gap.reason and "Exchange.ManageAsApp" in gap.reason
        assert gap.permission and "View-Only Configuration" in gap.permission
    assert transport_rules_gap(ApiError("boom", status=500, service="exchange")) is None  # a plain failure


# ---- whole scans ---------------------------------------------------------------------------------------------------------
async def test_scan_finds_the_planted_rules_and_not_the_benign_ones(make_sim_env: Any, tmp_path: Path) -> None:
    env = make_sim_env(users=60, seed=7, scenarios=True, allowlist=PARTNER)
    t = env.tenant
    r = await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out")
    assert [e for e in r.errors if "transport" in e["collector"]] == []
    data, rows, _ = _outputs(tmp_path / "out")
    found = _rule_findings(data)
    labels = {k: v for k, v in t.tenant_labels.items() if k.startswith("transportrule:")}
    assert {v["label"] for v in labels.values()} == {"compromised", "benign_lookalike", "benign"}
    for subject, lab in labels.items():
        got = found.get(subject)
        assert (got["severity"] if got else None) == lab.get("expected_severity"), (subject, got)
        if got:
            assert got["detector"] == lab["detector"] and bool(got["suppressed"]) == bool(lab.get("suppressed"))
            assert got["tenant_level"] is True and got["new_since_last_scan"] is False  # first scan: standing
    assert set(found) <= set(labels)
    bcc = found["transportrule:Finance Compliance Journal"]
    assert bcc["technique"] == "T1114.003" and bcc["evidence"]["domain_class"] == "lookalike"
    assert bcc["evidence"]["destinations"] == ["ap-archive@contoso-finance.com"]
    assert "Disable-TransportRule" in bcc["evidence"]["what_to_do"]
    assert found["transportrule:Trusted vendor"]["technique"] == "T1562"
    assert "CHG-204" in found["transportrule:Bookkeeper invoice copy"]["suppressed"]
    # Tenant-level: no account row, no verdict; in findings.csv like the other pseudo-account findings.
    assert not {a["userPrincipalName"].lower() for a in data["accounts"]} & {k.lower() for k in found}
    assert {row["account"] for row in rows if row["detector"] in (FWD, BYPASS)} == set(found)


@pytest.mark.parametrize("refusal", ["rbac", "access_denied"])
async def test_refused_get_transport_rule_is_a_gap_naming_the_role(make_sim_env: Any, refusal: str) -> None:
    options = {"exchange_rbac_denied": frozenset({"Get-TransportRule"})} if refusal == "rbac" else {}
    env = make_sim_env(users=30, seed=7, scenarios=True, app_options=options)
    if refusal == "access_denied":
        env.tenant.faults.add("Get-TransportRule", status=403, times=None)
    r = await run_scan(env.cfg, **env.kwargs)
    gaps = [e for e in r.errors if e["collector"] == "transport_rules"]
    assert len(gaps) == 1 and gaps[0]["upn"] is None, r.errors
    assert "View-Only Configuration" in gaps[0]["message"] and "Get-TransportRule" in gaps[0]["message"]
    assert {e["collector"] for e in r.errors} == {"transport_rules", "detectors:transport_rules"}, r.errors
    assert all(d in " ".join(e["message"] for e in r.errors) for d in (FWD, BYPASS))
    with Store(env.cfg.database_path) as store:
        assert not [f for f in store.findings(r.scan_id) if f["account"].startswith("transportrule:")]
    assert r.exit_code == 3  # never a clean 0 with the rules unread


async def test_drift_new_and_changed_rules_on_the_second_scan(make_sim_env: Any, tmp_path: Path) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True, allowlist=PARTNER)
    t = env.tenant
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "one")
    # Overnight: a new org-wide Bcc to free-mail, and the existing redirect gains a second destination.
    t.add_transport_rule("Archive all mail", BlindCopyTo=["archive.contoso@gmail.com"])
    t.add_transport_rule("Mail continuity", SentTo=["accounts.payable@contoso.com"],
                         RedirectMessageTo=["ap.contoso@proton.me", "ap2@contoso-finance.com"])
    r2 = await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "two")
    assert r2.exit_code == 0, r2.errors
    found = _rule_findings(_outputs(tmp_path / "two")[0])
    new = found["transportrule:Archive all mail"]
    assert new["new_since_last_scan"] is True and new["severity"] == "critical"  # all mail Bcc'd to free-mail
    changed = found["transportrule:Mail continuity"]
    assert changed["new_since_last_scan"] is True and changed["severity"] == "critical"  # now also a look-alike
    assert found["transportrule:Finance Compliance Journal"]["new_since_last_scan"] is False  # unchanged: standing
    assert found["transportrule:Trusted vendor"]["new_since_last_scan"] is False


def test_no_baseline_when_the_previous_scan_could_not_read_the_rules() -> None:
    rule = TransportRule(name="Backup", blind_copy_to=("b@gmail.com",))
    now = TENANT.model_copy(update={"transport_rules": (rule,), "privileged_principals": ()})
    for previous, want in ((TENANT.model_copy(update={"transport_rules": None}), False),  # unread: standing
                           (TENANT.model_copy(update={"transport_rules": ()}), True)):  # read, empty: new
        ctx = ScanContext(tenant=now, now=NOW, first_scan=False, previous_tenant=previous)
        (f,), gaps = evaluate_tenant(now, TenantFacts(), ctx)
        assert gaps == [] and f.detector == FWD and f.new_since_last_scan is want and f.severity == Severity.CRITICAL


async def test_report_escapes_hostile_rule_names(make_sim_env: Any, tmp_path: Path) -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    evil = 'Journal <img src=x onerror="alert(1)"> \u202egpj.exe'
    t.add_transport_rule(evil, BlindCopyTo=["x@contoso-finance.com"], SubjectContainsWords=["<script>alert(2)</script>"],
                         log=False)
    env = make_sim_env(tenant=t)
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out")
    data, rows, doc = _outputs(tmp_path / "out")
    assert "<img src=x" not in doc and "<script>alert(2)" not in doc
    section = doc[doc.index('<section id="tenant">'):doc.index('<section id="coverage">')]
    text = html.unescape(re.sub(r"<[^>]+>", "", section))
    assert "Mail-flow (transport) rule" in text and "x@contoso-finance.com" in text and "onerror" in text
    f = _rule_findings(data)[f"transportrule:{evil}"]  # raw (JSON-escaped) in findings.json
    assert f["severity"] == "critical" and f["evidence"]["rule"] == evil
    (row,) = [r for r in rows if r["detector"] == FWD and "onerror" in r["account"]]
    assert "\u202e" not in row["account"]  # the bidi override is shown as a marker in the CSV
