"""Builders for report tests: a real Store filled through its public methods (no mocks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.snapshot import AccountSnapshot, MailboxForwarding, NotCollected, User
from scanner.store import Store

TENANT = "11111111-2222-3333-4444-555555555555"


def user(upn: str, **kw: Any) -> AccountSnapshot:
    uid = kw.pop("id", f"id-{abs(hash(upn)) % 10**8}")
    fields = {k: kw.pop(k) for k in list(kw) if k in AccountSnapshot.model_fields}
    return AccountSnapshot(user=User(id=uid, user_principal_name=upn, mailbox_type="UserMailbox", **kw), **fields)


def finding(upn: str, detector: str, *, severity: str = "high", technique: str = "T1114.003", title: str = "",
            evidence: dict[str, Any] | None = None, artefact: str = "", new: bool = True,
            suppressed: str | None = None, score: int = 40, status: str = "active") -> dict[str, Any]:
    import hashlib
    import json

    fid = hashlib.sha256(json.dumps([detector, upn.lower(), artefact]).encode()).hexdigest()[:16]
    return {"id": fid, "account": upn, "detector": detector, "technique": technique, "severity": severity,
            "title": title or detector, "evidence": evidence or {}, "artefact": artefact,
            "new_since_last_scan": new, "suppressed": suppressed, "score": score, "status": status,
            "remediation": ["disable_rules"]}


def make_scan(store: Store, accounts: list[AccountSnapshot], findings: list[dict[str, Any]],
              verdicts: dict[str, tuple[str, int]] | None = None, *, tenant: dict[str, Any] | None = None,
              errors: list[tuple[str | None, str, str, str | None]] = (), finish: bool = True) -> str:
    """A complete stored scan; verdicts default to compromised for accounts with a high/critical finding."""
    scan_id = store.begin_scan(TENANT)
    store.set_tenant(scan_id, tenant or {"tenant_id": TENANT, "display_name": "Contoso Ltd",
                                         "domains": ["contoso.com"], "default_domain": "contoso.com"})
    store.put_accounts(scan_id, accounts)
    store.put_findings(scan_id, findings)
    store.record_history(scan_id, store.scan(scan_id)["started"], [f for f in findings if not f.get("suppressed")])
    verdicts = dict(verdicts or {})
    for a in accounts:
        if a.upn not in verdicts:
            sevs = [f["severity"] for f in findings if f["account"] == a.upn and not f.get("suppressed")]
            v = "compromised" if {"high", "critical"} & set(sevs) else "suspicious" if sevs else "clean"
            verdicts[a.upn] = (v, sum(f["score"] for f in findings if f["account"] == a.upn))
    for upn, (v, score) in verdicts.items():
        store.set_verdict(scan_id, upn, v, score, [f"reason for {v}"] if v != "clean" else [], False)
    for upn, collector, message, code in errors:
        store.add_error(scan_id, upn, collector, message, code)
    if finish:
        store.finish_scan(scan_id, "partial" if errors else "complete")
    return scan_id


def open_store(tmp_path: Path) -> Store:
    return Store(tmp_path / "m365sweep.db")


__all__ = ["MailboxForwarding", "NotCollected", "finding", "make_scan", "open_store", "user"]
