"""Financial / payroll keywords on a forwarding or hiding rule (detections.md §B4 — an amplifier only).

Sees: invoice, payment, remittance, wire, ACH, bank details, IBAN, payroll, direct deposit, W-2 … (and a few
German/French/Spanish/Italian/Dutch forms) in rule conditions, when the same rule forwards outside the tenant
(not an allow-listed partner, nor covered by a documented outbound-policy exception: detectors/_outbound.py) or
deletes / moves to a low-visibility folder.
Misses: keywords alone (AP clerks filing invoices into an "Invoices" folder is normal and not reported).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import excepted
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_financial_keywords",
    title="Forwarding or hiding inbox rule targets payment and payroll mail",
    severity=Severity.MEDIUM,
    technique="T1114.003",
    rationale="Payment-diversion and payroll-diversion fraud watches and intercepts money threads: rules scoped to "
              "invoice, wire or direct-deposit keywords that forward or hide mail.",
    remediation=("disable_rules",),
    requires=("inbox_rules",),
    false_positives=("AP/AR mailboxes filing invoices into purpose-named folders (not reported: no forward/hide).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx):
        if not rv.financial_hits or not rv.rule.is_enabled:
            continue
        fwd = [d for d in rv.external_destinations if d.domain_class != "partner" and not excepted(account, ctx, d)]
        if not (fwd or rv.hides):
            continue
        ev = {**rv.evidence(), "keywords": list(rv.financial_hits)}
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, score=15,
                           technique="T1114.003" if fwd else "T1564.008")
