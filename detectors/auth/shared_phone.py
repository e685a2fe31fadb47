"""Phone authentication method shared with another account (detections.md §C1 elevator, §J linking).

Sees: phone numbers (normalised to digits) registered as an authentication method on this account that are also a
method or the profile mobile phone of another scanned account. Medium when this account's method is new (created
recently, first seen since the last scan, or its number changed since then): the attacker's phone spreading over
taken-over accounts (§C1 elevator, §6 "same phone number ... appearing on several accounts overnight"). A standing
shared number (the first scan of a method without a creation time, or unchanged since the last scan) is Low and scores
below the suspicious line on its own: an admin and their admin account, a team's on-call phone (§C1 false positives).
Misses: attacker numbers used on only one account; numbers the collector could not read (masked numbers compare on
the visible digits only).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import new_methods, norm_phone, real_methods
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.shared_phone",
    title="Authentication phone number is also registered on another account",
    severity=Severity.MEDIUM,
    technique="T1556.006",
    rationale="An attacker who registers the same phone on several taken-over accounts links them; a number shared "
              "across accounts has no place in per-user MFA. Medium when this account's method is new since the last "
              "scan (evidence new: true); a standing shared number is Low.",
    remediation=("remove_auth_methods",),
    requires=("auth_methods",),
    false_positives=("A shared on-call or desk phone used by a team for MFA (move them to individual methods).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    me = account.upn.lower()
    fresh_ids = {m.id for m, _why in new_methods(account, ctx)}
    before: set[tuple[str, str]] | None = None  # (method id, number) last scan; phone methods have fixed ids
    prev = ctx.previous.get("auth_methods") if ctx.previous is not None else None
    if prev is not None:
        before = {(m.id, norm_phone(m.phone_number)) for m in real_methods(prev)}
    for m in real_methods(account.require("auth_methods")):
        p = norm_phone(m.phone_number)
        if len(p) < 6:
            continue
        others = set(ctx.facts.auth_phones.get(p, frozenset())) | set(ctx.facts.mobile_phones.get(p, frozenset()))
        others.discard(me)
        if not others:
            continue
        new = m.id in fresh_ids or (before is not None and (m.id, p) not in before)
        ev = {"method_id": m.id, "phone": m.phone_number, "other_accounts": sorted(others)[:20],
              "account_count": len(others) + 1, "new": new}
        yield make_finding(META, account, evidence=ev, artefact=f"method:{m.id}",
                           severity=Severity.MEDIUM if new else Severity.LOW, score=20 if new else 8)
