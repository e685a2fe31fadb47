"""Profile mobile phone / alternate e-mail changed since the last scan (detections.md §H1).

Sees: ``mobilePhone`` and ``otherMails`` compared with the previous scan; *linked* when the new value is an external
forwarding destination or contact address of *another* account, or a phone another account uses — the attacker's
address showing up in two places. Links on the same account (and on a first scan) are ``contact.linked_artefact``.
Misses: changes on the first scan (no baseline); business phone changes.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import norm_phone
from detectors._domains import address_of, is_freemail
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="contact.contact_info_changed",
    title="Mobile phone or alternate e-mail changed since the last scan",
    severity=Severity.LOW,
    technique="T1098",
    rationale="Help-desk verification and recovery flows use these attributes; Microsoft lists unusual profile "
              "changes as a compromise sign and asks to verify contact details after a compromise.",
    remediation=("revoke_sessions",),
    requires=("user",),
    false_positives=("HR system sync; users entering a personal backup address.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    if ctx.previous is None:
        return
    me = account.upn.lower()
    u, p = account.user, ctx.previous.user
    if norm_phone(u.mobile_phone) != norm_phone(p.mobile_phone) and u.mobile_phone:
        ph = norm_phone(u.mobile_phone)
        others = (set(ctx.facts.auth_phones.get(ph, frozenset())) |
                  set(ctx.facts.mobile_phones.get(ph, frozenset()))) - {me}
        ev: dict[str, object] = {"field": "mobilePhone", "old": p.mobile_phone, "new": u.mobile_phone}
        if others:
            ev["linked_to"] = sorted(others)[:20]
        yield make_finding(META, account, evidence=ev, artefact=f"mobile:{ph}",
                           severity=Severity.HIGH if others else Severity.LOW, score=30 if others else 5)
    before = {a for a in (address_of(x) for x in p.other_mails) if a}
    for a in sorted({a for a in (address_of(x) for x in u.other_mails) if a} - before):
        # Only *other* accounts make ``linked_to``: the same address as this account's own forward target is scored
        # once, by contact.linked_artefact (a user adding the personal mailbox they already forward to as a backup
        # address is a documented benign pair, §H1 / Microsoft's self-forwarding note).
        linked = sorted((set(ctx.facts.forward_destinations.get(a, frozenset())) |
                         set(ctx.facts.contact_addresses.get(a, frozenset()))) - {me})
        ev = {"field": "otherMails", "added": a, "freemail": is_freemail(a.rsplit("@", 1)[-1])}
        if linked:
            ev["linked_to"] = linked[:20]
        # The link's points live in contact.linked_artefact (family "link"); here the change itself is scored.
        yield make_finding(META, account, evidence=ev, artefact=f"othermail:{a}",
                           severity=Severity.HIGH if linked else Severity.LOW, score=10 if linked else 5)
