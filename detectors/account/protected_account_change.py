"""Any change on a break-glass / protected account (detections.md §I).

Sees: accounts listed in ``[remediation] protected_accounts``. First scan: any inbox rule, mailbox forward, OAuth
grant, delegate, usable TAP or sent mail. Later scans: any difference from the previous scan in methods, roles,
grants, rules, forwarding or delegates, or sent mail. Break-glass accounts are expected to hold Global Administrator,
use FIDO2 and be idle — those are not findings.
Misses: sign-ins (not in the snapshot); changes in collections that could not be read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from detectors._common import is_protected, role_key
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rule_artefact
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="account.protected_account_change",
    title="Break-glass / protected account changed",
    severity=Severity.CRITICAL,
    technique="T1078.004",
    rationale="Emergency-access accounts never change in normal operation (Microsoft emergency-access guidance); a "
              "new method, grant, rule, forward or sent mail on one is an attacker using the keys to the tenant.",
    remediation=("revoke_sessions", "remove_auth_methods", "revoke_oauth_grants", "disable_rules",
                 "remove_forwarding"),
    requires=("user",),
    false_positives=("A documented break-glass test or credential rotation (record it; the finding is expected).",),
)


def _sets(a: AccountSnapshot) -> dict[str, set[str] | None]:
    def opt(name, fn):  # noqa: ANN001, ANN202
        v = a.get(name)
        return None if v is None else fn(v)

    return {
        "auth methods": opt("auth_methods", lambda v: {m.id for m in v}),
        "roles": opt("roles", lambda v: {role_key(r) for r in v if r.kind == "active"}),
        "oauth grants": opt("oauth_grants", lambda v: {f"{g.id}:{' '.join(g.scopes)}" for g in v}),
        "inbox rules": opt("inbox_rules", lambda v: {rule_artefact(r) for r in v}),
        "forwarding": opt("forwarding", lambda v: {x for x in (v.forwarding_smtp_address, v.forwarding_address)
                                                   if x}),
        "delegates": opt("delegates", lambda v: {f"{d.trustee}:{d.access_right}" for d in v}),
    }


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    if not is_protected(account, ctx):
        return
    changes: list[str] = []
    cur = _sets(account)
    if ctx.previous is None:
        for name in ("inbox rules", "forwarding", "oauth grants", "delegates"):
            if cur[name]:
                changes.append(f"{name} present: {len(cur[name] or ())}")
        for m in account.get("auth_methods") or ():
            if m.method_type == "temporaryAccessPassAuthenticationMethod" and m.is_usable:
                changes.append("usable Temporary Access Pass")
    else:
        prev = _sets(ctx.previous)
        for name, now_set in cur.items():
            before = prev[name]
            if now_set is None or before is None or now_set == before:
                continue
            added, removed = len(now_set - before), len(before - now_set)
            changes.append(f"{name} changed (+{added} / -{removed})")
    s = account.get("sending")
    if s is not None and (s.sent_last_24h or 0) > 0:
        changes.append(f"sent {s.sent_last_24h} messages in 24 h")
    if not changes:
        return
    key = hashlib.sha256("|".join(changes).encode()).hexdigest()[:12]
    yield make_finding(META, account, evidence={"changes": changes}, artefact=f"protected:{key}", score=50)
