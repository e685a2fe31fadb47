"""Inbox rule hidden from Outlook and Graph (only ``Get-InboxRule -IncludeHidden`` shows it) (detections.md §0.7).

Sees: rules the collector read only through Exchange with the hidden flag, excluding Exchange's own hidden rules
(``Junk E-mail Rule``, ``Microsoft.Exchange.OOF.*``, the calendar-delegate "Schedule+ EMS Interface" rule).
Misses: hidden rules when the Exchange path is not collected (the snapshot then has only Graph's rules); client-only
rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_hidden",
    title="Inbox rule is hidden from Outlook and Graph",
    severity=Severity.HIGH,
    technique="T1564.008",
    rationale="Rules created over MAPI with a hidden flag do not appear in Outlook, OWA or Graph; users cannot see "
              "or remove them, which is why attackers use them (Huntress, Compass Security).",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Third-party or legacy add-in rules stored hidden; Exchange system rules are excluded.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not rv.rule.hidden:
            continue
        score = 30 if rv.rule.is_enabled else 5
        yield make_finding(META, account, evidence=rv.evidence(), artefact=rv.artefact, score=score,
                           severity=Severity.HIGH if rv.rule.is_enabled else Severity.LOW)
