"""Inbox rule deletes or permanently deletes mail (detections.md §B2/§J "delete / permanentDelete").

Sees: ``delete`` / ``permanentDelete`` actions on server-side rules; stays silent for rules keyed only on automated
senders (newsletters, no-reply, notifications) — the everyday "delete this newsletter" rule.
Misses: deletion done by hand or by an API client (no rule); client-only rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_deletes_mail",
    title="Inbox rule deletes incoming mail",
    severity=Severity.LOW,
    technique="T1564.008",
    rationale="Deleting rules remove warnings, replies and bounces before the victim sees them; permanent delete "
              "also bypasses Deleted Items.",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Users deleting newsletters or notification mail (silent when keyed on automated senders).",),
    # Misses note: rules on bounces / auto-replies / security notices are left to
    # mail.inbox_rule_suppresses_notifications so one rule is not scored twice.
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not (rv.delete or rv.permanent_delete):
            continue
        if rv.keyed_on_automated_sender and not rv.conditions_empty:
            continue
        if rv.ndr_hits or rv.notice_hits:
            continue  # bounce / auto-reply / security-notice deletion is scored by the notification detector
        ev = {**rv.evidence(), "permanent": rv.permanent_delete}
        sev, score = (Severity.MEDIUM, 25) if rv.permanent_delete else (Severity.LOW, 15)
        if not rv.rule.is_enabled:
            sev, score = Severity.LOW, 3
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score,
                           title="Inbox rule permanently deletes incoming mail" if rv.permanent_delete else None)
