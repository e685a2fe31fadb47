"""The detector engine: catalogue discovery, allow-lists, pure per-account evaluation and whole-scan evaluation.

- :func:`catalogue` finds every detector module under ``detectors/<area>/<name>.py`` (id == ``"<area>.<name>"``).
- :func:`evaluate_account` is pure: snapshot + context in, findings + verdict out (tests and the benchmark use it).
- :func:`evaluate_scan` streams a stored scan twice (pass 1: tenant-wide facts; pass 2: detectors per account, with the
  same account from the previous scan as context), then writes findings, verdicts and history to the store.

Drift definitions (detections.md §K):
- ``new_since_last_scan``: False on a tenant's first scan (findings are *standing*); afterwards True when the finding id
  (detector + account + artefact key; rule artefacts include a fingerprint of conditions/actions, so a modified rule is
  new) was not among the account's findings in the previous scan. An account absent from the previous scan is new.
- *transient*: a finding of the previous scan whose artefact (rule id, forwarding address, method id, grant id,
  delegate, role) is gone from tonight's snapshot — the collection was read successfully — and which was itself first
  seen *after* a baseline scan (``new_since_last_scan`` true when first recorded). It is reported once, in the scan
  where it vanished, with status ``transient`` and its first/last-seen times; it counts half in the verdict.
- Not evaluated: a detector whose collection failed raises ``NotCollectedError``; the engine records a coverage gap
  (``store.add_error(..., collector="detectors:<collection>")`` unless the collector already recorded that gap for the
  account) and a per-detector count in tenant data ``detectors.coverage``. A failed source never reads as clean.
  When the collection failed TENANT-WIDE (a bulk source such as roles, OAuth grants or Get-Mailbox: an error row with
  no account, whose reason the accounts carry), the engine writes ONE row for that collection naming the detectors and
  the number of accounts affected — not one row per account (10,000 identical rows for one failed request).
- Tenant-level detectors (:func:`tenant_catalogue`: modules defining ``detect_tenant(tenant, facts, ctx)`` instead of
  ``detect``) run once per scan after the accounts, with the previous scan's TenantInfo in ``ctx.previous_tenant``.
  Their findings name a pseudo-account (``serviceprincipal:<name> (<appId>)`` for an app: a service principal in a
  role, a tenant-wide consent grant) that has no verdict row, so they never raise any account's verdict and
  auto-remediation never acts on them. ``ctx.facts.consent_admins_new_method`` is filled from the per-account pass.
- Verdict invariant (verdict.decide): an account with an active, unsuppressed High/Critical finding is at least
  ``suspicious``; a tenant-level fact is therefore never attached to an account with a zero score.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import pkgutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import detectors as _pkg
from detectors._common import (
    RECENT,
    aware,
    consent_roles,
    is_privileged,
    norm_phone,
    privileged_exchange_groups,
    privileged_roles,
    real_methods,
    suppressed,
)
from detectors._domains import address_of, classify, mailbox_forward_addresses
from detectors._model import (
    AllowEntry,
    Allowlist,
    Detector,
    Finding,
    ScanContext,
    Severity,
    TenantDetector,
    TenantFacts,
)
from detectors._rules import FORWARD_ACTIONS, recipients
from detectors.verdict import decide, genuine_new_methods
from scanner.snapshot import AccountSnapshot, NotCollectedError, TenantInfo

_INFRA = frozenset({"engine", "verdict", "cli"})
SENT_HISTORY_KEY = "detectors.sent_history"
SENT_HISTORY_LEN = 30


# ---- catalogue ---------------------------------------------------------------------------------------------------
def _modules() -> Iterable[Any]:
    for info in pkgutil.walk_packages(_pkg.__path__, prefix="detectors."):
        rel = info.name[len("detectors."):]
        parts = rel.split(".")
        if info.ispkg or len(parts) < 2 or any(p.startswith("_") for p in parts) or parts[0] in _INFRA:
            continue
        mod = importlib.import_module(info.name)
        if getattr(mod, "META", None) is not None:
            yield mod


def catalogue() -> list[Detector]:
    """Every per-account detector module under ``detectors/`` (subpackages by area), sorted by id."""
    out = [Detector(meta=mod.META, detect=mod.detect, module=mod.__name__)
           for mod in _modules() if callable(getattr(mod, "detect", None))]
    return sorted(out, key=lambda d: d.meta.id)


def tenant_catalogue() -> list[TenantDetector]:
    """Every tenant-level detector (a module defining ``detect_tenant``), sorted by id."""
    out = [TenantDetector(meta=mod.META, detect_tenant=mod.detect_tenant, module=mod.__name__)
           for mod in _modules() if callable(getattr(mod, "detect_tenant", None))]
    return sorted(out, key=lambda d: d.meta.id)


@functools.cache
def manual_fix(detector_id: str) -> str | None:
    """How an admin fixes a tenant-level detector's finding by hand (None for account detectors and unknown ids)."""
    for d in tenant_catalogue():
        if d.meta.id == detector_id:
            return d.meta.manual or None
    return None


# ---- allow-list --------------------------------------------------------------------------------------------------
def _expiry(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    # A date expiry means "valid through that day".
    return datetime.combine(value, time(23, 59, 59), tzinfo=UTC)


def allowlist_from_config(section: Any, now: datetime) -> tuple[Allowlist, list[str]]:
    """Allowlist from ``scanner.config.AllowlistSection``; expired entries are dropped with a warning."""
    warnings: list[str] = []
    built: dict[str, tuple[AllowEntry, ...]] = {}
    now = aware(now) or now
    for name in ("forwarding_domains", "forwarding_addresses", "accounts", "apps"):
        entries: list[AllowEntry] = []
        for item in getattr(section, name, None) or ():
            if isinstance(item, str):
                value, reason, expires = item, None, None
            else:
                value, reason, expires = item.value, item.reason, _expiry(item.expires)
            value = value.strip()
            if not value:
                continue
            if expires is not None and expires <= now:
                warnings.append(f"allowlist.{name}: entry {value!r} expired on {expires.date().isoformat()} "
                                f"and is not applied" + (f" (reason was: {reason})" if reason else ""))
                continue
            entries.append(AllowEntry(value=value, reason=reason, expires=expires))
        built[name] = tuple(entries)
    return Allowlist(**built), warnings


# ---- pure evaluation ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotEvaluated:
    detector: str
    collection: str
    reason: str


@dataclass(frozen=True)
class AccountResult:
    findings: tuple[Finding, ...]
    not_evaluated: tuple[NotEvaluated, ...]
    score: int
    verdict: str
    reasons: tuple[str, ...]
    privileged: bool = False


def run_detectors(account: AccountSnapshot, ctx: ScanContext,
                  detectors: Sequence[Detector]) -> tuple[list[Finding], list[NotEvaluated]]:
    findings: list[Finding] = []
    gaps: list[NotEvaluated] = []
    for det in detectors:
        try:
            findings.extend(det.detect(account, ctx))
        except NotCollectedError as exc:
            gaps.append(NotEvaluated(det.meta.id, exc.collection, exc.why.reason))
        except Exception as exc:  # noqa: BLE001 - a detector bug is a coverage gap, never a silent "clean"
            gaps.append(NotEvaluated(det.meta.id, "detector", f"detector error: {type(exc).__name__}: {exc}"[:300]))
    return findings, gaps


def _account_allow(account: AccountSnapshot, ctx: ScanContext) -> AllowEntry | None:
    now = ctx.now
    for e in ctx.allowlist.accounts:
        if e.value.strip().lower() == account.upn.lower() and (e.expires is None or e.expires > now):
            return e
    return None


def _previous_ids(ctx: ScanContext, detectors: Sequence[Detector]) -> frozenset[str] | None:
    if ctx.previous_finding_ids is not None:
        return ctx.previous_finding_ids
    if ctx.previous is None:
        return None
    prev_ctx = dataclasses.replace(ctx, previous=None, previous_finding_ids=frozenset(), first_scan=True)
    found, _ = run_detectors(ctx.previous, prev_ctx, detectors)
    return frozenset(f.id for f in found)


def evaluate_account(account: AccountSnapshot, ctx: ScanContext,
                     detectors: Sequence[Detector] | None = None) -> AccountResult:
    """Run the catalogue on one account: findings (with drift flags and suppression), coverage gaps, verdict."""
    detectors = catalogue() if detectors is None else detectors
    findings, gaps = run_detectors(account, ctx, detectors)
    if ctx.first_scan:
        findings = [dataclasses.replace(f, new_since_last_scan=False) for f in findings]
    else:
        prev = _previous_ids(ctx, detectors)
        findings = [dataclasses.replace(f, new_since_last_scan=(prev is None or f.id not in prev))
                    for f in findings]
    entry = _account_allow(account, ctx)
    if entry is not None:
        why = f"allowlist: account {entry.value}" + (f" ({entry.reason})" if entry.reason else "")
        findings = [dataclasses.replace(suppressed(f, why), severity=Severity.INFO) if f.suppressed is None else f
                    for f in findings]
    findings.sort(key=lambda f: (-int(f.severity), f.detector, f.artefact))
    privileged = is_privileged(account, ctx)
    v = decide(findings, privileged=privileged)
    reasons = list(v.reasons)
    for g in gaps:
        reasons.append(f"not evaluated: {g.detector} ({g.collection}: {g.reason})")
    return AccountResult(tuple(findings), tuple(gaps), v.score, v.verdict, tuple(reasons), privileged)


def evaluate_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext,
                    detectors: Sequence[TenantDetector] | None = None) -> tuple[list[Finding], list[NotEvaluated]]:
    """Run the tenant-level detectors once (pure). ``new_since_last_scan``: the detector's own answer (it compares
    against ``ctx.previous_tenant``), else whether the finding id was among ``ctx.previous_finding_ids``; always
    False on the first scan."""
    detectors = tenant_catalogue() if detectors is None else detectors
    findings: list[Finding] = []
    gaps: list[NotEvaluated] = []
    for det in detectors:
        try:
            findings.extend(det.detect_tenant(tenant, facts, ctx))
        except NotCollectedError as exc:
            gaps.append(NotEvaluated(det.meta.id, exc.collection, exc.why.reason))
        except Exception as exc:  # noqa: BLE001 - a detector bug is a coverage gap, never a silent "clean"
            gaps.append(NotEvaluated(det.meta.id, "detector", f"detector error: {type(exc).__name__}: {exc}"[:300]))
    prev = ctx.previous_finding_ids
    out = []
    for f in findings:
        if ctx.first_scan:
            new = False
        elif f.new_since_last_scan is not None:
            new = f.new_since_last_scan
        else:
            new = prev is None or f.id not in prev
        out.append(dataclasses.replace(f, new_since_last_scan=new))
    out.sort(key=lambda f: (-int(f.severity), f.detector, f.account, f.artefact))
    return out, gaps


# ---- tenant facts (pass 1) ---------------------------------------------------------------------------------------
class FactsBuilder:
    """Accumulates cross-account facts one snapshot at a time (memory: a few entries per account)."""

    def __init__(self, now: datetime) -> None:
        # The tenant (its accepted domains) is given to facts(): the sweep feeds accounts as it stores them, before
        # the domains are known, so forward addresses are kept unclassified until then.
        self.now = aware(now) or now
        self.forwards: dict[str, set[str]] = defaultdict(set)
        self.phones: dict[str, set[str]] = defaultdict(set)
        self.mobiles: dict[str, set[str]] = defaultdict(set)
        self.contacts: dict[str, set[str]] = defaultdict(set)
        self.consents: Counter[str] = Counter()
        self.new_types: Counter[str] = Counter()
        self.privileged: set[str] = set()
        self.oauth_read = 0
        self.n = 0

    def add(self, acc: AccountSnapshot) -> None:
        self.n += 1
        upn = acc.upn.lower()
        fwd = acc.get("forwarding")
        addrs: list[str] = mailbox_forward_addresses(fwd)
        for r in acc.get("inbox_rules") or ():
            if not r.is_enabled:
                continue
            for key in FORWARD_ACTIONS:
                addrs.extend(recipients(r.actions, key))
        for a in set(addrs):
            self.forwards[a].add(upn)
        for m in real_methods(acc.get("auth_methods") or ()):
            if m.phone_number:
                self.phones[norm_phone(m.phone_number)].add(upn)
            if m.email_address:
                self.contacts[m.email_address.lower()].add(upn)
            created = aware(m.created_date_time)
            if created is not None and self.now - created <= RECENT:
                self.new_types[m.method_type] += 1
        for mail in acc.user.other_mails:
            a = address_of(mail)
            if a:
                self.contacts[a].add(upn)
        if acc.user.mobile_phone:
            self.mobiles[norm_phone(acc.user.mobile_phone)].add(upn)
        grants = acc.get("oauth_grants")
        self.oauth_read += grants is not None
        for g in grants or ():
            if g.consent_type == "Principal":
                self.consents[g.app_id or g.client_id] += 1
        if privileged_roles(acc) or privileged_exchange_groups(acc):
            self.privileged.add(upn)

    def facts(self, tenant: TenantInfo) -> TenantFacts:
        def multi(d: dict[str, set[str]], minimum: int = 1) -> dict[str, frozenset[str]]:
            return {k: frozenset(v) for k, v in d.items() if k and len(v) >= minimum}

        destinations = {a: upns for a, upns in self.forwards.items() if classify(a, tenant.domains).external}
        return TenantFacts(
            forward_destinations=multi(destinations),
            auth_phones=multi(self.phones, 2) | {k: frozenset(v) for k, v in self.phones.items()
                                                 if k and k in self.mobiles},
            app_consents=dict(self.consents),
            new_method_types=dict(self.new_types),
            privileged_upns=frozenset(self.privileged),
            accounts_scanned=self.n,
            contact_addresses=multi(self.contacts),
            mobile_phones={k: frozenset(v) for k, v in self.mobiles.items()
                           if k and (len(v) >= 2 or k in self.phones)},
            oauth_grants_read=self.oauth_read,
        )


def tenant_facts(accounts: Iterable[AccountSnapshot], tenant: TenantInfo, now: datetime | None = None) -> TenantFacts:
    b = FactsBuilder(now or datetime.now(UTC))
    for a in accounts:
        b.add(a)
    return b.facts(tenant)


# ---- whole scan --------------------------------------------------------------------------------------------------
@dataclass
class EvaluationSummary:
    scan_id: str
    accounts: int = 0
    findings_by_severity: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    not_evaluated: int = 0  # (account, detector) pairs not evaluated because a collection failed
    transient: int = 0
    new_findings: int = 0
    suppressed: int = 0
    warnings: list[str] = field(default_factory=list)
    facts_from_collection: bool = False  # pass 1 was fed during collection (no second read of every account)


def artefact_present(account: AccountSnapshot, artefact: str) -> bool | None:
    """Whether the artefact behind a finding still exists; None when unknown (collection failed / not an artefact)."""
    kind, _, rest = artefact.partition(":")
    try:
        if kind == "rule":
            rule_id = rest.rsplit(":", 1)[0]
            return any(r.id == rule_id for r in account.require("inbox_rules"))
        if kind == "forward":
            fwd = account.require("forwarding")
            have = {address_of(x or "") for x in (fwd.forwarding_smtp_address, fwd.forwarding_address_resolved,
                                                  fwd.forwarding_address)}
            return rest in have
        if kind == "method":
            return any(m.id == rest for m in account.require("auth_methods"))
        if kind == "grant":
            return any(g.id == rest for g in account.require("oauth_grants"))
        if kind == "delegate":
            trustee, _, right = rest.rpartition(":")
            return any((d.trustee_address or d.trustee).lower() == trustee and d.access_right.lower() == right
                       for d in account.require("delegates"))
        if kind == "role":
            from detectors._common import role_key
            return any(role_key(r) == rest for r in account.require("roles"))
    except NotCollectedError:
        return None
    return None


def _transients(store: Any, prev_scan: str, account: AccountSnapshot, seen: set[str],
                skipped_detectors: set[str], started: str) -> list[Finding]:
    out: list[Finding] = []
    for row in store.findings(prev_scan, account.upn):
        if row.get("status") != "active" or row["id"] in seen or row["detector"] in skipped_detectors:
            continue
        if artefact_present(account, row.get("artefact") or "") is not False:
            continue
        hist = store.history(row["id"])
        if hist is None:
            continue
        first = store.db.execute("select new_since_last_scan from findings where scan_id = ? and id = ?",
                                 [hist["first_scan_id"], row["id"]]).fetchone()
        if not first or not first[0]:
            continue  # standing since the baseline: it was removed (resolved), not "appeared and vanished"
        ev = dict(row.get("evidence") or {})
        ev.update({"first_seen": hist["first_seen"], "last_seen": hist["last_seen"], "gone_by": started})
        out.append(Finding(
            detector=row["detector"], account=account.upn, technique=row["technique"],
            severity=Severity.parse(row["severity"]), title=row["title"], evidence=ev,
            artefact=f"transient:{row.get('artefact') or ''}", remediation=tuple(row.get("remediation") or ()),
            score=int(row.get("score") or 0), suppressed=row.get("suppressed"), new_since_last_scan=True,
            status="transient",
        ))
    return out


def _stored_tenant(store: Any, scan_id: str) -> TenantInfo | None:
    raw = store.scan(scan_id).get("tenant")
    if not raw:
        return None
    try:
        return TenantInfo.model_validate_json(raw)
    except ValueError:
        return None  # an unreadable old row: no baseline, findings read as standing


def _with_previous(store: Any, scan_id: str, prev_scan: str | None, group: int = 500,
                   ) -> Iterator[tuple[AccountSnapshot, AccountSnapshot | None, list[dict[str, Any]]]]:
    """Each stored account of ``scan_id`` with its snapshot and findings in ``prev_scan``, those read ``group``
    accounts to a query instead of two queries per account on every scan after the first."""
    accounts = store.iter_accounts(scan_id)
    while True:
        part = list(itertools.islice(accounts, group))
        if not part:
            return
        upns = [a.upn for a in part]
        prev = store.get_accounts(prev_scan, upns) if prev_scan else {}
        found = store.findings_by_account(prev_scan, upns) if prev_scan else {}
        for acc in part:
            key = acc.upn.lower()
            yield acc, prev.get(key), found.get(key, [])


def evaluate_scan(store: Any, scan_id: str, *, tenant: TenantInfo, allowlist: Allowlist, now: datetime,
                  protected_accounts: frozenset[str] | Iterable[str] = frozenset(),
                  detectors: Sequence[Detector] | None = None,
                  prebuilt: FactsBuilder | None = None) -> EvaluationSummary:
    """Evaluate every stored account of ``scan_id`` and write findings, verdicts, history and coverage gaps.

    ``prebuilt``: the tenant-wide facts fed by the sweep as it stored each account; used when it saw exactly the
    stored accounts (a resumed scan's earlier accounts were not: the facts are then read from the store)."""
    detectors = catalogue() if detectors is None else detectors
    now = aware(now) or now
    protected = frozenset(u.lower() for u in protected_accounts)
    summary = EvaluationSummary(scan_id=scan_id)
    prev_scan = store.previous_scan_id(scan_id)
    started = store.scan(scan_id)["started"]

    # Pass 1: tenant-wide facts (fed during collection when it saw every stored account).
    if prebuilt is not None and prebuilt.n == store.count_accounts(scan_id):
        facts = prebuilt.facts(tenant)
        summary.facts_from_collection = True
    else:
        facts = tenant_facts(store.iter_accounts(scan_id), tenant, now)

    prev_hist: dict[str, list[int]] = {}
    if prev_scan:
        prev_hist = store.get_tenant_data(prev_scan, SENT_HISTORY_KEY) or {}
    new_hist: dict[str, list[int]] = {}
    errors = store.errors(scan_id)
    known_gaps = {(str(e.get("upn") or "").lower(), str(e.get("collector") or "")) for e in errors}
    # Tenant-wide failures (no account): their collections / reasons mark per-account gaps as "the same failure".
    tenant_gap_collectors = {str(e.get("collector") or "") for e in errors if not e.get("upn")}
    tenant_gap_reasons = {str(e.get("message") or "") for e in errors if not e.get("upn")}
    tenant_wide: dict[str, dict[str, Any]] = {}  # collection -> {"accounts": n, "detectors": set, "reason": str}
    coverage: Counter[str] = Counter()
    sev_count: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    seen_ids: set[str] = set()
    # Consent-capable admins with a genuine new method (for oauth.tenant_wide_mail_grant, detections.md §E2 + §C1).
    consent_admins: dict[str, tuple[str, ...]] = {}

    # Pass 2: detectors per account. Findings, history and verdicts are written a batch of accounts at a time, in one
    # transaction each (a transaction per account made the writes most of the pass on a big tenant).
    pend_rows: list[dict[str, Any]] = []
    pend_verdicts: list[tuple[str, str, int, list[str], bool]] = []

    def flush() -> None:
        with store.transaction():
            store.put_findings(scan_id, pend_rows)
            store.record_history(scan_id, started, [r for r in pend_rows if r["status"] == "active"])
            store.set_verdicts(scan_id, pend_verdicts)
        pend_rows.clear()
        pend_verdicts.clear()

    # The previous scan's tenant facts: tenant detectors diff against them, and per-account detectors refuse to trust
    # an outbound-policy exception that is new since then (detectors/_outbound.py).
    prev_tenant = _stored_tenant(store, prev_scan) if prev_scan else None
    for acc, previous, prev_found in _with_previous(store, scan_id, prev_scan):
        upn_l = acc.upn.lower()
        prev_rows = prev_found if previous is not None else []
        hist = list(prev_hist.get(upn_l, []))
        if not hist and previous is not None:
            ps = previous.get("sending")
            if ps is not None and ps.sent_last_24h is not None:
                hist = [ps.sent_last_24h]
        ctx = ScanContext(
            tenant=tenant, now=now, allowlist=allowlist, facts=facts, previous=previous,
            sent_history=tuple(hist), first_scan=prev_scan is None, protected_accounts=protected,
            previous_tenant=prev_tenant,
            previous_finding_ids=(frozenset(r["id"] for r in prev_rows if r.get("status") == "active")
                                  if previous is not None else None),
        )
        res = evaluate_account(acc, ctx, detectors)
        if consent_roles(acc) and genuine_new_methods([f for f in res.findings
                                                        if f.suppressed is None and f.status == "active"]):
            consent_admins[acc.upn] = tuple(consent_roles(acc))
        cur = acc.get("sending")
        if cur is not None and cur.sent_last_24h is not None:
            hist.append(cur.sent_last_24h)
        if hist:
            new_hist[upn_l] = hist[-SENT_HISTORY_LEN:]

        findings = list(res.findings)
        ids = {f.id for f in findings}
        skipped = {g.detector for g in res.not_evaluated}
        # Findings whose detector could not run tonight are carried in history (not resolved, not transient).
        carried = {r["id"] for r in prev_rows if r["detector"] in skipped}
        trans = _transients(store, prev_scan, acc, ids, skipped, started) if prev_scan and previous else []
        if trans:
            findings += trans
            v = decide(findings, privileged=res.privileged)
            verdict, score, reasons = v.verdict, v.score, list(v.reasons) + [
                r for r in res.reasons if r.startswith("not evaluated:")]
        else:
            verdict, score, reasons = res.verdict, res.score, list(res.reasons)
        seen_ids |= ids | carried

        by_collection: dict[str, list[NotEvaluated]] = defaultdict(list)
        for g in res.not_evaluated:
            by_collection[g.collection].append(g)
            coverage[g.detector] += 1
        for collection, gs in by_collection.items():
            if collection in tenant_gap_collectors or gs[0].reason in tenant_gap_reasons:
                tw = tenant_wide.setdefault(collection, {"accounts": 0, "detectors": set(), "reason": gs[0].reason})
                tw["accounts"] += 1
                tw["detectors"].update(g.detector for g in gs)
                continue  # one row for the whole tenant, written after the loop
            if (upn_l, collection) in known_gaps:
                continue  # the collector already recorded this gap; its detectors are implied
            store.add_error(scan_id, acc.upn, f"detectors:{collection}",
                            f"not evaluated: {', '.join(g.detector for g in gs)} ({gs[0].reason})")
        summary.not_evaluated += len(res.not_evaluated)

        rows = []
        for f in findings:
            row = f.to_json()
            row["artefact"] = f.artefact
            row["first_seen"] = started
            rows.append(row)
            sev_count[f.severity.label] += 1
            summary.new_findings += int(bool(f.new_since_last_scan))
            summary.transient += int(f.status == "transient")
            summary.suppressed += int(f.suppressed is not None)
        pend_rows.extend(rows)
        pend_verdicts.append((acc.upn, verdict, score, reasons, res.privileged))
        if len(pend_verdicts) >= 500:
            flush()
        verdicts[verdict] += 1
        summary.accounts += 1
    flush()

    # Tenant-level detectors, once.
    tfacts = dataclasses.replace(facts, consent_admins_new_method=consent_admins)
    tctx = ScanContext(tenant=tenant, now=now, allowlist=allowlist, facts=tfacts, first_scan=prev_scan is None,
                       protected_accounts=protected, previous_tenant=prev_tenant,
                       previous_finding_ids=frozenset(r["id"] for r in store.findings(prev_scan)
                                                      if r.get("status") == "active") if prev_scan else None)
    tfindings, tgaps = evaluate_tenant(tenant, tfacts, tctx)
    for g in tgaps:
        coverage[g.detector] += 1
        tw = tenant_wide.setdefault(g.collection, {"accounts": 0, "detectors": set(), "reason": g.reason})
        tw["detectors"].add(g.detector)
    if tfindings:
        rows = []
        for f in tfindings:
            row = f.to_json()
            row["artefact"] = f.artefact
            row["first_seen"] = started
            rows.append(row)
            sev_count[f.severity.label] += 1
            summary.new_findings += int(bool(f.new_since_last_scan))
            summary.suppressed += int(f.suppressed is not None)
            seen_ids.add(f.id)
        store.put_findings(scan_id, rows)
        store.record_history(scan_id, started, rows)
    for collection, tw in sorted(tenant_wide.items()):
        n = tw["accounts"]
        who = f"on {n} account(s)" if n else "for the tenant"
        store.add_error(scan_id, None, f"detectors:{collection}",
                        f"not evaluated {who}: {', '.join(sorted(tw['detectors']))} ({tw['reason']})")

    store.resolve_missing(scan_id, started, seen_ids)
    store.put_tenant_data(scan_id, SENT_HISTORY_KEY, new_hist)
    store.put_tenant_data(scan_id, "detectors.coverage", dict(coverage))
    summary.findings_by_severity = dict(sev_count)
    summary.verdicts = dict(verdicts)
    return summary


__all__ = [
    "AccountResult", "EvaluationSummary", "NotEvaluated", "allowlist_from_config", "artefact_present", "catalogue",
    "evaluate_account", "evaluate_scan", "evaluate_tenant", "manual_fix", "run_detectors", "tenant_catalogue", "tenant_facts",
]
