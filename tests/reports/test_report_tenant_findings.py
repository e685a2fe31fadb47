"""Tenant-level findings (pseudo-accounts such as ``serviceprincipal:<name> (<appId>)``): produced by the real
tenant-level detector through ``evaluate_scan`` into a real Store, then read back as view model, report bytes and
exports. They have no account row: the report draws them in their own section, findings.json keeps them in
``findings`` only."""

from __future__ import annotations

import csv
import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from report_builders import user

from detectors._model import AllowEntry, Allowlist
from detectors.engine import evaluate_scan
from reports import write_outputs
from reports.evidence import evidence_sentence
from reports.viewmodel import build_report, split_subject, tenant_finding_views
from scanner.snapshot import PrivilegedPrincipal, TenantInfo
from scanner.store import Store

SP_DET = "roles.service_principal_privileged"
GA = "62e90394-69f5-4237-9190-012177145e10"
OTHER_ORG = "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001"
TENANT = TenantInfo(tenant_id="00000000-0000-0000-0000-00000000c0de", domains=("contoso.com",),
                    default_domain="contoso.com", display_name="Contoso")
T0 = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
# A display name an attacker chose: markup plus a zero-width space.
EVIL_APP = "Mail\u200bSync <img src=x onerror=alert(1)>"


def sp(name: str, app_id: str, sp_id: str) -> PrivilegedPrincipal:
    return PrivilegedPrincipal(id=sp_id, principal_type="servicePrincipal", display_name=name, app_id=app_id,
                               app_owner_organization_id=OTHER_ORG, service_principal_type="Application",
                               assignment_id=f"asg-{sp_id}", role_definition_id=GA, role_template_id=GA,
                               role_name="Global Administrator", kind="active", directory_scope_id="/")


OLD = sp("Old Backup Tool", "0000aaaa-0000-4000-8000-000000000001", "5e0c1a2b-3333-4c4c-9d9d-000000000001")
NEW = sp(EVIL_APP, "a1b2c3d4-0000-4000-8000-00000000beef", "5e0c1a2b-3333-4c4c-9d9d-00000000aaaa")
VENDOR = sp("Vendor Sync", "0000bbbb-0000-4000-8000-000000000002", "5e0c1a2b-3333-4c4c-9d9d-000000000002")


def _scan(store: Store, principals: tuple[PrivilegedPrincipal, ...], when: datetime) -> str:
    tenant = TENANT.model_copy(update={"privileged_principals": principals})
    sid = store.begin_scan(TENANT.tenant_id)
    store.put_accounts(sid, [user("alice@contoso.com"), user("bob@contoso.com")])
    store.set_tenant(sid, tenant.model_dump(mode="json"))
    allow = Allowlist(apps=(AllowEntry(value="Vendor Sync", reason="backup vendor, ticket 4711"),))
    evaluate_scan(store, sid, tenant=tenant, allowlist=allow, now=when)
    store.finish_scan(sid, "complete")
    return sid


def two_scans(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "db.sqlite")
    _scan(store, (OLD, VENDOR), T0)
    return store, _scan(store, (OLD, NEW, VENDOR), T0 + timedelta(days=1))


def test_view_model_has_a_tenant_section_and_no_account_for_the_pseudo_account(tmp_path: Path) -> None:
    store, sid = two_scans(tmp_path)
    with store:
        stored = [f for f in store.findings(sid) if f["detector"] == SP_DET]
        assert len(stored) == 3  # the detector really produced them
        m = build_report(store, sid)
    assert [a.upn for a in m.accounts] == []  # alice and bob are clean; no pseudo-account drawn as an account
    assert m.clean_count == 2
    names = [(tf.name.split(" (")[0], tf.finding.severity, tf.finding.new, tf.finding.suppressed is not None)
             for tf in m.tenant_findings]
    # Active first (new High before standing Medium), the allow-listed one last.
    assert names == [(EVIL_APP, "high", True, False), ("Old Backup Tool", "medium", False, False),
                     ("Vendor Sync", "medium", False, True)]
    top = m.tenant_findings[0]
    assert top.kind == "App (service principal)" and top.subject.startswith("serviceprincipal:")
    assert "holds the Global Administrator role over the whole directory; it was assigned since the last scan" \
        in top.finding.sentence
    assert "backup vendor, ticket 4711" in (m.tenant_findings[2].finding.suppressed or "")
    assert "mailsync" in top.search and "global administrator" in top.search  # invisible character dropped
    assert m.summary.tenant_findings == 2 and len(m.summary.tenant_new) == 1
    assert SP_DET in m.detectors and "T1098.003" in m.techniques
    assert m.summary.severities["high"] == 1 and m.summary.severities["medium"] == 1


def test_split_subject_and_ordering_without_a_store() -> None:
    assert split_subject("serviceprincipal:Mail Sync (abc)") == ("App (service principal)", "Mail Sync (abc)")
    assert split_subject("weird label") == ("Tenant object", "weird label")
    assert split_subject("https://x") == ("Https", "//x")  # any kind prefix is shown, never dropped silently
    rows = [{"id": "1", "account": "serviceprincipal:B (b)", "detector": SP_DET, "severity": "low", "title": "t",
             "evidence": {}, "suppressed": None, "new_since_last_scan": False},
            {"id": "2", "account": "serviceprincipal:A (a)", "detector": SP_DET, "severity": "low", "title": "t",
             "evidence": {}, "suppressed": None, "new_since_last_scan": True}]
    assert [v.name for v in tenant_finding_views(rows)] == ["A (a)", "B (b)"]  # new before standing


def test_report_bytes_and_exports(tmp_path: Path) -> None:
    store, sid = two_scans(tmp_path)
    with store:
        paths = write_outputs(store, sid, tmp_path / "out")
    doc = paths["html"].read_text(encoding="utf-8")
    section = doc[doc.index('<section id="tenant">'):doc.index('<section id="coverage">')]
    rows = section.split('<tr class="tf')[1:]  # one chunk per tenant finding (each holds a nested evidence table)
    assert len(rows) == 3
    text = html.unescape(re.sub(r"<[^>]+>", "", rows[0]))
    assert "Mail⟦U+200B⟧Sync <img src=x onerror=alert(1)>" in text  # escaped, marker visible
    assert "<img src=x" not in rows[0] and "\u200b" not in section
    assert "new" in text and "Global Administrator" in text
    assert "standing" in html.unescape(re.sub(r"<[^>]+>", "", rows[1]))
    supp = html.unescape(re.sub(r"<[^>]+>", "", rows[2]))
    assert "Suppressed (allow-listed, not counted): " in supp and "backup vendor, ticket 4711" in supp
    assert 'id="card-tenant"' in doc and 'id="tenant-new"' in doc
    assert f'<option value="{SP_DET}">' in doc  # in the detector filter
    # no m365sweep step acts on an app's role: the row says how to fix it by hand, and names no step
    assert "Fix by hand: Remove the app from the administrator role" in text and "steps:" not in section

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [a["userPrincipalName"] for a in data["accounts"]] == ["alice@contoso.com", "bob@contoso.com"]
    tenant = [f for f in data["findings"] if f["detector"] == SP_DET]
    assert len(tenant) == 3 and all(f["tenant_level"] for f in tenant)
    assert all(f["account"].startswith("serviceprincipal:") for f in tenant)
    assert EVIL_APP in {f["evidence"]["service_principal"] for f in tenant}  # JSON keeps the raw value
    assert all(f["manual_fix"].startswith("Remove the app from the administrator role") for f in tenant)
    assert {f["manual_fix"] for f in data["findings"] if not f["tenant_level"]} <= {None}

    with paths["csv"].open(encoding="utf-8-sig", newline="") as fh:
        csv_rows = [r for r in csv.DictReader(fh) if r["detector"] == SP_DET]
    assert len(csv_rows) == 3 and {r["tenant_level"] for r in csv_rows} == {"true"}
    assert all(r["manual_fix"].startswith("Remove the app") and r["remediation"] == "" for r in csv_rows)
    evil = next(r for r in csv_rows if "beef" in r["account"])
    assert "Mail⟦U+200B⟧Sync" in evil["account"] and "\u200b" not in evil["account"]
    assert evil["summary"] == evidence_sentence(SP_DET, tenant[0]["evidence"]).replace("\u200b", "⟦U+200B⟧")
