"""Mailbox-level forwarding (``ForwardingSmtpAddress`` / ``ForwardingAddress``) to an address outside the tenant.

Sees: ``Get-Mailbox`` forwarding — the SMTP forward, and the recipient forward when the collector resolved it to an
SMTP address (a mail contact pointing outside); whether a copy is kept (``DeliverToMailboxAndForward``); the destination
class (look-alike of the tenant's domain > free-mail > unknown external; allow-listed partner is suppressed); what the
outbound spam policy and remote domains do to the forward (evidence ``delivery``: blocked with NDR 5.7.520, allowed, or
unknown) and whether a documented exception covers it — a custom outbound policy with AutoForwardingMode On for this
sender, or a remote domain allowing the destination while Default blocks — which suppresses an ordinary external
destination to Info (never free-mail or a look-alike; never an exception first seen since the last scan).
Misses: transport rules (tenant-level), forwarding that the outbound spam policy blocks is still reported at the same
severity (intent), recipient forwards whose target could not be resolved (reported only when the raw value is an
address), outbound rules scoped by group membership (cannot tell: not suppressed).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import suppressed
from detectors._domains import address_of, classify
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import assess
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.mailbox_external_forward",
    title="Mailbox forwards all mail to an external address",
    severity=Severity.HIGH,
    technique="T1114.003",
    rationale="A mailbox-level forward copies every message to the attacker and survives a password reset; Microsoft "
              "lists recently added external forwarding as a compromise symptom and removing it as response step 2.",
    remediation=("remove_forwarding",),
    requires=("forwarding",),
    false_positives=(
        "Helpdesk mailbox forwarding to a SaaS ticketing intake address: allow-list the address with a reason.",
        "Shared AP mailbox forwarding to an outsourced bookkeeper covered by an outbound-policy exception.",
        "An executive forwarding to a personal mailbox (a policy problem, not a takeover).",
    ),
)

CLASS_SCORE = {"external": 25, "freemail": 40, "lookalike": 60}
CLASS_SEVERITY = {"external": Severity.HIGH, "freemail": Severity.HIGH, "lookalike": Severity.CRITICAL}


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    fwd = account.require("forwarding")
    candidates: list[tuple[str, str]] = []
    if fwd.forwarding_smtp_address:
        a = address_of(fwd.forwarding_smtp_address)
        if a:
            candidates.append((a, "ForwardingSmtpAddress"))
    if fwd.forwarding_address:
        a = address_of(fwd.forwarding_address_resolved or "") or address_of(fwd.forwarding_address)
        if a and a not in {c for c, _ in candidates}:
            candidates.append((a, "ForwardingAddress"))
    for addr, field in candidates:
        dv = classify(addr, ctx.tenant.domains, ctx.allowlist, ctx.now)
        if not dv.external:
            continue
        ev = {**dv.evidence(), "setting": field, "kept_copy": fwd.deliver_to_mailbox_and_forward}
        if field == "ForwardingAddress" and fwd.forwarding_address and address_of(fwd.forwarding_address) != addr:
            # The recipient as Get-Mailbox names it (a mail contact's name): what remediation finds on the mailbox.
            ev["forwarding_address"] = fwd.forwarding_address
        policy = assess(account, ctx, dv)
        ev.update(policy.evidence)
        if policy.suppress:
            f = make_finding(META, account, evidence=ev, artefact=f"forward:{addr}", severity=Severity.INFO, score=0)
            yield suppressed(f, policy.suppress)
            continue
        if dv.domain_class == "partner":
            f = make_finding(META, account, evidence=ev, artefact=f"forward:{addr}", severity=Severity.INFO, score=0)
            yield suppressed(f, f"allowlist: {ev.get('allowlisted')}" + (
                f" ({ev['allowlist_reason']})" if ev.get("allowlist_reason") else ""))
            continue
        sev = CLASS_SEVERITY[dv.domain_class]
        score = CLASS_SCORE[dv.domain_class]
        if not fwd.deliver_to_mailbox_and_forward:
            sev = sev.raised()
            score += 10
        title = META.title if fwd.deliver_to_mailbox_and_forward else \
            "Mailbox redirects all mail to an external address and keeps no copy"
        yield make_finding(META, account, evidence=ev, artefact=f"forward:{addr}", severity=sev, score=score,
                           title=title)
