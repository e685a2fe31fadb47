"""Tenant-wide Exchange reads, one bulk call each (graph-api.md §3.4): Get-Mailbox, Get-CASMailbox,
Get-RecipientPermission (SendAs) and Get-BlockedSenderAddress.

Rows are reduced to the few fields the scan needs and kept as plain JSON (so they can be stored in ``tenant_data``
for ``--resume``). A 10,000-mailbox tenant is a few MB here; snapshots themselves are streamed, never held.

Joining: Get-Mailbox's ``ExternalDirectoryObjectId`` is the Entra user id. Other cmdlets name mailboxes by
Identity / Name / display name, so :class:`MailboxDirectory` keeps an alias index to map them back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from scanner.collectors._util import as_bool, as_list, as_str, legacy_dn, parse_recipient, strip_smtp
from scanner.graph.client import ApiError, ExchangeApi

UNLIMITED = {"ResultSize": "Unlimited"}  # and follow nextLinks: reports disagree on who applies ResultSize


def _mailbox_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": (as_str(r.get("ExternalDirectoryObjectId")) or "").lower(),
        "upn": as_str(r.get("UserPrincipalName")),
        "primary": as_str(r.get("PrimarySmtpAddress")) or as_str(r.get("WindowsEmailAddress")),
        "type": as_str(r.get("RecipientTypeDetails")) or "UserMailbox",
        # Get-InboxRule names a mailbox by its legacyExchangeDN ('"Name" [EX:/o=…]'), or by an X500 proxy address
        # for one moved from on-premises; other cmdlets by Identity / Name / display name / DN / GUID.
        "names": sorted({n for n in (as_str(r.get("Identity")), as_str(r.get("Name")), as_str(r.get("Alias")),
                                     as_str(r.get("DisplayName")), as_str(r.get("DistinguishedName")),
                                     as_str(r.get("Guid")), as_str(r.get("ExchangeGuid")),
                                     as_str(r.get("LegacyExchangeDN")),
                                     *(legacy_dn(a) for a in as_list(r.get("EmailAddresses")) if isinstance(a, str)
                                       and a.lower().startswith("x500:"))) if n}),
        "fwd_smtp": strip_smtp(r.get("ForwardingSmtpAddress")),
        "fwd_addr": as_str(r.get("ForwardingAddress")),
        "deliver": bool(as_bool(r.get("DeliverToMailboxAndForward"))),
        "send_on_behalf": [str(x) for x in as_list(r.get("GrantSendOnBehalfTo"))],
        "addresses": [strip_smtp(a) for a in as_list(r.get("EmailAddresses"))
                      if isinstance(a, str) and a.lower().startswith("smtp:")],
    }


def row_names(row: dict[str, Any]) -> list[str]:
    """Every name Exchange may print for a mailbox row (UPN, primary address, display name/alias, other addresses)."""
    return [n for n in (row.get("upn"), row.get("primary"), *row.get("names", []), *row.get("addresses", [])) if n]


class DirectoryLookups:
    """Lookups shared by the in-memory and the SQLite-streamed mailbox directories: subclasses provide ``by_id``
    (Entra object id → row) and ``by_name`` (lower-case name → row) mappings."""

    by_id: Any
    by_name: Any

    def for_user(self, user_id: str, upn: str) -> dict[str, Any] | None:
        return self.by_id.get(user_id.lower()) or self.by_name.get(upn.lower())

    def resolve(self, identity: str | None) -> str | None:
        """SMTP address for an Exchange identity (display name, alias, UPN, address, DN, legacyExchangeDN, GUID), when
        it is a mailbox."""
        _name, address = parse_recipient(identity)
        if address:
            return address
        row = self.find(identity)
        if row is None:
            return None
        return row.get("primary") or row.get("upn")

    def find(self, identity: str | None) -> dict[str, Any] | None:
        if not identity:
            return None
        name, address = parse_recipient(identity)
        for key in (address, legacy_dn(identity), name):
            if key:
                row = self.by_name.get(key.lower())
                if row is not None:
                    return row
        # An identity printed as the Entra object id (ExternalDirectoryObjectId).
        return self.by_id.get(name.lower()) if name else None


@dataclass
class MailboxDirectory(DirectoryLookups):
    """Every Exchange Online mailbox, indexed by Entra object id and by every name Exchange may print for it."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> MailboxDirectory:
        d = cls(rows=rows)
        for row in rows:
            if row["id"]:
                d.by_id[row["id"]] = row
            for key in row_names(row):
                d.by_name.setdefault(key.lower(), row)
        return d



async def read_mailboxes(ex: ExchangeApi) -> MailboxDirectory:
    rows: list[dict[str, Any]] = []
    async for page in ex.iter_invoke("Get-Mailbox", UNLIMITED):
        rows.extend(_mailbox_row(r) for r in page)
    return MailboxDirectory.from_rows(rows)


MAX_RECIPIENT_LOOKUPS = 500  # distinct unresolved ForwardingAddress targets looked up per scan (normally a handful)


def forward_targets(rows: list[dict[str, Any]]) -> list[str]:
    """The ``ForwardingAddress`` identities of mailbox rows that are not themselves an address."""
    return [r["fwd_addr"] for r in rows if r.get("fwd_addr") and parse_recipient(r["fwd_addr"])[1] is None]


def _delivery_address(r: dict[str, Any]) -> str | None:
    # A mail contact or mail user receives at ExternalEmailAddress (a proxy address, "SMTP:x@y"); PrimarySmtpAddress is
    # its address inside the organisation (for a contact usually the same).
    for key in ("ExternalEmailAddress", "PrimarySmtpAddress", "WindowsEmailAddress"):
        addr = strip_smtp(r.get(key))
        if addr and "@" in addr and ":" not in addr:
            return addr
    return None


async def resolve_recipients(ex: ExchangeApi, identities: list[str],
                             directory: DirectoryLookups) -> tuple[dict[str, str], list[str]]:
    """Delivery addresses for ``ForwardingAddress`` targets that name no mailbox, by ``Get-Recipient -Identity``.

    Exchange prints ``ForwardingAddress`` as the target recipient's identity (its name), never as an address
    (graph-api.md §3.2). A mailbox target is resolved through the mailbox directory; anything else — a mail contact or
    a mail user pointing outside the tenant, the usual way an admin account forwards a mailbox outside — is only known
    to Get-Recipient. Returns ({identity (lower case): address}, notes); a lookup that fails leaves its identity
    unresolved and a note says so (the forward is still recorded with its raw identity).
    """
    wanted = sorted({i.strip() for i in identities if i and i.strip() and directory.resolve(i) is None},
                    key=str.lower)
    notes: list[str] = []
    if len(wanted) > MAX_RECIPIENT_LOOKUPS:
        notes.append(f"{len(wanted) - MAX_RECIPIENT_LOOKUPS} forwarding target(s) not looked up with Get-Recipient "
                     f"(more than {MAX_RECIPIENT_LOOKUPS})")
        wanted = wanted[:MAX_RECIPIENT_LOOKUPS]

    async def one(ident: str) -> tuple[str, str | None, str | None]:
        try:
            rows = await ex.invoke("Get-Recipient", {"Identity": ident})
        except ApiError as err:
            return ident, None, err.short()
        addrs = {a for a in (_delivery_address(r) for r in rows) if a}
        if len(addrs) != 1:
            return ident, None, "not found" if not addrs else "ambiguous"
        return ident, addrs.pop(), None

    out: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    for ident, addr, why in await asyncio.gather(*(one(i) for i in wanted)):
        if addr:
            out[ident.lower()] = addr
        else:
            failed.append((ident, why or "not found"))
    if failed:
        shown = ", ".join(f"{i!r} ({why})" for i, why in failed[:5])
        notes.append(f"Get-Recipient could not resolve {len(failed)} mailbox forwarding target(s), so their "
                     f"destination is unknown: {shown}")
    return out, notes


def _cas_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": (as_str(r.get("ExternalDirectoryObjectId")) or "").lower(),
        "keys": sorted({k.lower() for k in (as_str(r.get("PrimarySmtpAddress")), as_str(r.get("Identity")),
                                            as_str(r.get("Name")), as_str(r.get("UserPrincipalName"))) if k}),
        "mapi": as_bool(r.get("MAPIEnabled")), "ews": as_bool(r.get("EwsEnabled")),
        "eas": as_bool(r.get("ActiveSyncEnabled")), "imap": as_bool(r.get("ImapEnabled")),
        "pop": as_bool(r.get("PopEnabled")), "owa": as_bool(r.get("OWAEnabled")),
        # $null means "inherit the org setting": keep None distinct from False.
        "smtp_auth_disabled": as_bool(r.get("SmtpClientAuthenticationDisabled")),
    }


async def read_cas(ex: ExchangeApi) -> dict[str, dict[str, Any]]:
    """Get-CASMailbox rows keyed by Entra id and by every name/address (so the mailbox row's keys find it)."""
    out: dict[str, dict[str, Any]] = {}
    async for page in ex.iter_invoke("Get-CASMailbox", UNLIMITED):
        for r in page:
            row = _cas_row(r)
            for k in ([row["id"]] if row["id"] else []) + row["keys"]:
                out.setdefault(k, row)
    return out


def cas_for(cas: dict[str, dict[str, Any]], user_id: str, mailbox: dict[str, Any]) -> dict[str, Any] | None:
    for key in (user_id.lower(), (mailbox.get("primary") or "").lower(), (mailbox.get("upn") or "").lower(),
                *[n.lower() for n in mailbox.get("names", [])]):
        if key and key in cas:
            return cas[key]
    return None


async def read_blocked_senders(ex: ExchangeApi) -> list[str]:
    """Restricted senders (users blocked after outbound spam), lower-case addresses."""
    out: list[str] = []
    async for page in ex.iter_invoke("Get-BlockedSenderAddress", {}):
        for r in page:
            addr = strip_smtp(r.get("SenderAddress"))
            if addr:
                out.append(addr.lower())
    return out
