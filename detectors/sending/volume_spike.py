"""Sent volume far above the account's own baseline (detections.md §G2).

Sees: ``sent_last_24h`` against the median of this account's earlier scans (``ctx.sent_history``, filled by the engine
from stored scans): ≥ 5× the median and > 200; without history only volumes approaching the service limits (≥ 5,000)
are reported. A spike of ≥ 20× the median and ≥ 1,000 messages (or near the limits without history) scores enough on
its own for a human to look (suspicious): no recruiter / month-end / invitation pattern is that far off its own
baseline, and it is the Storm-1167 second stage (16,000 mails) in miniature. An ordinary ≥ 5× spike stays
corroboration only (§J: 15 points).
Misses: small targeted internal phishing bursts (tens of messages) — below any baseline test.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="sending.volume_spike",
    title="Account sent far more mail than it normally does",
    severity=Severity.MEDIUM,
    technique="T1534",
    rationale="Second-stage phishing from the trusted identity: Storm-1167 sent 16,000+ mails, other campaigns "
              "hundreds, from taken-over accounts.",
    remediation=("revoke_sessions", "reset_password"),
    requires=("sending",),
    false_positives=("Recruiters, sales, event coordinators and month-end AP runs.",),
)
MIN_VOLUME = 200
FACTOR = 5
NEAR_LIMIT = 5000
# A spike this far above the account's own baseline is scored past the suspicious threshold on its own.
LARGE_FACTOR = 20
LARGE_MIN = 1000


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    s = account.require("sending")
    n = s.sent_last_24h
    if n is None:
        return
    hist = [h for h in ctx.sent_history if isinstance(h, int) and h >= 0]
    if hist:
        base = statistics.median(hist)
        if n > MIN_VOLUME and n >= FACTOR * max(base, 1):
            large = n >= LARGE_MIN and n >= LARGE_FACTOR * max(base, 1)
            yield make_finding(META, account, evidence={"sent_last_24h": n, "baseline_median": base,
                                                        "baseline_scans": len(hist), "large": large},
                               artefact="sending:spike", score=25 if large else 15)
    elif n >= NEAR_LIMIT:
        yield make_finding(META, account, evidence={"sent_last_24h": n, "baseline_median": None,
                                                    "baseline_scans": 0, "large": True},
                           artefact="sending:spike", score=25)
