"""Inbox rule marks mail as read in place (detections.md §B2 mark-as-read).

Sees: ``markAsRead`` on a rule that neither moves nor deletes (those cases are scored by the folder/delete
detectors), not keyed on automated senders.
Misses: mark-as-read done by a client or API.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_marks_read",
    title="Inbox rule silently marks incoming mail as read",
    severity=Severity.LOW,
    technique="T1564.008",
    rationale="Marking matching mail as read keeps replies to the attacker's messages from drawing attention.",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Users marking notification mail read (silent when keyed on automated senders).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not rv.mark_as_read or rv.move is not None or rv.delete or rv.permanent_delete:
            continue
        if rv.keyed_on_automated_sender:
            continue
        score = 10 if rv.rule.is_enabled else 2
        yield make_finding(META, account, evidence=rv.evidence(), artefact=rv.artefact, score=score)
