"""Client protocols from the bulk Get-CASMailbox row (MAPI, EWS, ActiveSync, IMAP, POP, OWA, SMTP AUTH)."""

from __future__ import annotations

from typing import Any

from scanner.snapshot import Protocols


def protocols_from_cas(row: dict[str, Any]) -> Protocols:
    return Protocols(
        mapi_enabled=row.get("mapi"), ews_enabled=row.get("ews"), active_sync_enabled=row.get("eas"),
        imap_enabled=row.get("imap"), pop_enabled=row.get("pop"), owa_enabled=row.get("owa"),
        smtp_client_authentication_disabled=row.get("smtp_auth_disabled"),
    )
