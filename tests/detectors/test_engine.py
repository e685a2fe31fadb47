"""evaluate_scan over a Store (no network): coverage gaps, verdicts, sent-volume baseline; allow-list expiry."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from detectors.engine import allowlist_from_config, evaluate_scan
from scanner.config import AllowlistSection
from scanner.snapshot import SendingStatus
from scanner.store import Store
from tests.detectors.builders import NOW, TENANT, account_from_spec, clean_account


def _scan(store: Store, accounts: list) -> str:
    sid = store.begin_scan(TENANT.tenant_id)
    store.put_accounts(sid, accounts)
    store.finish_scan(sid, "complete")
    return sid


def test_evaluate_scan_records_gaps_verdicts_and_baseline(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        gap = account_from_spec({"not_collected": ["inbox_rules"]}, "gap@contoso.com")
        bad = account_from_spec({"forwarding": {"forwarding_smtp_address": "x@gmail.com"},
                                 "rules": [{"displayName": ".", "actions": {"delete": True, "markAsRead": True}}]},
                                "bad@contoso.com")
        s1 = _scan(store, [clean_account("busy@contoso.com"), gap, bad])
        summary = evaluate_scan(store, s1, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0],
                                now=NOW)
        assert summary.accounts == 3 and summary.verdicts.get("compromised") == 1
        assert summary.not_evaluated > 0
        errs = [e for e in store.errors(s1) if e["upn"] == "gap@contoso.com"]
        assert errs and errs[0]["collector"] == "detectors:inbox_rules" and "not evaluated" in errs[0]["message"]
        verdicts = {a["upn"]: a for a in store.accounts(s1)}
        assert verdicts["bad@contoso.com"]["verdict"] == "compromised"
        assert any(r.startswith("near-certain") for r in verdicts["bad@contoso.com"]["reasons"])
        assert verdicts["busy@contoso.com"]["verdict"] == "clean"
        # Later scans: the engine builds the per-account sent baseline from stored scans.
        for _ in range(3):
            sid = _scan(store, [clean_account("busy@contoso.com")])
            evaluate_scan(store, sid, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0],
                          now=NOW)
        spike = clean_account("busy@contoso.com").model_copy(
            update={"sending": SendingStatus(sent_last_24h=1200)})
        s5 = _scan(store, [spike])
        evaluate_scan(store, s5, tenant=TENANT, allowlist=allowlist_from_config(AllowlistSection(), NOW)[0], now=NOW)
        f = [x for x in store.findings(s5) if x["detector"] == "sending.volume_spike"]
        assert f and f[0]["evidence"]["baseline_median"] == 20 and f[0]["new_since_last_scan"]


def test_allowlist_expiry_warns_and_is_not_applied() -> None:
    section = AllowlistSection(forwarding_domains=[
        "partner.com", {"value": "old-partner.com", "reason": "2024 project", "expires": date(2025, 1, 1)},
        {"value": "current.com", "expires": (NOW + timedelta(days=30)).date()}])
    allow, warnings = allowlist_from_config(section, NOW)
    assert [e.value for e in allow.forwarding_domains] == ["partner.com", "current.com"]
    assert len(warnings) == 1 and "old-partner.com" in warnings[0] and "expired" in warnings[0]
