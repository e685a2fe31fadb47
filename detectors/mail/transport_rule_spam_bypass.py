"""A mail-flow (transport) rule that lets chosen senders skip spam and phishing filtering (``SetSCL -1``), the
tenant-level half of the mail-flow blind spot (detections.md §0.1, §M; CIS Microsoft 365 6.2.2 "mail transport rules
do not whitelist specific domains"; CIPP's ``CIS_6_2_2`` test). A TENANT-LEVEL detector over
``TenantInfo.transport_rules``, one finding per rule.

Why: an attacker with an Exchange admin role who plans phishing or payment fraud from a domain they control adds a
rule "Trusted vendor: sender domain is contoso-payments.com → set SCL to -1"; from then on their mail reaches every
inbox without spam, spoof or phish verdicts. ATT&CK T1562 (Impair Defenses: "maliciously modify components of a
victim environment in order to hinder or disable defensive mechanisms … preventative defenses", platform Office
Suite): the rule switches the organisation's mail filter off for those senders. No sub-technique fits exactly.

Sees: ``SetSCL`` -1 ("bypass spam filtering"), and the header tricks peers count as the same bypass
(``SetHeaderName`` ``X-Forefront-Antispam-Report`` with ``SFV:SKI`` / ``IPV:CAL``, and
``X-MS-Exchange-Organization-SkipSafeLinksProcessing`` / ``-SkipSafeAttachmentProcessing``). Who benefits is read from
the sender conditions (``SenderDomainIs``, ``From``, ``FromAddressContainsWords`` / ``MatchesPatterns``,
``SenderIpRanges``, ``FromScope``) and each sender domain classified exactly (detectors/_domains.py). Severity: the
tenant's own domain (spoofed "internal" mail skips filtering), a look-alike of it, a free-mail domain, or no sender
condition at all (every message) → High (30); another external domain or only sender IP ranges (usually a third-party
filtering gateway) → Medium (15). A rule that only matches mail from inside the organisation (``FromScope``
InOrganization) is not flagged. Disabled: two levels lower (at least Low); a test mode (Audit / AuditAndNotify): one
level lower. Sender domains all in ``[allowlist] forwarding_domains`` (the tenant's approved partners) → shown
suppressed at Info. New since the previous scan: as for ``mail.transport_rule_external_forward``.

Misses: the tenant's other allow mechanisms (the anti-spam policies' allowed senders and domains, the Tenant
Allow/Block List, connection-filter IP allow lists, advanced delivery); conditions that pick senders by other
properties (headers, AD attributes) are shown, not judged; who created the rule (audit log); everything when
Get-TransportRule could not be read (a coverage gap naming the Exchange role, never "clean").

Findings name a PSEUDO-ACCOUNT ``transportrule:<rule name>`` (no verdict row, never auto-remediated); ``what_to_do``
names the ``Disable-TransportRule`` call for the admin to run by hand.
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
    lowered,
    require_rules,
    scope_words,
    state_words,
    tr_label,
)
from scanner.snapshot import TenantInfo, TransportRule

META = DetectorMeta(
    id="mail.transport_rule_spam_bypass",
    title="Mail-flow (transport) rule lets senders bypass spam and phishing filtering",
    severity=Severity.MEDIUM,
    technique="T1562",
    rationale="A rule that sets the spam confidence level to -1 delivers the chosen senders' mail unfiltered to "
              "every inbox; attackers use it to land phishing and payment-fraud mail from a domain they control. "
              "CIS Microsoft 365 6.2.2: transport rules should not allow-list domains.",
    manual=("Disable the rule (Exchange admin center > Mail flow > Rules, or Disable-TransportRule -Identity "
           '"<rule name>") so filtering applies again; find who created it in the admin audit log; remove it '
           "unless the bypass is approved."),
    requires=("transport_rules",),
    false_positives=("A partner whose mail the filter wrongly junks: prefer the Tenant Allow/Block List, or allow-list "
                     "the domain in [allowlist] forwarding_domains with a reason (shown suppressed).",
                     "A third-party filtering gateway in front of Exchange Online, by its IP ranges (Medium): Microsoft "
                     "recommends Enhanced Filtering for Connectors instead of SCL -1."),
)

# (header lower case, value fragment lower case or "" for any value) -> what it skips
BYPASS_HEADERS = {
    ("x-forefront-antispam-report", "sfv:ski"): "spam filtering (SFV:SKI)",
    ("x-forefront-antispam-report", "ipv:cal"): "connection filtering (IPV:CAL)",
    ("x-ms-exchange-organization-skipsafelinksprocessing", ""): "Safe Links",
    ("x-ms-exchange-organization-skipsafeattachmentprocessing", ""): "Safe Attachments",
}
SENDER_CONDITIONS = ("SenderDomainIs", "From", "FromAddressContainsWords", "FromAddressMatchesPatterns",
                     "SenderIpRanges", "FromMemberOf", "FromScope", "HeaderContainsWords", "HeaderMatchesPatterns")
_HIGH_CLASSES = {"internal", "lookalike", "freemail"}


def _bypass(rule: TransportRule) -> list[str]:
    out = []
    if rule.set_scl == -1:
        out.append("spam filtering (SCL -1)")
    name, value = (rule.set_header_name or "").strip().lower(), (rule.set_header_value or "").lower()
    for (h, frag), what in BYPASS_HEADERS.items():
        if name == h and frag in value:
            out.append(what)
    return out


def _list(v: object) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in (v if isinstance(v, list | tuple) else [v]) if str(x).strip()]


def _sender_domains(rule: TransportRule) -> list[str]:
    doms: list[str] = []
    for d in _list(rule.conditions.get("SenderDomainIs")):
        d = d.strip().lstrip("@").lower()
        if d and d not in doms:
            doms.append(d)
    for raw in _list(rule.conditions.get("From")):
        a = address_of(raw)
        if a and a.rsplit("@", 1)[1] not in doms:
            doms.append(a.rsplit("@", 1)[1])
    return doms


def _judge(rule: TransportRule, ctx: ScanContext) -> tuple[Severity | None, list[DomainVerdict], str]:
    """(severity before state, sender-domain verdicts, who benefits in words); None: not flagged."""
    domains = _sender_domains(rule)
    verdicts = [classify(f"sender@{d}", ctx.tenant.domains, ctx.allowlist, ctx.now) for d in domains]
    c = rule.conditions
    if verdicts:
        active = [v for v in verdicts if v.domain_class != "partner"]
        if not active:
            return Severity.INFO, verdicts, "allow-listed partner domain(s) " + ", ".join(domains)
        sev = Severity.HIGH if any(v.domain_class in _HIGH_CLASSES for v in active) else Severity.MEDIUM
        return sev, verdicts, "mail from " + ", ".join(f"{v.domain} ({_class_words(v)})" for v in verdicts)
    if str(c.get("FromScope") or "").lower() == "inorganization":
        return None, [], "mail from inside the organisation"
    if any(k in c for k in SENDER_CONDITIONS if k != "FromScope"):
        return Severity.MEDIUM, [], scope_words(rule)
    if c:
        return Severity.MEDIUM, [], scope_words(rule) + " from any sender"
    return Severity.HIGH, [], "every message, from any sender"


def _class_words(v: DomainVerdict) -> str:
    return {"internal": "the tenant's own domain: spoofed mail claiming it skips filtering",
            "lookalike": f"a look-alike of {v.lookalike_of}", "freemail": "free-mail: anyone can send from it",
            "partner": "allow-listed partner", "external": "external"}.get(v.domain_class, v.domain_class)


def detect_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext) -> Iterator[Finding]:
    rules = require_rules(tenant)
    before, no_baseline = baseline(ctx, lambda r: fingerprint(r, "bypass"))
    for rule in rules:
        skips = _bypass(rule)
        if not skips:
            continue
        base, verdicts, who = _judge(rule, ctx)
        if base is None:
            continue
        running, minus = state_words(rule)
        sev = base if base == Severity.INFO else lowered(base, minus)
        artefact = fingerprint(rule, "bypass")
        new = before is not None and artefact not in before
        ev: dict[str, object] = {
            "rule": rule.name, "identity": rule.identity, "guid": rule.guid, "priority": rule.priority,
            "state": rule.state, "enabled": rule.enabled, "mode": rule.mode, "running": running,
            "bypasses": skips, "set_scl": rule.set_scl, "set_header_name": rule.set_header_name,
            "set_header_value": rule.set_header_value, "beneficiaries": who,
            "sender_domains": [v.evidence() for v in verdicts],
            "conditions": dict(rule.conditions), "exceptions": dict(rule.exceptions),
            "when_changed": iso(rule.when_changed), "exchange_description": rule.description,
            "comments": rule.comments, "tenant_wide": True, "new": new, "techniques": ["T1562"],
        }
        ev["summary"] = (f"The mail-flow rule '{rule.name}' ({running}) skips {', '.join(skips)} for {who}: that mail "
                         "reaches every inbox without spam, spoof or phishing verdicts."
                         + (f" Last changed {iso(rule.when_changed)}." if rule.when_changed else "")
                         + (" It is new (or changed) since the last scan." if new else ""))
        ev["what_to_do"] = (f"If the rule is not sanctioned: disable it ({disable_command(rule)}, or Exchange admin "
                            "center > Mail flow > Rules), find who created it (audit log: New-TransportRule / "
                            "Set-TransportRule), and search delivered mail from those senders. For a genuine partner "
                            "use the Tenant Allow/Block List instead, or allow-list the domain in [allowlist] "
                            "forwarding_domains with a reason.")
        f = make_tenant_finding(META, tr_label(rule), evidence=ev, artefact=artefact, severity=sev,
                                score={Severity.HIGH: 30, Severity.MEDIUM: 15, Severity.LOW: 5}.get(sev, 0),
                                new_since_last_scan=new if before is not None else (False if no_baseline else None))
        if base == Severity.INFO:
            entries = sorted({v.allow_entry.value + (f" ({v.allow_entry.reason})" if v.allow_entry.reason else "")
                              for v in verdicts if v.allow_entry is not None})
            f = dataclasses.replace(suppressed(f, "allowlist: " + "; ".join(entries)), severity=Severity.INFO,
                                    score=0)
        yield f
