"""Junk-named inbox rule that forwards or hides mail (detections.md §B6).

Sees: rule names made only of punctuation/whitespace (".", "..", ",", ";"), ≤ 2 characters, repeated letters, or
invisible / mixed-script characters — on a rule that forwards externally, deletes, moves to a low-visibility folder or
marks read.
Misses: junk names on rules with benign actions (a "-" rule filing HR mail into an HR folder) — not reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import excepted
from detectors._rules import is_junk_name, rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_junk_name",
    title="Forwarding or hiding inbox rule has a meaningless name",
    severity=Severity.MEDIUM,
    technique="T1564.008",
    rationale="Malicious rules overwhelmingly use minimal names ('.', '...', ';'), often created seconds after the "
              "attacker signs in (Proofpoint, Darktrace, Elastic inbox_rule_obfuscated_name).",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("Users occasionally name rules '-' or 'x': reported only when the rule forwards or hides.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not is_junk_name(rv.rule.display_name):
            continue
        ext = [d for d in rv.external_destinations if d.domain_class != "partner" and not excepted(account, ctx, d)]
        if not (ext or rv.hides or (rv.mark_as_read and not rv.keyed_on_automated_sender)):
            continue
        # A disabled rule runs on nothing: Low with its 2 points (a Medium finding worth 2 said two things).
        yield make_finding(META, account, evidence=rv.evidence(), artefact=rv.artefact,
                           severity=Severity.MEDIUM if rv.rule.is_enabled else Severity.LOW,
                           score=10 if rv.rule.is_enabled else 2)
