"""The same external forwarding destination on several mailboxes (tenant-wide campaign, detections.md §A3).

Sees: mailbox forwards and enabled rule forwards/redirects of every scanned account (collected in the engine's first
pass); reports each account whose external destination is shared with at least one other account; an ordinary external
destination covered by a documented outbound-policy exception for this sender (custom policy On, or a remote domain
allowed while Default blocks) is shown suppressed at Info, with what the policy does to the forward (``delivery``).
Misses: destinations hidden behind an internal relay mailbox; accounts whose forwarding could not be collected.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import suppressed
from detectors._domains import classify, mailbox_forward_addresses
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._outbound import assess
from detectors._rules import FORWARD_ACTIONS, recipients
from scanner.snapshot import AccountSnapshot, NotCollectedError

META = DetectorMeta(
    id="mail.forward_destination_shared",
    title="Several mailboxes forward to the same external address",
    severity=Severity.MEDIUM,
    technique="T1114.003",
    rationale="One attacker-controlled mailbox collecting mail from several compromised accounts is a campaign "
              "(Sentinel Office_MailForwarding; Microsoft's forwarding playbook pivots on the same destination).",
    remediation=("remove_forwarding", "disable_rules"),
    requires=("forwarding", "inbox_rules"),
    false_positives=("A shared SaaS intake address (ticketing, CRM, e-fax) used by several functional mailboxes: "
                     "allow-list the address.",),
)


def _destinations(account: AccountSnapshot) -> set[str]:
    fwd = account.get("forwarding")
    rules = account.get("inbox_rules")
    if fwd is None and rules is None:
        account.require("forwarding")  # raises: neither source was read
    out: set[str] = set(mailbox_forward_addresses(fwd))
    for r in rules or ():
        if r.is_enabled:
            for key in FORWARD_ACTIONS:
                out.update(recipients(r.actions, key))
    return out


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    try:
        dests = _destinations(account)
    except NotCollectedError:
        raise
    me = account.upn.lower()
    for addr in sorted(dests):
        others = sorted(u for u in ctx.facts.forward_destinations.get(addr, frozenset()) if u != me)
        if not others:
            continue
        dv = classify(addr, ctx.tenant.domains, ctx.allowlist, ctx.now)
        if not dv.external:
            continue
        ev = {**dv.evidence(), "other_accounts": others[:20], "account_count": len(others) + 1}
        policy = assess(account, ctx, dv)
        ev.update(policy.evidence)
        if policy.suppress:
            yield suppressed(make_finding(META, account, evidence=ev, artefact=f"shared:{addr}",
                                          severity=Severity.INFO), policy.suppress)
        elif dv.domain_class == "partner":
            yield suppressed(make_finding(META, account, evidence=ev, artefact=f"shared:{addr}",
                                          severity=Severity.INFO), f"allowlist: {dv.allow_entry.value if dv.allow_entry else ''}")
        elif dv.domain_class in ("freemail", "lookalike"):
            yield make_finding(META, account, evidence=ev, artefact=f"shared:{addr}", severity=Severity.CRITICAL,
                               score=30)
        else:
            yield make_finding(META, account, evidence=ev, artefact=f"shared:{addr}", score=15)
