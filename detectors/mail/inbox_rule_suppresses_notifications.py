"""Inbox rule hides bounces, auto-replies or account-security notifications (detections.md §B8).

Sees: ``isNonDeliveryReport`` / ``isAutomaticReply`` conditions and NDR/auto-reply words ("Undeliverable", "Delivery
has failed", "Automatic reply" …), and Microsoft security-mail words ("security info", "new sign-in", "verification
code", "authenticator" …) on a rule that deletes or moves to a low-visibility folder.
Misses: admins filing alerts into a custom folder (silent); DMARC report deletion (not matched).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_suppresses_notifications",
    title="Inbox rule hides bounces, auto-replies or security notifications",
    severity=Severity.HIGH,
    technique="T1564.008",
    rationale="After mass phishing from a taken-over mailbox attackers delete the bounces and out-of-office replies, "
              "and they hide the 'new sign-in / security info changed' mail that would alert the user.",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Auto-reply suppression on a shared mailbox (reported Low).",
                     "IT admins filing Microsoft alerts into a custom folder (silent)."),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    shared = (account.user.mailbox_type or "").lower() in ("sharedmailbox", "roommailbox", "equipmentmailbox")
    for rv in rules_of(account, ctx):
        if not (rv.ndr_hits or rv.notice_hits) or not rv.hides:
            continue
        ev = {**rv.evidence(), "ndr": list(rv.ndr_hits), "security_notifications": list(rv.notice_hits)}
        sev, score = Severity.HIGH, 30
        only_auto_reply = rv.ndr_hits and not rv.notice_hits and all(
            "auto" in h.lower() or "office" in h.lower() for h in rv.ndr_hits)
        if shared and only_auto_reply:
            sev, score = Severity.LOW, 5
        if not rv.rule.is_enabled:
            sev, score = Severity.LOW, 3
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score)
