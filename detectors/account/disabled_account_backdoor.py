"""Disabled account with an external forward, a new method or a new rule (detections.md §I).

Sees: ``accountEnabled: false`` accounts with an external (non-allow-listed) mailbox or rule forward, an
authentication method new since the last scan, or a rule first seen since the last scan. The leaver pattern (internal
``ForwardingAddress`` to the manager) is not reported. The same artefacts on an account that was disabled at the last
scan and is enabled tonight (a dormant identity brought back and enrolled: APT29's pattern, and the state-side view of
an attacker re-enabling a leaver) are reported too, with ``re_enabled: true``.
Not reported: shared / room / equipment mailboxes (disabled by design; their forwards and rules are scored by the
mail detectors).
Misses: dormant-but-enabled accounts that were never disabled (no sign-in data in the snapshot).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import method_label, new_methods
from detectors._domains import external_mailbox_forwards
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot, NotCollectedError

META = DetectorMeta(
    id="account.disabled_account_backdoor",
    title="Disabled account has an external forward, a new sign-in method or a new rule",
    severity=Severity.HIGH,
    technique="T1078.004",
    rationale="Dormant and disabled accounts are enrolled by attackers because nobody watches them (APT29 enrolled "
              "MFA on a dormant account, T1098.005).",
    remediation=("remove_forwarding", "disable_rules", "remove_auth_methods"),
    requires=("user",),
    false_positives=("Leavers forwarding to their manager (internal: not reported).",),
)


# Shared / resource mailboxes have a user object whose sign-in Microsoft says to block ("Every shared mailbox has a
# corresponding user account ... You should always block sign-in for the shared mailbox account and keep it blocked",
# https://learn.microsoft.com/microsoft-365/lighthouse/m365-lighthouse-block-signin-shared-mailboxes): disabled is
# their normal state, not a dormant identity.
RESOURCE_MAILBOXES = frozenset({"sharedmailbox", "roommailbox", "equipmentmailbox", "schedulingmailbox"})


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    re_enabled = (account.user.account_enabled is True and ctx.previous is not None
                  and ctx.previous.user.account_enabled is False)
    if account.user.account_enabled is not False and not re_enabled:
        return
    if (account.user.mailbox_type or "").lower() in RESOURCE_MAILBOXES:
        return
    found: list[str] = []
    for dv in external_mailbox_forwards(account.get("forwarding"), ctx.tenant.domains, ctx.allowlist, ctx.now):
        found.append(f"mailbox forward to {dv.address}")
    prev_rule_ids = None
    if ctx.previous is not None and (pr := ctx.previous.get("inbox_rules")) is not None:
        prev_rule_ids = {r.id for r in pr}
    try:
        for rv in rules_of(account, ctx):
            if any(d.domain_class != "partner" for d in rv.external_destinations) and rv.rule.is_enabled:
                found.append(f"rule {rv.rule.display_name!r} forwards outside")
            elif prev_rule_ids is not None and rv.rule.id not in prev_rule_ids:
                found.append(f"new rule {rv.rule.display_name!r}")
    except NotCollectedError:
        pass
    try:
        for m, why in new_methods(account, ctx):
            found.append(f"new method {method_label(m)} ({why})")
    except NotCollectedError:
        pass
    if found:
        yield make_finding(META, account, evidence={"account_enabled": account.user.account_enabled,
                                                    "re_enabled": re_enabled, "artefacts": found[:20]},
                           artefact="disabled:" + "|".join(sorted(found))[:200], score=30)
