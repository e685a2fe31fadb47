"""A mail-flow (transport) rule that redirects, Bccs or copies the organisation's mail outside the tenant
(detections.md §0.1: "forwarding lives in three places"; Sentinel ``Mail_redirect_via_ExO_transport_rule``, Splunk
``o365_new_forwarding_mailflow_rule_created``, Elastic ``exfiltration_exchange_transport_rule_creation``). A
TENANT-LEVEL detector: it runs once per scan over ``TenantInfo.transport_rules`` and reports each rule once.

Why: an attacker holding an Exchange admin role adds one rule and receives copies of *everyone's* matching mail (all
of it, or just what mentions invoices and payments) — no mailbox shows a forward or an inbox rule, and resetting the
users' passwords changes nothing.

Sees: ``Get-TransportRule``'s recipient actions — ``RedirectMessageTo`` (redirect: the intended recipients never get
it), ``BlindCopyTo`` (Bcc: invisible to sender and recipients), ``CopyTo`` (Cc) and ``AddToRecipients`` (To), the
latter two visible in the message's headers. Each destination is classified exactly (detectors/_domains.py): a tenant
domain or a dot-separated subdomain of one is internal and never flagged; a look-alike of the tenant's domain ranks
above free-mail, which ranks above any other external domain. Severity: a redirect / Bcc to a look-alike → Critical
(50); to free-mail → High (35), Critical when the rule takes every message or selects finance mail (invoice, payment,
wire …); to another external domain → High (30); a visible Cc / To one level lower. A disabled rule is two levels
lower (at least Low), a rule in a test mode (``Mode`` Audit / AuditAndNotify: actions logged, not applied) one level
lower. Destinations in ``[allowlist] forwarding_domains`` / ``forwarding_addresses`` are partners: a rule sending
only to them is shown suppressed at Info. New since the previous scan: a rule (or a change to its destinations,
conditions, state or mode) the previous scan's rules did not have; a previous scan that could not read the rules is
no baseline (standing).

Misses: who created or changed the rule (the audit log's New-TransportRule / Set-TransportRule; ``WhenChanged`` is
in the evidence); ``AddManagerAsRecipientType`` (a manager is always inside the organisation);
``RouteMessageOutboundConnector`` (where an outbound connector delivers is the connector's configuration, not read);
a destination printed as a name rather than an address (Exchange stores rule recipients as addresses, so this is
rare; it is listed as unresolved, not judged); journal rules (``Get-JournalRule``) and the outbound spam policy's
auto-forwarding setting; everything when Get-TransportRule could not be read (a coverage gap naming the Exchange role,
never "clean").

Findings name a PSEUDO-ACCOUNT ``transportrule:<rule name>``. It has no verdict row, so auto-remediation never acts on
it; the evidence's ``what_to_do`` names the ``Disable-TransportRule`` call for the admin to run by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from detectors._common import suppressed
from detectors._domains import DomainVerdict, address_of, classify
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, TenantFacts, make_tenant_finding
from detectors._transport import (
    baseline,
    disable_command,
    fingerprint,
    iso,
    keywords,
    lowered,
    require_rules,
    scope_words,
    state_words,
    tr_label,
)
from scanner.snapshot import TenantInfo, TransportRule

META = DetectorMeta(
    id="mail.transport_rule_external_forward",
    title="Mail-flow (transport) rule redirects or copies mail outside the organisation",
    severity=Severity.HIGH,
    technique="T1114.003",
    rationale="A transport rule acts on the whole organisation's mail flow: one rule added with an admin account "
              "redirects or blind-copies every matching message to the attacker, and no mailbox shows it. Microsoft "
              "lists transport rules as one of the three places forwarding lives.",
    manual=("Disable the rule first (Exchange admin center > Mail flow > Rules, or Disable-TransportRule "
           '-Identity "<rule name>"), check who created or changed it (the admin audit log), then remove it '
           "if it is not approved."),
    requires=("transport_rules",),
    false_positives=("Journaling or archiving to an external vendor, or copies to an outsourced partner (bookkeeper, "
                     "legal hold service): allow-list the destination domain in [allowlist] forwarding_domains with "
                     "a reason.",
                     "A rule kept disabled after a project ended (Low): delete it."),
)

# property, action word, covert (the original recipients cannot see it)
ACTIONS = (("redirect_message_to", "RedirectMessageTo", "redirect", True),
           ("blind_copy_to", "BlindCopyTo", "bcc", True),
           ("copy_to", "CopyTo", "cc", False),
           ("add_to_recipients", "AddToRecipients", "to", False))
_VERB = {"redirect": "redirects mail to", "bcc": "sends a blind copy (Bcc) to", "cc": "sends a copy (Cc) to",
         "to": "adds as a To recipient"}
_CLASS_RANK = {"lookalike": 3, "freemail": 2, "external": 1}
_SCORE = {Severity.CRITICAL: 50, Severity.HIGH: 35, Severity.MEDIUM: 15, Severity.LOW: 5, Severity.INFO: 0}


def _destinations(rule: TransportRule, ctx: ScanContext) -> tuple[list[tuple[str, str, bool, DomainVerdict]],
                                                                   list[str]]:
    """((property, action, covert, verdict) for every address, names that are not an address)."""
    out: list[tuple[str, str, bool, DomainVerdict]] = []
    unresolved: list[str] = []
    for attr, prop, action, covert in ACTIONS:
        for raw in getattr(rule, attr):
            a = address_of(raw)
            if a is None:
                unresolved.append(raw)
                continue
            out.append((prop, action, covert, classify(a, ctx.tenant.domains, ctx.allowlist, ctx.now)))
    return out, unresolved


def _severity(dv: DomainVerdict, covert: bool, wide: bool) -> Severity:
    if dv.domain_class == "lookalike":
        sev = Severity.CRITICAL
    elif dv.domain_class == "freemail":
        sev = Severity.CRITICAL if (wide and covert) else Severity.HIGH
    else:
        sev = Severity.HIGH
    return sev if covert else lowered(sev, 1)


def detect_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext) -> Iterator[Finding]:
    rules = require_rules(tenant)
    before, no_baseline = baseline(ctx, lambda r: fingerprint(r, "forward"))
    for rule in rules:
        dests, unresolved = _destinations(rule, ctx)
        outside = [d for d in dests if d[3].external]
        if not outside:
            continue
        flagged = [d for d in outside if d[3].domain_class != "partner"]
        fin = keywords(rule)
        wide = not rule.conditions or bool(fin)
        running, minus = state_words(rule)
        if flagged:
            worst = max(flagged, key=lambda d: (int(_severity(d[3], d[2], wide)), _CLASS_RANK.get(d[3].domain_class, 0)))
            sev = lowered(_severity(worst[3], worst[2], wide), minus)
        else:
            worst, sev = outside[0], Severity.INFO
        artefact = fingerprint(rule, "forward")
        new = before is not None and artefact not in before
        actions = [{"action": action, "property": prop, "covert": covert, **dv.evidence()}
                   for prop, action, covert, dv in outside]
        ev: dict[str, object] = {
            "rule": rule.name, "identity": rule.identity, "guid": rule.guid, "priority": rule.priority,
            "state": rule.state, "enabled": rule.enabled, "mode": rule.mode, "running": running,
            "actions": actions, "destinations": sorted({str(a["destination"]) for a in actions}),
            "domain_class": worst[3].domain_class,
            "conditions": dict(rule.conditions), "exceptions": dict(rule.exceptions),
            "applies_to_all_mail": not rule.conditions, "financial_keywords": fin,
            "unresolved_recipients": unresolved, "route_message_outbound_connector": rule.route_message_outbound_connector,
            "when_changed": iso(rule.when_changed), "exchange_description": rule.description,
            "comments": rule.comments, "tenant_wide": True, "new": new, "techniques": ["T1114.003"],
        }
        if worst[3].lookalike_of:
            ev["lookalike_of"] = worst[3].lookalike_of
        ev["summary"] = _summary(rule, outside, running, fin, new)
        ev["what_to_do"] = _what_to_do(rule)
        f = make_tenant_finding(META, tr_label(rule), evidence=ev, artefact=artefact, severity=sev,
                                score=_SCORE[sev], new_since_last_scan=new if before is not None else
                                (False if no_baseline else None))
        if not flagged:
            entries = sorted({str(dv.allow_entry.value) + (f" ({dv.allow_entry.reason})" if dv.allow_entry.reason
                                                              else "")
                              for *_x, dv in outside if dv.allow_entry is not None})
            f = dataclasses.replace(suppressed(f, "allowlist: " + "; ".join(entries)), severity=Severity.INFO,
                                    score=0)
        yield f


def _summary(rule: TransportRule, outside: list[tuple[str, str, bool, DomainVerdict]], running: str,
             fin: list[str], new: bool) -> str:
    parts = []
    for _prop, action, _covert, dv in outside:
        what = {"lookalike": f"a look-alike of {dv.lookalike_of}", "freemail": "a free-mail address",
                "partner": "an allow-listed partner", "external": "outside the organisation"}.get(dv.domain_class,
                                                                                                   dv.domain_class)
        parts.append(f"{_VERB[action]} {dv.address} ({what})")
    scope = scope_words(rule)
    if fin:
        scope += f" — finance mail ({', '.join(fin)})"
    text = (f"The mail-flow rule '{rule.name}' ({running}) {'; '.join(parts)} for {scope}. It acts on the whole "
            "organisation's mail flow, not on one mailbox, so no inbox rule or mailbox forward shows it.")
    if rule.when_changed:
        text += f" Last changed {iso(rule.when_changed)}."
    if new:
        text += " It is new (or changed) since the last scan."
    return text


def _what_to_do(rule: TransportRule) -> str:
    return (f"If the rule is not sanctioned: disable it now without deleting it (evidence) — {disable_command(rule)}, "
            "or Exchange admin center > Mail flow > Rules; find who created or changed it (audit log: "
            "New-TransportRule / Set-TransportRule) and investigate that admin account; trace what already left "
            "with a message trace to the destination. If it is sanctioned: allow-list the destination domain in "
            "[allowlist] forwarding_domains with a reason.")
