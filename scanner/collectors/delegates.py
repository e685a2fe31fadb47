"""Mailbox delegates: FullAccess (Get-MailboxPermission per mailbox), SendAs (Get-RecipientPermission, bulk) and
SendOnBehalf (GrantSendOnBehalfTo from Get-Mailbox).

SendAs is read once for the whole tenant: ``Get-RecipientPermission -AccessRights SendAs -ResultSize Unlimited``
(graph-api.md §3.4; ``-Trustee`` is avoided: Microsoft documents that it may miss entries when the trustee has several
SIDs). Each row names the mailbox by its ``Identity`` — Exchange prints the recipient's Name, which may be an alias, a
display name or an address — so rows are joined to accounts through the bulk Get-Mailbox rows (Identity, Name, Alias,
DisplayName, PrimarySmtpAddress, UPN, addresses → ExternalDirectoryObjectId = the Entra user id).

Skipped: ``NT AUTHORITY\\SELF`` and other well-known system principals, inherited entries, Deny entries (Exchange
returns ``Deny`` as the *string* "False", graph-api.md §3.2) and the mailbox owner itself. Trustees are display names or
addresses; deleted ones are raw SIDs (``S-1-5-21-…``) and are kept as they are — an orphaned grant is still a grant.
"""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import as_bool, as_list, as_str
from scanner.collectors.exchange import UNLIMITED, MailboxDirectory
from scanner.graph.client import ExchangeApi
from scanner.snapshot import Delegate

_SYSTEM_PREFIXES = ("nt authority\\", "s-1-5-18", "nt authority/")


def _is_self(trustee: str, mailbox: dict[str, Any], directory: MailboxDirectory) -> bool:
    t = trustee.lower()
    own = {(mailbox.get("upn") or "").lower(), (mailbox.get("primary") or "").lower(),
           *[n.lower() for n in mailbox.get("names", [])]}
    if t in own:
        return True
    row = directory.find(trustee)
    return row is not None and row is mailbox


def _delegate(trustee: str, right: str, directory: MailboxDirectory) -> Delegate:
    address = directory.resolve(trustee)
    return Delegate(trustee=trustee, access_right=right, trustee_address=address,
                    trustee_is_guest="#ext#" in (address or trustee).lower())


def full_access_cmdlet(identity: str) -> tuple[str, dict[str, Any]]:
    """The per-mailbox FullAccess read (for ``ExchangeApi.invoke_many``)."""
    return "Get-MailboxPermission", {"Identity": identity}


def delegates_for(
    mailbox: dict[str, Any],
    directory: MailboxDirectory,
    full_access_rows: list[dict[str, Any]],
    send_as_rows: list[dict[str, Any]],
) -> tuple[Delegate, ...]:
    out: list[Delegate] = []
    seen: set[tuple[str, str]] = set()

    def add(trustee: str | None, right: str) -> None:
        if not trustee:
            return
        t = trustee.strip()
        if t.lower().startswith(_SYSTEM_PREFIXES) or _is_self(t, mailbox, directory):
            return
        key = (t.lower(), right)
        if key not in seen:
            seen.add(key)
            out.append(_delegate(t, right, directory))

    for r in full_access_rows:
        if as_bool(r.get("IsInherited")) or as_bool(r.get("Deny")):
            continue
        rights = " ".join(str(x) for x in as_list(r.get("AccessRights"))).lower()
        if "fullaccess" in rights.replace(" ", ""):
            add(as_str(r.get("User")), "FullAccess")
    for r in send_as_rows:
        add(r.get("trustee"), "SendAs")
    for t in mailbox.get("send_on_behalf", []):
        add(t, "SendOnBehalf")
    return tuple(out)


def send_as_grants(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Explicit, allowed, non-inherited SendAs rows as ``{"identity", "trustee"}`` (system principals skipped)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        trustee = as_str(r.get("Trustee"))
        if not trustee or trustee.strip().lower().startswith(_SYSTEM_PREFIXES):
            continue  # NT AUTHORITY\SELF is on every mailbox
        if as_bool(r.get("IsInherited")) or (as_str(r.get("AccessControlType")) or "Allow").lower() == "deny":
            continue
        rights = [str(x) for x in as_list(r.get("AccessRights"))]
        if rights and not any("sendas" in x.lower().replace(" ", "") for x in rights):
            continue  # a service that ignored -AccessRights: keep SendAs only
        out.append({"identity": as_str(r.get("Identity")), "trustee": trustee.strip()})
    return out


async def read_send_as(ex: ExchangeApi) -> list[dict[str, Any]]:
    """Every SendAs grant in the tenant (one paged bulk call)."""
    out: list[dict[str, Any]] = []
    async for page in ex.iter_invoke("Get-RecipientPermission", {**UNLIMITED, "AccessRights": "SendAs"}):
        out.extend(send_as_grants(page))
    return out


def index_send_as(rows: list[dict[str, Any]], directory: MailboxDirectory) -> dict[str, list[dict[str, Any]]]:
    """SendAs rows grouped by the Entra id of the mailbox they grant on (via its Identity)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        mb = directory.find(r.get("identity"))
        if mb is not None and mb.get("id"):
            out.setdefault(mb["id"], []).append(r)
    return out
