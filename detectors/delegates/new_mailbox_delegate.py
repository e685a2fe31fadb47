"""New FullAccess / SendAs / SendOnBehalf delegate on a user mailbox (detections.md §F1).

Sees: mailbox and recipient permissions of *user* mailboxes (shared/resource mailboxes are expected to have
delegates), new since the previous scan; on the first scan only guest or external trustees (standing risk).
Guest / external trustee → High. A new internal FullAccess or SendAs trustee → Medium, scored for a human to look
(read-everything / send-as-the-victim access granted overnight, ATT&CK T1098.002, Datadog def-000-tq6) — unless the
trustee is named as an assistant or help-desk identity, which §F1 rates Info–Low; a new internal SendOnBehalf trustee
→ Low (the recipient sees "on behalf of"). Standing internal delegates (present last scan) are not reported. System principals (NT AUTHORITY\\SELF, SIDs) ignored.
Misses: folder-level permissions (Default/Anonymous on Inbox), which the snapshot does not carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detectors._domains import address_of, classify
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot, Delegate

META = DetectorMeta(
    id="delegates.new_mailbox_delegate",
    title="New delegate can read or send as this mailbox",
    severity=Severity.MEDIUM,
    technique="T1098.002",
    rationale="A delegate keeps reading (FullAccess) or sending (SendAs) through another identity, surviving the "
              "victim's password reset (T1098.002).",
    remediation=("remove_delegates",),
    requires=("delegates",),
    false_positives=("Assistants and help-desk delegates (internal: Low).",
                     "Migration service accounts (allow-list the account)."),
)


# §F1's documented benign delegates: assistants and help-desk / service-desk identities (matched on the trustee's
# display name or address as whole tokens, so "it-temp02" or "Sales Ops" are not covered).
_ROLE_TRUSTEE = re.compile(r"(^|[^a-z])(assistant|secretary|help-?desk|service-?desk|it-?support|support)([^a-z]|$)")


def _role_trustee(d: Delegate) -> bool:
    return any(_ROLE_TRUSTEE.search(v.lower()) for v in (d.trustee or "", d.trustee_address or ""))


def _key(d: Delegate) -> str:
    return f"{(d.trustee_address or d.trustee).lower()}:{d.access_right.lower()}"


def _system(d: Delegate, upn: str) -> bool:
    t = (d.trustee or "").upper()
    return t.startswith("NT AUTHORITY\\") or t.startswith("S-1-5-") or (
        (d.trustee_address or d.trustee).lower() == upn.lower())


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    delegates = account.require("delegates")
    mt = (account.user.mailbox_type or "UserMailbox").lower()
    if mt != "usermailbox":
        return
    prev_keys: set[str] | None = None
    if ctx.previous is not None and (prev := ctx.previous.get("delegates")) is not None:
        prev_keys = {_key(d) for d in prev}
    for d in delegates:
        if _system(d, account.upn):
            continue
        addr = address_of(d.trustee_address or d.trustee or "")
        external = d.trustee_is_guest or (addr is not None and classify(addr, ctx.tenant.domains).external)
        new = prev_keys is not None and _key(d) not in prev_keys
        if not (new or external):
            continue
        ev = {"trustee": d.trustee, "trustee_address": addr, "access_right": d.access_right,
              "guest_or_external": external, "new": new}
        if external:
            sev, score = Severity.HIGH, 30
        elif d.access_right.strip().lower() in ("fullaccess", "sendas") and not _role_trustee(d):
            sev, score = Severity.MEDIUM, 20
        else:
            sev, score = Severity.LOW, 10
        yield make_finding(META, account, evidence=ev, artefact=f"delegate:{_key(d)}", severity=sev, score=score)
