"""Inbox rule hides mail about being hacked / phished (detections.md §B3).

Sees: conditions containing security words (hacked, phish, compromised, hijacked, malware, virus, fraud, scam, fake,
helpdesk, "do not open/click", "not me", "did you send" …, after Unicode normalisation and homoglyph folding) on a rule
that deletes, moves to a low-visibility folder or marks as read.
Misses: keywords in other languages beyond the few folded forms; rules keyed only on a bare "[SPAM]" gateway tag are
deliberately ignored (users route tagged spam away); rules filing reports into a purpose-named custom folder.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_security_keywords",
    title="Inbox rule hides mail that warns the user their account is compromised",
    severity=Severity.HIGH,
    technique="T1564.008",
    rationale="Attackers delete messages containing 'hacked', 'phishing' or 'did you send this' so colleagues' "
              "warnings never reach the victim (MITRE T1564.008; Sentinel Malicious_Inbox_Rule).",
    remediation=("disable_rules", "revoke_sessions", "reset_password"),
    requires=("inbox_rules",),
    false_positives=("A SOC analyst filing user-reported phish into a working folder (custom folder, no delete): "
                     "silent.", "Deleting gateway-tagged [SPAM] mail: not counted as a security keyword."),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not rv.security_hits or not (rv.hides or rv.mark_as_read):
            continue
        if rv.move is not None and rv.move.kind == "custom" and not (rv.delete or rv.permanent_delete):
            continue
        ev = {**rv.evidence(), "keywords": list(rv.security_hits)}
        score = 35 if rv.rule.is_enabled else 5
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, score=score,
                           severity=Severity.HIGH if rv.rule.is_enabled else Severity.LOW)
