"""Phone authentication method shared with another account (detections.md §C1 elevator, §J linking).

Sees: phone numbers (normalised to digits) registered as an authentication method on this account that are also a
method or the profile mobile phone of another scanned account.
Misses: attacker numbers used on only one account; numbers the collector could not read (masked numbers compare on
the visible digits only).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import norm_phone, real_methods
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.shared_phone",
    title="Authentication phone number is also registered on another account",
    severity=Severity.MEDIUM,
    technique="T1556.006",
    rationale="An attacker who registers the same phone on several taken-over accounts links them; a number shared "
              "across accounts has no place in per-user MFA.",
    remediation=("remove_auth_methods",),
    requires=("auth_methods",),
    false_positives=("A shared on-call or desk phone used by a team for MFA (move them to individual methods).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    me = account.upn.lower()
    for m in real_methods(account.require("auth_methods")):
        p = norm_phone(m.phone_number)
        if len(p) < 6:
            continue
        others = set(ctx.facts.auth_phones.get(p, frozenset())) | set(ctx.facts.mobile_phones.get(p, frozenset()))
        others.discard(me)
        if not others:
            continue
        ev = {"method_id": m.id, "phone": m.phone_number, "other_accounts": sorted(others)[:20],
              "account_count": len(others) + 1}
        yield make_finding(META, account, evidence=ev, artefact=f"method:{m.id}", score=20)
