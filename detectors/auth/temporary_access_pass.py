"""Usable Temporary Access Pass on the account (detections.md §C2).

Sees: ``temporaryAccessPassAuthenticationMethod`` with ``isUsable`` true (or unknown and created since the last
scan); Critical on a privileged account; Low on an account created within the last week (onboarding).
Misses: TAPs already used and expired (``isUsable`` false) — not reported; who issued the TAP (audit log only).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from detectors._common import aware, is_privileged, new_methods
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.temporary_access_pass",
    title="Usable Temporary Access Pass on the account",
    severity=Severity.HIGH,
    technique="T1556.006",
    rationale="A TAP bypasses every existing MFA method; an attacker with an admin role issues one and then registers "
              "persistent methods (Elastic and Sigma rate TAP creation High).",
    remediation=("remove_auth_methods", "revoke_sessions"),
    requires=("auth_methods",),
    false_positives=("Onboarding and passwordless bootstrap of new hires (Low on accounts created within 7 days).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    methods = account.require("auth_methods")
    new_ids = {m.id for m, _ in new_methods(account, ctx)}
    priv = is_privileged(account, ctx)
    created = aware(account.user.created_date_time)
    new_hire = created is not None and ctx.now - created <= timedelta(days=7)
    for m in methods:
        if m.method_type != "temporaryAccessPassAuthenticationMethod":
            continue
        if m.is_usable is False or (m.is_usable is None and m.id not in new_ids):
            continue
        ev = {"method_id": m.id, "is_usable": m.is_usable, "privileged": priv,
              "lifetime_in_minutes": m.lifetime_in_minutes, "also_technique": "T1078.004"}
        if m.start_date_time is not None:
            ev["start"] = m.start_date_time.isoformat()
        if priv:
            sev, score = Severity.CRITICAL, 35
        elif new_hire:
            sev, score = Severity.LOW, 3
            ev["new_hire"] = True
        else:
            sev, score = Severity.HIGH, 15
        yield make_finding(META, account, evidence=ev, artefact=f"method:{m.id}", severity=sev, score=score)
