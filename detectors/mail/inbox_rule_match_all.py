"""Inbox rule crafted to match every message, or with obfuscated conditions (detections.md §B5).

Sees: NUL characters, invisible/zero-width or mixed-script characters in keywords, single letters and semicolon
letter lists, size ranges starting below 1 KB with an open/wide maximum ("Inboxfuscation"); and empty conditions on a
rule that forwards externally, deletes, marks read or moves to a low-visibility folder.
Misses: obfuscation in exception clauses; match-all rules whose action is benign (moving everything into a custom
folder) are not reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import excepted
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_match_all",
    title="Inbox rule is crafted to match every message",
    severity=Severity.CRITICAL,
    technique="T1564.008",
    rationale="Null-character, invisible-character and tiny-size-range conditions make a rule look targeted while it "
              "applies to all mail (Permiso Inboxfuscation); they have no ordinary use.",
    remediation=("disable_rules", "revoke_sessions", "reset_password"),
    requires=("inbox_rules",),
    false_positives=("Empty-condition rules with benign actions (internal forward during leave, categorise) are not "
                     "reported.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        ext = [d for d in rv.external_destinations if d.domain_class != "partner" and not excepted(account, ctx, d)]
        bad_action = bool(ext) or rv.hides or rv.mark_as_read
        if not bad_action:
            continue
        tech = "T1114.003" if ext else "T1564.008"
        if rv.obfuscation:
            ev = {**rv.evidence(), "obfuscation": list(rv.obfuscation)}
            sev, score = (Severity.CRITICAL, 40) if rv.rule.is_enabled else (Severity.MEDIUM, 10)
            yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score,
                               technique=tech)
        elif rv.conditions_empty and (ext or rv.hides):
            ev = {**rv.evidence(), "empty_conditions": True}
            enabled = rv.rule.is_enabled
            yield make_finding(META, account, evidence=ev, artefact=rv.artefact,
                               severity=Severity.HIGH if enabled else Severity.LOW, score=15 if enabled else 2,
                               technique=tech,
                               title="Forwarding or hiding inbox rule applies to every message")
