"""Account restricted from sending (``Get-BlockedSenderAddress``) (detections.md §G1).

Sees: the restricted-entities list of Exchange Online Protection for this account.
Misses: accounts that sent phishing below the outbound limits (see ``sending.volume_spike``).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="sending.blocked_from_sending",
    title="Account is blocked from sending mail",
    severity=Severity.HIGH,
    technique="T1534",
    rationale="Exceeding outbound limits is 'an indicator of a compromised account' (Microsoft); the usual cause is "
              "mass phishing from the taken-over mailbox.",
    remediation=("revoke_sessions", "reset_password", "unblock_sending"),
    requires=("sending",),
    false_positives=("Legitimate bulk senders tripping limits (event invitations, mass announcements).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    s = account.require("sending")
    if s.blocked_from_sending:
        yield make_finding(META, account, evidence={"blocked_from_sending": True, "sent_last_24h": s.sent_last_24h},
                           artefact="sending:blocked", score=40)
