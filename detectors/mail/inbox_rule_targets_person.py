"""Inbox rule hides mail from a specific person or from IT / security senders (detections.md §B7).

Sees: ``fromAddresses`` / ``senderContains`` that are people (not automated senders) or IT/security/Microsoft
account-protection senders, on a rule that deletes or moves to a low-visibility folder.
Misses: rules on a person that move to a purpose-named custom folder ("From my manager → Boss": normal, silent).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._domains import classify
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import is_automated_sender, rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_targets_person",
    title="Inbox rule hides mail from a specific correspondent or from IT/security",
    severity=Severity.HIGH,
    technique="T1564.008",
    rationale="Deleting all mail from the CFO, a vendor's AP contact or the help desk lets the attacker impersonate "
              "them or hijack the thread without the victim noticing (Barracuda, Proofpoint).",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Filing a manager's mail into a custom folder (silent); blocking one persistent individual "
                     "marketer by hand-written delete rule.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not rv.senders or not rv.hides:
            continue
        security = list(rv.security_senders)
        people = [s for s in rv.senders if not is_automated_sender(s) and s not in security]
        if not (security or people):
            continue
        targets = []
        for s in security + people:
            cls = classify(s, ctx.tenant.domains).domain_class if "@" in s else "name"
            targets.append({"sender": s, "class": cls, "security_sender": s in security})
        ev = {**rv.evidence(), "targets": targets}
        if rv.move is not None:
            ev.update(rv.move.evidence())
        if security:
            sev, score = Severity.CRITICAL, 35
        else:
            sev, score = Severity.HIGH, 25
        if not rv.rule.is_enabled:
            sev, score = Severity.LOW, 3
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score)
