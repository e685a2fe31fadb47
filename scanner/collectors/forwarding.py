"""Mailbox forwarding from the bulk Get-Mailbox row (Graph has no API for it, graph-api.md §3.1).

``ForwardingSmtpAddress`` reads back as ``"smtp:addr"``: the prefix is stripped. ``ForwardingAddress`` names a
recipient of the organisation by display name or identity; it is resolved to an SMTP address through the mailbox
directory, or — a mail contact or mail user, which may point outside the tenant — through ``Get-Recipient``
(:func:`scanner.collectors.exchange.resolve_recipients`, read once per scan). Otherwise ``forwarding_address_resolved``
stays None and detectors see the raw identity. When both are set
Exchange ignores ``ForwardingSmtpAddress``; both are still recorded — the state itself is evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner.collectors.exchange import DirectoryLookups
from scanner.snapshot import MailboxForwarding


def forwarding_from_mailbox(row: dict[str, Any], directory: DirectoryLookups,
                            recipients: Mapping[str, str] | None = None) -> MailboxForwarding:
    """``recipients``: identity (lower case) -> address, for targets that are not mailboxes (Get-Recipient)."""
    fwd_addr = row.get("fwd_addr")
    resolved = None
    if fwd_addr:
        resolved = directory.resolve(fwd_addr) or (recipients or {}).get(str(fwd_addr).strip().lower())
    return MailboxForwarding(
        forwarding_smtp_address=row.get("fwd_smtp"),
        forwarding_address=fwd_addr,
        forwarding_address_resolved=resolved,
        deliver_to_mailbox_and_forward=bool(row.get("deliver")),
    )
