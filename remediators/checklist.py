"""The per-account manual checklist: what no API can do, so a person must (interface.md; Microsoft's step 7).

Pure: an account snapshot and its findings in, ``[{"title", "detail"}]`` out. The report renders it (escaped: the
details quote tenant strings such as phone numbers and addresses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _get(obj: Any, *names: str) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def _finding_detectors(findings: Sequence[Any]) -> set[str]:
    out = set()
    for f in findings:
        d = _get(f, "detector")
        if d and not _get(f, "suppressed"):
            out.add(str(d))
    return out


def manual_checklist(account_snapshot: Any, findings: Sequence[Any] = ()) -> list[dict[str, str]]:
    """Items for the operator; ``account_snapshot`` is a :class:`scanner.snapshot.AccountSnapshot` (or its JSON)."""
    user = _get(account_snapshot, "user") or {}
    upn = str(_get(account_snapshot, "upn") or _get(user, "user_principal_name", "userPrincipalName") or "")
    synced = bool(_get(user, "on_premises_sync_enabled", "onPremisesSyncEnabled"))
    mobile = _get(user, "mobile_phone", "mobilePhone")
    other = list(_get(user, "other_mails", "otherMails") or [])
    has_mailbox = bool(_get(user, "mailbox_type")) or _get(account_snapshot, "forwarding") is not None
    detectors = _finding_detectors(findings)
    items: list[dict[str, str]] = []
    if synced:
        items.append({"title": "Change the password on-premises",
                      "detail": "The account is synced from Active Directory: reset its password there (the cloud "
                                "reset is refused or overwritten), and disable it in AD too if sign-in is to stay "
                                "blocked (a cloud block is reverted at the next sync)."})
    items.append({"title": "Delete and re-create app passwords, and block legacy authentication",
                  "detail": "Graph cannot list or delete app passwords, and a password reset does not revoke them. "
                            "Ask the user to delete every app password on the Security info / Additional security "
                            "verification page and create new ones only if still needed; block legacy "
                            "authentication with a Conditional Access policy."})
    if has_mailbox:
        items.append({"title": "Review the Sent Items and Deleted Items folders",
                      "detail": "Look for mail the attacker sent (invoices, payment changes, phishing links) and "
                                "for replies they deleted; message trace shows what left the tenant."})
        items.append({"title": "Warn the account's contacts",
                      "detail": "Tell the people who received mail from the attacker (internal and external) not "
                                "to act on it, especially on payment or bank-detail changes."})
    contact = []
    if mobile:
        contact.append(f"mobile phone {mobile}")
    if other:
        contact.append("alternate e-mail " + ", ".join(str(x) for x in other))
    items.append({"title": "Verify the contact and recovery details",
                  "detail": "Confirm with the user, out of band, that these are theirs: "
                            + ("; ".join(contact) if contact else "mobile phone, alternate e-mail")
                            + ". Attackers set them to receive password-reset and MFA codes."})
    if any(d.startswith("auth.") or "method" in d for d in detectors):
        items.append({"title": "Have the user re-register MFA in person",
                      "detail": "Authentication methods were changed: verify the user's identity before they "
                                "register again, and check the sign-in logs for the attacker's devices."})
    items.append({"title": "Check other services that use this address",
                  "detail": f"Accounts at banks, payroll, SaaS tools and social media registered to {upn or 'this address'} "
                            "may have had their passwords reset through the mailbox: review and secure them."})
    return items
