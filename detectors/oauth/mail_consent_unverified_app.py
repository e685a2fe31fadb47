"""User consent to a non-Microsoft app with mailbox scopes (detections.md §E1).

Sees: ``consentType: Principal`` grants with Mail.*/MailboxSettings/EWS/IMAP/POP/EAS scopes to apps not owned by
Microsoft and not allow-listed; unverified publisher → High (+ ``offline_access``); verified publisher → Low (review).
Known BEC tools are left to ``oauth.known_bec_tool``.
Misses: app-only (application permission) grants on the app itself; apps whose publisher the collector could not read
are treated as unverified.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors.oauth._apps import app_allowed, bec_tool, grant_evidence, has_offline, is_microsoft_app, mail_scopes
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="oauth.mail_consent_unverified_app",
    title="User consented to an unverified app that can read or send mail",
    severity=Severity.HIGH,
    technique="T1528",
    rationale="An illicit consent grant keeps mailbox access with a refresh token that a password reset does not "
              "revoke (Microsoft illicit-consent guidance; Sentinel EndUserConsentMailboxOfflineAccess).",
    remediation=("revoke_oauth_grants",),
    requires=("oauth_grants",),
    false_positives=("Productivity add-ins and IT-sanctioned mail clients: allow-list the app id with a reason.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for g in account.require("oauth_grants"):
        if g.consent_type != "Principal" or is_microsoft_app(g) or bec_tool(g):
            continue
        ms = mail_scopes(g.scopes)
        if not ms:
            continue
        ev = grant_evidence(g)
        entry = app_allowed(ctx.allowlist, g, ctx.now)
        if entry is not None:
            yield suppressed(make_finding(META, account, evidence=ev, artefact=f"grant:{g.id}",
                                          severity=Severity.INFO), f"allowlist: app {entry.value}")
            continue
        if g.verified_publisher:
            yield make_finding(META, account, evidence=ev, artefact=f"grant:{g.id}", severity=Severity.LOW, score=5,
                               title="User consented to a verified third-party app that can read or send mail")
            continue
        offline = has_offline(g.scopes)
        yield make_finding(META, account, evidence=ev, artefact=f"grant:{g.id}", score=40 if offline else 30)
