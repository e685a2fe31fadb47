"""OAuth helpers: mail scopes, Microsoft first-party apps, known BEC tooling, allow-list matching."""

from __future__ import annotations

from datetime import datetime

from detectors._domains import allow_match
from detectors._model import AllowEntry, Allowlist
from detectors._text import fold
from scanner.snapshot import OAuthGrant

MAIL_SCOPES = frozenset(s.lower() for s in (
    "Mail.Read", "Mail.ReadWrite", "Mail.Send", "Mail.Read.Shared", "Mail.ReadWrite.Shared", "Mail.Send.Shared",
    "MailboxSettings.ReadWrite", "EWS.AccessAsUser.All", "IMAP.AccessAsUser.All", "POP.AccessAsUser.All",
    "EAS.AccessAsUser.All", "SMTP.Send", "full_access_as_user", "full_access_as_app", "Mail.Read.All",
    "Mail.ReadWrite.All",
))
# Microsoft's own app-owner tenants (first-party apps): Microsoft Services and Microsoft corp.
MICROSOFT_TENANTS = frozenset({"f8cdef31-a31e-4b4a-93e4-5f571e91255a", "72f988bf-86f1-41af-91ab-2d7cd011db47"})
# Known BEC tooling consented during takeovers (Datadog def-000-ihv; cybercorner PerfectData write-up).
BEC_TOOLS = {
    "emclient": "T1528", "perfectdatasoftware": "T1114.002", "perfectdata": "T1114.002",
    "newslettersoftwaresupermailer": "T1534", "supermailer": "T1534", "sigparser": "T1528",
    "cloudsponge": "T1528", "rclone": "T1114.002",
}


def _scope(s: str) -> str:
    s = s.strip()
    return s.rsplit("/", 1)[-1].lower() if "/" in s else s.lower()


def mail_scopes(scopes: tuple[str, ...]) -> list[str]:
    out = []
    for raw in scopes:
        for s in str(raw).split():
            if _scope(s) in MAIL_SCOPES:
                out.append(s)
    return out


def has_offline(scopes: tuple[str, ...]) -> bool:
    return any(_scope(s) == "offline_access" for raw in scopes for s in str(raw).split())


def is_microsoft_app(g: OAuthGrant) -> bool:
    return (g.app_owner_organization_id or "").lower() in MICROSOFT_TENANTS


def bec_tool(g: OAuthGrant) -> tuple[str, str] | None:
    name = fold(g.app_display_name or "").replace(" ", "").replace("-", "").replace("_", "")
    if not name:
        return None
    for key, tech in BEC_TOOLS.items():
        if fold(key) in name:
            return key, tech
    return None


def app_allowed(allowlist: Allowlist, g: OAuthGrant, now: datetime) -> AllowEntry | None:
    for v in (g.app_id, g.client_id, g.app_display_name):
        if v:
            e = allow_match(allowlist.apps, v, now)
            if e is not None:
                return e
    return None


def grant_evidence(g: OAuthGrant) -> dict[str, object]:
    return {"grant_id": g.id, "app": g.app_display_name or g.client_id, "app_id": g.app_id,
            "publisher": g.publisher_name, "verified_publisher": g.verified_publisher,
            "consent_type": g.consent_type, "scopes": list(g.scopes), "mail_scopes": mail_scopes(g.scopes),
            "offline_access": has_offline(g.scopes)}
