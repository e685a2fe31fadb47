"""Consent to an app known from BEC cases (eM Client, PerfectData Software, Supermailer, SigParser, CloudSponge,
rclone — detections.md §E1).

Sees: any grant (user or tenant-wide) whose app display name matches the list after Unicode/homoglyph folding.
Misses: renamed copies of the tools (compare app ids once known); sanctioned use must be allow-listed.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors.oauth._apps import app_allowed, bec_tool, grant_evidence
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="oauth.known_bec_tool",
    title="Consent granted to an app used in mailbox-takeover attacks",
    severity=Severity.CRITICAL,
    technique="T1528",
    rationale="Attackers consent mail clients and mailbox-export tools (PerfectData exports the whole mailbox to PST) "
              "to keep reading and sending after the password is reset (Datadog def-000-ihv).",
    remediation=("revoke_oauth_grants", "revoke_sessions"),
    requires=("oauth_grants",),
    false_positives=("eM Client sanctioned by IT for Linux users: allow-list the app id with a reason.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for g in account.require("oauth_grants"):
        hit = bec_tool(g)
        if hit is None:
            continue
        ev = {**grant_evidence(g), "tool": hit[0]}
        if hit[1] != META.technique:
            # §E1 maps every illicit consent to T1528 (stolen application access token); the tool-specific id
            # (T1114.002 mailbox export, T1534 mass mailer) is the finding's technique, T1528 rides along.
            ev["also_technique"] = META.technique
        entry = app_allowed(ctx.allowlist, g, ctx.now)
        f = make_finding(META, account, evidence=ev, artefact=f"grant:{g.id}", score=50, technique=hit[1])
        if entry is not None:
            f = suppressed(f, f"allowlist: app {entry.value}")
        yield f
