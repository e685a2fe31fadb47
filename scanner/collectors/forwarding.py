"""Mailbox forwarding from the bulk Get-Mailbox row (Graph has no API for it, graph-api.md §3.1).

``ForwardingSmtpAddress`` reads back as ``"smtp:addr"``: the prefix is stripped. ``ForwardingAddress`` names an
internal recipient by display name or identity; it is resolved to an SMTP address through the mailbox directory when
possible (otherwise ``forwarding_address_resolved`` stays None and detectors see the raw identity). When both are set
Exchange ignores ``ForwardingSmtpAddress``; both are still recorded — the state itself is evidence.
"""

from __future__ import annotations

from typing import Any

from scanner.collectors.exchange import MailboxDirectory
from scanner.snapshot import MailboxForwarding


def forwarding_from_mailbox(row: dict[str, Any], directory: MailboxDirectory) -> MailboxForwarding:
    fwd_addr = row.get("fwd_addr")
    return MailboxForwarding(
        forwarding_smtp_address=row.get("fwd_smtp"),
        forwarding_address=fwd_addr,
        forwarding_address_resolved=directory.resolve(fwd_addr) if fwd_addr else None,
        deliver_to_mailbox_and_forward=bool(row.get("deliver")),
    )
