"""Inbox rule that forwards, forwards as attachment or redirects mail outside the tenant (detections.md §B1).

Sees: every server-side rule Graph or ``Get-InboxRule -IncludeHidden`` returns, enabled or not; destination class
decided exactly (tenant domain or dot-separated subdomain = internal; look-alike > free-mail > external; allow-listed
partner suppressed); elevators in the same rule (hides the original, no conditions, stop processing); what the
outbound spam policy and remote domains do to the worst destination (evidence ``delivery``), and a documented
outbound-policy exception covering every external destination of the rule, all of them ordinary external domains
(never free-mail or look-alikes), which suppresses the finding to Info — unless the rule also hides, marks read or
deletes the original (not what a documented forwarding exception looks like).
Misses: client-only Outlook rules, transport rules, forwards to internal addresses that are themselves forwarded out
(the campaign detector links destinations across accounts); outbound rules scoped by group membership (cannot tell:
not suppressed).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import assess
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_external_forward",
    title="Inbox rule forwards mail to an external address",
    severity=Severity.HIGH,
    technique="T1114.003",
    rationale="Attackers add a forwarding rule so copies of mail (often only invoices or payment threads) keep "
              "reaching them after the password is reset.",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=(
        "Approved forwarding to a partner or parent company: allow-list its domain with a reason.",
        "Forwarding to a SaaS intake address (ticketing, CRM, e-fax): allow-list the address.",
        "Self-forward to a personal mailbox (policy problem, not takeover).",
    ),
)

RANK = {"lookalike": 3, "freemail": 2, "external": 1, "partner": 0}
CLASS_SCORE = {"external": 25, "freemail": 40, "lookalike": 60}


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        ext = rv.external_destinations
        if not ext:
            continue
        worst = max(ext, key=lambda d: RANK[d.domain_class])
        ev = {**rv.evidence(), **worst.evidence(),
              "destinations": [d.evidence() for d in ext]}
        if worst.domain_class == "partner":
            f = make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=Severity.INFO)
            yield suppressed(f, f"allowlist: {worst.allow_entry.value if worst.allow_entry else ''}")
            continue
        ev.update(assess(account, ctx, worst).evidence)
        # Suppressed only when a documented exception covers every destination that is not an allow-listed partner.
        covered = [assess(account, ctx, d).suppress for d in ext if d.domain_class != "partner"]
        if covered and all(covered) and not (rv.hides_or_marks_read or rv.delete or rv.permanent_delete):
            f = make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=Severity.INFO)
            yield suppressed(f, covered[0] or "")
            continue
        sev = Severity.CRITICAL if worst.domain_class == "lookalike" else Severity.HIGH
        score = CLASS_SCORE[worst.domain_class]
        if rv.hides_or_marks_read or rv.conditions_empty:
            sev = Severity.CRITICAL
        if rv.delete or rv.permanent_delete:
            score += 10  # forward/redirect then delete: the user keeps no copy
            ev["kept_copy"] = False
        if not rv.rule.is_enabled:
            # A disabled old forward is mostly stale hygiene; it still shows intent if it flips back on.
            sev, score = Severity.LOW, 5
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score)

