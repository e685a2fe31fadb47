"""The same attacker address or phone showing up in two places (detections.md §H1 linking, §J "Linked artefact").

Sees, on *any* scan (no previous scan needed):
- an external forwarding destination of this account (mailbox ``ForwardingSmtpAddress`` / resolved
  ``ForwardingAddress``, or an enabled rule's forward / redirect) that is also this account's ``otherMails`` entry or
  the address of an email authentication method — the attacker planting their mailbox as both the mail sink and the
  recovery / verification channel (§H1: "especially the same address as a forward target or email auth method");
- this account's ``otherMails`` / email-method address that another scanned account forwards to, or this account's
  forward destination that another account lists as its alternate address (the same sink across accounts, §J);
and, with a previous scan: ``mobilePhone`` changed to the number of a phone method that is new on this account
(§H1: "especially to the same number as a newly registered phone method").

Deliberately not a link: the profile ``mobilePhone`` equal to an old or first phone method (users register their own
mobile — the normal case), an alternate address equal to the email method (both are contact fields the user fills
in), internal or allow-listed destinations.
Verdict: +30 in the ``link`` family (§J). A link only *connects* artefacts other detectors already score, so it never
counts as the independent second family of a score-based ``compromised`` verdict: an executive's self-forward to a
personal mailbox that is also their recovery address (two documented benign patterns together, Microsoft's
forwarding playbook and §H1 false positives) stays ``suspicious``; the same link next to an independent signal (a
fresh MFA method, a hiding rule) reaches ``compromised``.
Misses: addresses the collector could not read (masked phone numbers compare on visible digits only); links through
an internal relay mailbox.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import new_methods, norm_phone, real_methods
from detectors._domains import address_of, classify
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import FORWARD_ACTIONS, recipients
from scanner.snapshot import AccountSnapshot, NotCollectedError

META = DetectorMeta(
    id="contact.linked_artefact",
    title="The same external address or phone appears in two places",
    severity=Severity.HIGH,
    technique="T1098",
    rationale="Attackers reuse their own mailbox or phone as forward target, alternate e-mail and MFA channel; the "
              "same value in two places links the artefacts into one intrusion (detections.md §H1, §J).",
    remediation=("remove_forwarding", "disable_rules", "remove_auth_methods", "revoke_sessions"),
    requires=("user",),
    false_positives=(
        "A user who forwards to a personal mailbox and also entered it as their backup address (policy problem, "
        "not takeover): the link alone never makes the account compromised.",
        "A family member's or assistant's mailbox used across two accounts: allow-list the address.",
    ),
)

SCORE = 30


def _forward_places(account: AccountSnapshot) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    fwd = account.get("forwarding")
    if fwd is not None:
        for raw, label in ((fwd.forwarding_smtp_address, "mailbox forward (ForwardingSmtpAddress)"),
                           (fwd.forwarding_address_resolved, "mailbox forward (ForwardingAddress)")):
            a = address_of(raw or "")
            if a:
                out.setdefault(a, []).append(label)
    for r in account.get("inbox_rules") or ():
        if not r.is_enabled:
            continue
        for key in FORWARD_ACTIONS:
            for a in recipients(r.actions, key):
                out.setdefault(a, []).append(f"inbox rule {r.display_name!r} {key}")
    return out


def _contact_places(account: AccountSnapshot) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in account.user.other_mails:
        a = address_of(raw)
        if a:
            out.setdefault(a, []).append("otherMails")
    for m in real_methods(account.get("auth_methods") or ()):
        a = address_of(m.email_address or "")
        if a:
            out.setdefault(a, []).append("email authentication method")
    return out


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    me = account.upn.lower()
    forwards = _forward_places(account)
    contacts = _contact_places(account)
    for addr in sorted(set(forwards) | set(contacts)):
        places = [*forwards.get(addr, []), *contacts.get(addr, [])]
        others: set[str] = set()
        if addr in contacts:  # my recovery address is where another account's mail goes
            others |= set(ctx.facts.forward_destinations.get(addr, frozenset()))
        if addr in forwards:  # my mail goes where another account's recovery address points
            others |= set(ctx.facts.contact_addresses.get(addr, frozenset()))
        others.discard(me)
        same_account = addr in forwards and addr in contacts
        if not (same_account or others):
            continue
        dv = classify(addr, ctx.tenant.domains, ctx.allowlist, ctx.now)
        if not dv.external or dv.domain_class == "partner":
            continue
        ev: dict[str, object] = {**dv.evidence(), "linked": "address", "places": places}
        if others:
            ev["other_accounts"] = sorted(others)[:20]
        yield make_finding(META, account, evidence=ev, artefact=f"link:{addr}", score=SCORE)

    # Phone: only a *change* of mobilePhone to a newly registered method's number links (first registration of the
    # user's own mobile is the normal case, so there is nothing to compare on a first scan).
    if ctx.previous is None or not account.user.mobile_phone:
        return
    mobile = norm_phone(account.user.mobile_phone)
    if len(mobile) < 6 or mobile == norm_phone(ctx.previous.user.mobile_phone):
        return
    try:
        fresh = new_methods(account, ctx)
    except NotCollectedError:
        return
    for m, why in fresh:
        if m.phone_number and norm_phone(m.phone_number) == mobile:
            ev = {"linked": "phone", "phone": account.user.mobile_phone,
                  "places": ["mobilePhone (changed since the last scan)", f"phone authentication method ({why})"],
                  "previous_mobile_phone": ctx.previous.user.mobile_phone, "method_id": m.id}
            yield make_finding(META, account, evidence=ev, artefact=f"link:phone:{mobile}", score=SCORE)
            return
