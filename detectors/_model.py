"""The detector contract: metadata + a pure function over one account's snapshot.

A detector module defines ``META = DetectorMeta(...)`` and ``def detect(account, ctx) -> Iterator[Finding]``. No I/O,
no clock (use ``ctx.now``), no logging, no globals. Reading a collection that failed raises
:class:`scanner.snapshot.NotCollectedError` (via ``account.require(...)``); the engine records the coverage gap. A failed
source never reads as clean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from scanner.snapshot import AccountSnapshot, TenantInfo


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {value!r}: use one of info, low, medium, high, critical") from None

    def raised(self, levels: int = 1) -> Severity:
        return Severity(min(int(self) + levels, int(Severity.CRITICAL)))


@dataclass(frozen=True)
class DetectorMeta:
    id: str  # == module path under detectors/, e.g. "mail.inbox_rule_external_forward"; never reused
    title: str  # the bad state, not "Ensure ..."
    severity: Severity  # default severity; a finding may raise or lower it with a reason in its evidence
    technique: str  # MITRE ATT&CK id, e.g. "T1114.003"
    rationale: str
    remediation: tuple[str, ...] = ()  # remediation step ids (interface.md)
    requires: tuple[str, ...] = ()  # snapshot collections read
    false_positives: tuple[str, ...] = ()
    status: str = "stable"  # stable | experimental
    # Tenant-level detectors only: how an admin fixes it by hand. No m365sweep step acts on a tenant object (a mail-flow
    # rule, an app's role or grant): remediation steps target one account, so these detectors name none.
    manual: str = ""


@dataclass(frozen=True)
class Finding:
    detector: str
    account: str  # UPN
    technique: str
    severity: Severity
    title: str
    evidence: Mapping[str, Any]
    # A stable key for the artefact this finding is about (rule fingerprint, forwarding address, method id ...),
    # used to decide "new since last scan" and to follow an artefact across scans.
    artefact: str = ""
    remediation: tuple[str, ...] = ()
    score: int = 0  # contribution to the account's score (detections.md §J)
    suppressed: str | None = None  # allow-list reason when suppressed: shown, not counted
    new_since_last_scan: bool | None = None  # filled by the engine from stored history
    status: str = "active"  # active | transient (appeared and vanished between scans)

    @property
    def id(self) -> str:
        raw = json.dumps([self.detector, self.account.lower(), self.artefact], ensure_ascii=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The findings.json shape (interface.md), plus additive fields."""
        return {
            "id": self.id,
            "account": self.account,
            "detector": self.detector,
            "technique": self.technique,
            "severity": self.severity.label,
            "title": self.title,
            "evidence": dict(self.evidence),
            "new_since_last_scan": bool(self.new_since_last_scan),
            "status": self.status,
            "suppressed": self.suppressed,
            "remediation": list(self.remediation),
            "score": self.score,
        }


@dataclass(frozen=True)
class AllowEntry:
    value: str
    reason: str | None = None
    expires: datetime | None = None


@dataclass(frozen=True)
class Allowlist:
    forwarding_domains: tuple[AllowEntry, ...] = ()
    accounts: tuple[AllowEntry, ...] = ()
    apps: tuple[AllowEntry, ...] = ()  # app ids or display names of sanctioned OAuth apps
    forwarding_addresses: tuple[AllowEntry, ...] = ()

    def _match(self, entries: tuple[AllowEntry, ...], value: str, now: datetime) -> AllowEntry | None:
        v = value.strip().lower()
        for e in entries:
            if e.value.strip().lower() == v and (e.expires is None or e.expires > now):
                return e
        return None


@dataclass(frozen=True)
class TenantFacts:
    """Cross-account facts computed by the engine in a first pass over the scan (for campaign / linking detectors)."""

    # external destination address (lower case) -> UPNs forwarding there (mailbox or rule)
    forward_destinations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # normalised phone number -> UPNs with that phone as an auth method
    auth_phones: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # client app id -> number of accounts that consented in this scan
    app_consents: Mapping[str, int] = field(default_factory=dict)
    # method types first seen tonight -> count of accounts (a FIDO2 roll-out is many at once)
    new_method_types: Mapping[str, int] = field(default_factory=dict)
    privileged_upns: frozenset[str] = frozenset()
    accounts_scanned: int = 0
    # otherMails / email auth-method address (lower case) -> UPNs listing it (for linking, H1)
    contact_addresses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # normalised user.mobilePhone -> UPNs
    mobile_phones: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Accounts whose OAuth grants were read (the bulk grants source succeeded); 0 with accounts_scanned > 0 means the
    # tenant's grants are unknown, so the tenant-wide grant detector reports a gap instead of "no grants".
    oauth_grants_read: int = 0
    # UPN -> the consent-capable admin roles (Global / Privileged Role / Application / Cloud Application Administrator)
    # of accounts that ALSO registered a genuine new authentication method in this scan window (detections.md §C1).
    # Filled by the engine after the per-account pass; read by oauth.tenant_wide_mail_grant (§E2 "Critical if the
    # granting admin also shows C1" — the grant does not name who consented, so these are the candidates).
    consent_admins_new_method: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Detectors test membership once per account: lower-cased here, once, not per call (a per-call set of every
        # privileged UPN made detection quadratic in the tenant's size).
        object.__setattr__(self, "privileged_upns", frozenset(u.lower() for u in self.privileged_upns))


@dataclass(frozen=True)
class ScanContext:
    tenant: TenantInfo
    now: datetime
    allowlist: Allowlist = Allowlist()
    facts: TenantFacts = TenantFacts()
    # The same account in the previous stored scan (None on the first scan or for a new account).
    previous: AccountSnapshot | None = None
    # Sent-volume history of this account from earlier scans (oldest first), for baselines.
    sent_history: tuple[int, ...] = ()
    first_scan: bool = True
    protected_accounts: frozenset[str] = frozenset()
    # Finding ids this account had in the previous scan (from the store), for new_since_last_scan. None: derive them
    # by running the catalogue over ``previous`` (pure evaluation, tests, the benchmark).
    previous_finding_ids: frozenset[str] | None = None
    # The previous scan's tenant-level facts (tenant detectors compare against it); None on the first scan.
    previous_tenant: TenantInfo | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "protected_accounts", frozenset(u.lower() for u in self.protected_accounts))


DetectFn = Callable[[AccountSnapshot, ScanContext], Iterator[Finding]]
# Tenant-level detectors (``def detect_tenant(tenant, facts, ctx)``) run once per scan over TenantInfo; their findings
# name a pseudo-account (e.g. ``serviceprincipal:<name> (<appId>)``) that has no verdict row.
TenantDetectFn = Callable[[TenantInfo, "TenantFacts", ScanContext], Iterator[Finding]]


@dataclass(frozen=True)
class Detector:
    meta: DetectorMeta
    detect: DetectFn
    module: str

    def finding(
        self,
        account: AccountSnapshot,
        *,
        evidence: Mapping[str, Any],
        artefact: str,
        severity: Severity | None = None,
        title: str | None = None,
        technique: str | None = None,
        score: int = 0,
    ) -> Finding:
        return make_finding(
            self.meta, account, evidence=evidence, artefact=artefact, severity=severity, title=title,
            technique=technique, score=score,
        )


@dataclass(frozen=True)
class TenantDetector:
    meta: DetectorMeta
    detect_tenant: TenantDetectFn
    module: str


def make_tenant_finding(
    meta: DetectorMeta,
    account: str,
    *,
    evidence: Mapping[str, Any],
    artefact: str,
    severity: Severity | None = None,
    score: int = 0,
    new_since_last_scan: bool | None = None,
) -> Finding:
    """A finding about a tenant-level object; ``account`` is a pseudo-account label, never a UPN."""
    return Finding(
        detector=meta.id, account=account, technique=meta.technique,
        severity=severity if severity is not None else meta.severity, title=meta.title, evidence=evidence,
        artefact=artefact, remediation=meta.remediation, score=score, new_since_last_scan=new_since_last_scan,
    )


def make_finding(
    meta: DetectorMeta,
    account: AccountSnapshot,
    *,
    evidence: Mapping[str, Any],
    artefact: str,
    severity: Severity | None = None,
    title: str | None = None,
    technique: str | None = None,
    score: int = 0,
) -> Finding:
    return Finding(
        detector=meta.id,
        account=account.upn,
        technique=technique or meta.technique,
        severity=severity if severity is not None else meta.severity,
        title=title or meta.title,
        evidence=evidence,
        artefact=artefact,
        remediation=meta.remediation,
        score=score,
    )


def iter_detect(fn: DetectFn, account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    yield from fn(account, ctx)
