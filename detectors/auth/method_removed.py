"""Authentication methods removed since the last scan (detections.md §C3).

Sees: method ids present in the previous scan and gone tonight; a removal with a new method of the same type in the
same window is a likely device replacement (Low).
Misses: per-user MFA being disabled (not in the Graph methods list); removals on the first scan (no baseline).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import method_label, new_methods, real_methods
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.method_removed",
    title="Authentication method removed since the last scan",
    severity=Severity.MEDIUM,
    technique="T1556.006",
    rationale="Attackers delete the victim's FIDO2 key or authenticator so that only their own method remains "
              "(Elastic/Sigma/Splunk/Panther 'MFA disabled / security info deleted').",
    remediation=("revoke_sessions", "reset_password"),
    requires=("auth_methods",),
    false_positives=("Device replacement: old method removed and a new one of the same type added (Low).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    current = real_methods(account.require("auth_methods"))
    if ctx.previous is None:
        return
    prev = ctx.previous.get("auth_methods")
    if prev is None:
        return
    cur_ids = {m.id for m in current}
    new_types = {m.method_type for m, _ in new_methods(account, ctx)}
    for m in real_methods(prev):
        if m.id in cur_ids:
            continue
        replaced = m.method_type in new_types
        ev = {"method_id": m.id, "method_type": m.method_type, "method": method_label(m), "replaced": replaced}
        yield make_finding(META, account, evidence=ev, artefact=f"removed:{m.id}",
                           severity=Severity.LOW if replaced else Severity.MEDIUM, score=5 if replaced else 10)
