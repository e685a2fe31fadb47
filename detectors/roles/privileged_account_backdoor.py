"""Privileged account carrying a user-level back-door (detections.md §D2).

Sees: an account with an active privileged role (or a member of a privileged Exchange role group) that also forwards outside the tenant (mailbox or enabled rule,
not allow-listed), has an enabled rule that deletes / hides / is obfuscated, or has a mail-scope OAuth grant to a
non-Microsoft app.
Misses: back-doors in collections that could not be read (they are coverage gaps of the other detectors).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import privileged_labels
from detectors._domains import external_mailbox_forwards
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from detectors.oauth._apps import is_microsoft_app, mail_scopes
from scanner.snapshot import AccountSnapshot, NotCollectedError

META = DetectorMeta(
    id="roles.privileged_account_backdoor",
    title="Administrator account carries a mailbox or consent back-door",
    severity=Severity.HIGH,
    technique="T1078.004",
    rationale="Mailbox takeover of an admin is tenant takeover: any forwarding, hiding rule or mail-scope consent on "
              "a privileged account deserves an immediate look.",
    remediation=("remove_forwarding", "disable_rules", "revoke_oauth_grants", "remove_admin_roles"),
    requires=("roles",),
    false_positives=("Admins with an approved forward to a partner (allow-list the domain).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    account.require("roles")
    roles = privileged_labels(account)  # directory roles, then Exchange role groups (when that source was read)
    if not roles:
        return
    found: list[str] = []
    for dv in external_mailbox_forwards(account.get("forwarding"), ctx.tenant.domains, ctx.allowlist, ctx.now):
        found.append(f"mailbox forward to {dv.address} ({dv.domain_class})")
    try:
        for rv in rules_of(account, ctx):
            if not rv.rule.is_enabled:
                continue
            ext = [d for d in rv.external_destinations if d.domain_class != "partner"]
            if ext:
                found.append(f"rule {rv.rule.display_name!r} forwards to {ext[0].address}")
            elif rv.obfuscation or ((rv.delete or rv.permanent_delete or (rv.move and rv.move.low_visibility))
                                    and not rv.keyed_on_automated_sender):
                found.append(f"rule {rv.rule.display_name!r} hides mail ({rv.action_summary()})")
    except NotCollectedError:
        pass
    n_strong = len(found)  # forwards and hiding rules: High once raised a level (detections.md §D2 "+1 level")
    verified_only = True
    for g in account.get("oauth_grants") or ():
        if g.consent_type == "Principal" and mail_scopes(g.scopes) and not is_microsoft_app(g):
            found.append(f"mail consent to {g.app_display_name or g.client_id}")
            verified_only = verified_only and bool(g.verified_publisher)
    if not found:
        return
    ev = {"roles": roles, "backdoors": found[:20]}
    # §D2 is "+1 level on whatever fired": a verified-publisher mail consent alone is Low (oauth.mail_consent_
    # unverified_app), so on an admin it is Medium, not High. The score stays small on purpose: the account's own
    # findings carry the points and the privileged ×1.5 multiplier is the "+1 level" of the score.
    sev = Severity.MEDIUM if (n_strong == 0 and verified_only) else Severity.HIGH
    yield make_finding(META, account, evidence=ev, artefact="privbackdoor:" + "|".join(sorted(found))[:200],
                       severity=sev, score=10)
