"""The report's view model: pure functions from stored scan data to plain frozen dataclasses the template renders.

Nothing here renders HTML; the template escapes every tenant string. ``build_report`` reads the store; every other
function takes plain rows so the tests can call it without a database or a template.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from detectors.engine import manual_fix
from reports.evidence import evidence_sentence
from reports.text import attack_url, strip_hidden
from scanner.snapshot import AccountSnapshot
from scanner.store import Store

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
VERDICTS = ("compromised", "suspicious", "clean")
VERDICT_RANK = {"compromised": 2, "suspicious": 1, "clean": 0}
# Clean accounts are not rendered one by one; their names go into a compact searchable list capped here.
CLEAN_LIST_CAP = 200_000
GAP_SAMPLE = 12
TREND_SCANS = 30
TIMELINE_ACCOUNTS = 25

# remediators/journal.py STATUSES; an action whose last row is "started" never finished (interrupted): pending.
PENDING_STATUSES = {"pending", "started", "undo_started", "planned", "approved", "queued"}
DONE_STATUSES = {"applied", "verified"}
FAILED_STATUSES = {"failed", "verify_failed", "undo_failed", "error", "aborted", "drifted"}
UNDONE_STATUSES = {"undone"}  # skipped, protected and dry_run rows count as "other": nothing changed


# ---- dataclasses ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FindingView:
    id: str
    detector: str
    technique: str
    technique_url: str | None
    severity: str
    title: str
    sentence: str
    evidence: tuple[tuple[str, str], ...]
    new: bool
    status: str
    suppressed: str | None
    first_seen: str | None
    last_seen: str | None
    remediation: tuple[str, ...]


@dataclass(frozen=True)
class TenantFindingView:
    """A finding about a tenant-level object (an app's role assignment …): its ``account`` is a pseudo-account label
    such as ``serviceprincipal:<displayName> (<appId>)`` with no scanned-account row and no verdict."""
    subject: str  # the raw pseudo-account label, as in findings.json
    kind: str  # "App (service principal)", "Tenant" …
    name: str  # the label without its kind prefix
    finding: FindingView
    search: str
    manual: str = ""  # how to fix it by hand (no m365sweep step acts on a tenant object)


@dataclass(frozen=True)
class JournalView:
    action_id: str
    upn: str
    time: str
    step: str
    target: str
    status: str
    state: str  # done | pending | failed | undone | other
    mode: str
    detail: str


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    title: str
    text: str
    link: str | None = None


@dataclass(frozen=True)
class GapView:
    collector: str
    message: str


@dataclass(frozen=True)
class AccountView:
    upn: str
    display_name: str
    verdict: str
    score: int
    privileged: bool
    synced: bool | None
    enabled: bool | None
    reasons: tuple[str, ...]
    max_severity: str  # "none" when only suppressed findings or gaps
    findings: tuple[FindingView, ...]
    # Active findings grouped by their evidence sentence: one back-door (a rule) often trips several detectors
    # (forwards externally + matches every message + meaningless name); the sentence is shown once per group.
    groups: tuple[tuple[FindingView, ...], ...]
    suppressed: tuple[FindingView, ...]
    gaps: tuple[GapView, ...]
    journal: tuple[JournalView, ...]
    checklist: tuple[ChecklistItem, ...]
    detectors: tuple[str, ...]
    techniques: tuple[str, ...]
    new: bool
    first_seen: str | None
    search: str  # lower-case text the client-side search matches


# What an admin loses when a collector fails: the back-doors the scan could not look for (coverage-gap table).
COLLECTOR_MEANING = {
    "forwarding": "mailbox forwarding (ForwardingSmtpAddress / ForwardingAddress) not checked",
    "inbox_rules": "inbox rules (forwarding, hiding, deleting mail) not checked",
    "folders": "mail folder names not read: rules moving mail to odd folders are judged with less context",
    "auth_methods": "sign-in (MFA) methods not checked",
    "registration": "MFA registration details not checked",
    "roles": "directory roles not checked",
    "oauth_grants": "app consents (OAuth grants) not checked",
    "delegates": "mailbox delegates (FullAccess, SendAs, SendOnBehalf) not checked",
    "sending": "outbound sending restrictions not checked",
    "protocols": "mail protocols (IMAP, POP, EWS, legacy authentication) not checked",
    "transport_rules": "mail-flow (transport) rules not checked: an organisation-wide redirect, Bcc or spam-filter "
                       "bypass would not be seen",
    "outbound_policy": "outbound auto-forwarding policies and remote domains not read: no documented forwarding "
                       "exception can suppress an external forward, and whether each forward is delivered or blocked "
                       "is not stated",
    "exchange_role_groups": "Exchange role groups (Organization Management, Discovery Management ...) not read: an "
                            "account given Exchange admin rights would not be seen",
    "user": "the account itself could not be read",
}


def collector_meaning(collector: str) -> str | None:
    key = collector.split(":", 1)[1] if collector.startswith("detectors:") else collector
    return COLLECTOR_MEANING.get(key)


@dataclass(frozen=True)
class GapGroup:
    collector: str
    reason: str
    permission: str | None
    count: int
    accounts: tuple[str, ...]  # a sample
    more: int
    tenant_level: bool
    meaning: str | None = None  # what could not be checked, in words


@dataclass(frozen=True)
class ActionSummary:
    done: int
    pending: int
    failed: int
    undone: int
    rows: tuple[JournalView, ...]  # latest state of each action, newest first (capped)
    upns: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    tenant_id: str
    tenant_name: str | None
    tenant_domain: str | None
    scan_id: str
    status: str
    started: str
    finished: str | None
    duration: str
    accounts_scanned: int
    verdicts: Mapping[str, int]
    severities: Mapping[str, int]  # active, unsuppressed findings by severity
    findings_total: int
    suppressed_total: int
    new_findings: int
    new_accounts: tuple[str, ...]
    tenant_findings: int  # active (unsuppressed) tenant-wide findings
    tenant_new: tuple[str, ...]  # "name: title" of tenant-wide findings new since the last scan
    previous_scan_id: str | None
    previous_started: str | None  # when the previous scan started (formatted), None on a first scan
    first_scan: bool
    gaps: tuple[GapGroup, ...]
    gap_accounts: int
    actions: ActionSummary


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    gridlines: tuple[tuple[float, str], ...]  # (y, label)
    empty: bool


@dataclass(frozen=True)
class TimelineRow:
    upn: str
    y: float
    x1: float
    x2: float
    first_seen: str
    last_seen: str
    resolved: bool
    verdict: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    label_width: int
    rows: tuple[TimelineRow, ...]
    ticks: tuple[Label, ...]
    empty: bool
    more: int = 0  # accounts with history beyond the TIMELINE_ACCOUNTS drawn


@dataclass(frozen=True)
class ReportModel:
    generated: str
    summary: Summary
    accounts: tuple[AccountView, ...]  # rendered one by one: flagged, or with findings / actions
    tenant_findings: tuple[TenantFindingView, ...]  # findings whose account is not a scanned account
    clean_count: int
    clean_upns: tuple[str, ...]
    clean_truncated: int
    detectors: tuple[str, ...]
    techniques: tuple[str, ...]
    severity_chart: Chart
    timeline: Timeline
    trend_scans: int


# ---- helpers -------------------------------------------------------------------------------------------------------

def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fmt_time(value: Any) -> str:
    dt = parse_time(value)
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "—"


def fmt_duration(started: Any, finished: Any) -> str:
    a, b = parse_time(started), parse_time(finished)
    if not a or not b:
        return "not finished"
    exact = max(0.0, (b - a).total_seconds())
    if exact < 10:
        return f"{exact:.1f} s"  # a small tenant's scan: "0 s" reads like nothing happened
    secs = int(exact)
    if secs < 60:
        return f"{secs} s"
    if secs < 3600:
        return f"{secs // 60} min {secs % 60} s"
    return f"{secs // 3600} h {(secs % 3600) // 60} min"


def flatten_evidence(evidence: Any, prefix: str = "", limit: int = 40) -> tuple[tuple[str, str], ...]:
    """Evidence as (key path, value) pairs for the drill-down table; values stay tenant text (escaped later)."""
    out: list[tuple[str, str]] = []

    def walk(v: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(v, Mapping):
            if not v:
                out.append((path or "(evidence)", "{}"))
            for k, iv in v.items():
                walk(iv, f"{path}.{k}" if path else str(k))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Mapping) for x in v):
            for i, iv in enumerate(v):
                walk(iv, f"{path}[{i}]")
        elif isinstance(v, (list, tuple)):
            out.append((path, ", ".join(_scalar(x) for x in v) if v else "(none)"))
        else:
            out.append((path, _scalar(v)))

    walk(evidence, prefix)
    return tuple(out[:limit])


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "—"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    text = str(v)
    return text if len(text) <= 400 else text[:397] + "…"


def journal_state(status: str | None) -> str:
    s = (status or "").lower()
    if s in PENDING_STATUSES:
        return "pending"
    if s in DONE_STATUSES:
        return "done"
    if s in FAILED_STATUSES:
        return "failed"
    if s in UNDONE_STATUSES:
        return "undone"
    return "other"


def journal_view(row: Mapping[str, Any]) -> JournalView:
    detail = row.get("detail") or ""
    return JournalView(
        action_id=str(row.get("action_id") or ""), upn=str(row.get("upn") or ""), time=fmt_time(row.get("time")), step=str(row.get("step") or ""),
        target=str(row.get("target") or ""), status=str(row.get("status") or ""),
        state=journal_state(row.get("status")), mode=str(row.get("mode") or ""),
        detail=detail if isinstance(detail, str) else json.dumps(detail, default=str),
    )


def latest_per_action(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The journal is append-only (a state change is a new row): keep the last row of each action."""
    latest: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        key = str(r.get("action_id") or r.get("seq"))
        latest[key] = r
    return sorted(latest.values(), key=lambda r: (str(r.get("time") or ""), r.get("seq") or 0), reverse=True)


def finding_view(f: Mapping[str, Any], history: Mapping[str, Any] | None = None) -> FindingView:
    technique = str(f.get("technique") or "")
    evidence = f.get("evidence") or {}
    h = history or {}
    return FindingView(
        id=str(f["id"]), detector=str(f.get("detector") or ""), technique=technique,
        technique_url=attack_url(technique), severity=str(f.get("severity") or "info"),
        title=str(f.get("title") or f.get("detector") or ""),
        sentence=evidence_sentence(str(f.get("detector") or ""), evidence),
        evidence=flatten_evidence(evidence), new=bool(f.get("new_since_last_scan")),
        status=str(f.get("status") or "active"), suppressed=f.get("suppressed"),
        first_seen=h.get("first_seen") or f.get("first_seen"), last_seen=h.get("last_seen"),
        remediation=tuple(str(x) for x in (f.get("remediation") or ())),
    )


# Pseudo-account prefixes written by tenant-level detectors (detectors/roles/service_principal_privileged.py …).
SUBJECT_KINDS = {
    "serviceprincipal": "App (service principal)", "app": "App", "application": "App registration",
    "group": "Group", "tenant": "Tenant", "domain": "Domain", "policy": "Policy", "role": "Directory role",
    "transportrule": "Mail-flow (transport) rule",
}


def split_subject(label: str) -> tuple[str, str]:
    """``serviceprincipal:Mail Sync (a1b2…)`` → ("App (service principal)", "Mail Sync (a1b2…)"); a label without a
    known ``kind:`` prefix is ("Tenant object", label)."""
    head, sep, rest = label.partition(":")
    key = head.strip().lower()
    if sep and key.isidentifier() and rest.strip():
        return SUBJECT_KINDS.get(key, key.replace("_", " ").capitalize()), rest.strip()
    return "Tenant object", label


def tenant_finding_views(findings: Sequence[Mapping[str, Any]],
                         histories: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[TenantFindingView, ...]:
    """Tenant-wide findings for their own table: active ones first (most severe, then new), suppressed last."""
    histories = histories or {}
    out = []
    for f in findings:
        fv = finding_view(f, histories.get(str(f["id"])))
        subject = str(f.get("account") or "")
        kind, name = split_subject(subject)
        search = strip_hidden(" ".join([subject, kind, fv.title, fv.sentence, fv.detector, fv.technique])).lower()
        out.append(TenantFindingView(subject=subject, kind=kind, name=name, finding=fv, search=search,
                                     manual=manual_fix(fv.detector) or ""))
    out.sort(key=lambda t: (t.finding.suppressed is not None, -SEV_RANK.get(t.finding.severity, 0),
                            not t.finding.new, t.name.lower(), t.finding.detector))
    return tuple(out)


def manual_checklist(user: Any | None) -> tuple[ChecklistItem, ...]:
    """What no API can do for a flagged account (interface.md): shown as a per-account checklist."""
    synced = getattr(user, "on_premises_sync_enabled", None) if user is not None else None
    items = [
        ChecklistItem(
            "app_passwords", "Delete app passwords and block legacy authentication",
            "Microsoft Graph cannot list or delete app passwords, and a password reset does not revoke them. Have "
            "the user delete every app password on the Security info page and re-create only the ones still "
            "needed; block legacy authentication with Conditional Access.",
            "https://mysignins.microsoft.com/security-info"),
        ChecklistItem(
            "sent_items", "Review Sent Items and Deleted Items",
            "Look for mail the attacker sent from the account (phishing, payment-change requests) and for "
            "conversations that were hidden or deleted."),
        ChecklistItem(
            "warn_contacts", "Warn contacts",
            "Tell the internal and external correspondents who may have received mail from the attacker, "
            "especially anyone with an open payment or invoice thread."),
        ChecklistItem(
            "contact_details", "Verify contact details",
            "Confirm the mobile phone, alternate e-mail addresses and authentication phone numbers with the user "
            "over a known channel (not by replying to e-mail)." + _contact_on_record(user)),
        ChecklistItem(
            "other_services", "Other services that use this address",
            "Change the password of other services registered with this address (payroll, banking, SaaS) and "
            "check their recovery e-mail and forwarding settings."),
    ]
    if synced:
        items.append(ChecklistItem(
            "on_premises", "Change the password on-premises",
            "This account is synchronised from on-premises Active Directory (onPremisesSyncEnabled): change the "
            "password in Active Directory; a cloud reset is refused or overwritten without password writeback."))
    elif synced is None:
        items.append(ChecklistItem(
            "on_premises", "Check whether the account is synchronised from on-premises",
            "The scan could not tell whether this account is synchronised (onPremisesSyncEnabled). If it is, change "
            "the password in on-premises Active Directory."))
    return tuple(items)


def _contact_on_record(user: Any | None) -> str:
    if user is None:
        return ""
    bits = []
    if getattr(user, "mobile_phone", None):
        bits.append(f"mobile phone {user.mobile_phone}")
    other = getattr(user, "other_mails", ()) or ()
    if other:
        bits.append("other e-mail " + ", ".join(other))
    return (" On record: " + "; ".join(bits) + ".") if bits else ""


def account_view(
    acc: Mapping[str, Any],
    findings: Sequence[Mapping[str, Any]],
    *,
    snapshot: AccountSnapshot | None = None,
    gaps: Sequence[Mapping[str, Any]] = (),
    journal: Sequence[Mapping[str, Any]] = (),
    history: Mapping[str, Mapping[str, Any]] | None = None,
) -> AccountView:
    history = history or {}
    views = [finding_view(f, history.get(str(f["id"]))) for f in findings]
    active = sorted((v for v in views if not v.suppressed), key=lambda v: (-SEV_RANK.get(v.severity, 0), v.detector))
    suppressed = tuple(v for v in views if v.suppressed)
    user = snapshot.user if snapshot is not None else None
    verdict = str(acc.get("verdict") or "clean")
    max_sev = max((v.severity for v in active), key=lambda s: SEV_RANK.get(s, 0), default="none")
    detectors = tuple(sorted({v.detector for v in views}))
    techniques = tuple(sorted({v.technique for v in views if v.technique}))
    first = min((v.first_seen for v in active if v.first_seen), default=None)
    upn = str(acc.get("upn") or acc.get("userPrincipalName") or "")
    display = (user.display_name if user is not None else None) or ""
    # Invisible characters (raw or as "<U+200B>" text) are dropped from the search text, so "invoice" finds
    # "in\u200bvoice"; the evidence sentences are searchable too (a keyword, a forwarding address).
    search = strip_hidden(" ".join([upn, display, *(v.title for v in views), *(v.sentence for v in views),
                                    *detectors, *techniques])).lower()
    return AccountView(
        upn=upn, display_name=display, verdict=verdict, score=int(acc.get("score") or 0),
        privileged=bool(acc.get("privileged")), synced=user.on_premises_sync_enabled if user is not None else None,
        enabled=user.account_enabled if user is not None else None,
        reasons=tuple(str(r) for r in (acc.get("reasons") or ())), max_severity=max_sev,
        findings=tuple(active), groups=group_by_sentence(active), suppressed=suppressed,
        gaps=tuple(GapView(str(g.get("collector") or ""), str(g.get("message") or "")) for g in gaps),
        journal=tuple(journal_view(r) for r in latest_per_action(journal)),
        checklist=manual_checklist(user) if verdict != "clean" else (),
        detectors=detectors, techniques=techniques, new=any(v.new for v in active), first_seen=first,
        search=search,
    )


def group_by_sentence(findings: Sequence[FindingView]) -> tuple[tuple[FindingView, ...], ...]:
    """Findings (already most severe first) grouped by identical evidence sentence, groups in first-seen order."""
    groups: dict[str, list[FindingView]] = {}
    for f in findings:
        groups.setdefault(f.sentence, []).append(f)
    return tuple(tuple(g) for g in groups.values())


def account_sort_key(a: AccountView) -> tuple[int, int, int, str]:
    return (-VERDICT_RANK.get(a.verdict, 0), -SEV_RANK.get(a.max_severity, -1), -a.score, a.upn.lower())


def verdict_counts(accounts: pd.DataFrame) -> dict[str, int]:
    counts = accounts["verdict"].fillna("clean").value_counts() if len(accounts) else pd.Series(dtype=int)
    out = {v: int(counts.get(v, 0)) for v in VERDICTS}
    for k, n in counts.items():  # a verdict this code does not know still shows up
        if k not in out:
            out[str(k)] = int(n)
    return out


def severity_counts(findings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    df = pd.DataFrame([{"severity": f.get("severity"), "suppressed": f.get("suppressed")} for f in findings],
                      columns=["severity", "suppressed"])
    active = df[df["suppressed"].isna()] if len(df) else df
    counts = active["severity"].value_counts() if len(active) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in reversed(SEVERITIES)}


def group_gaps(errors: Sequence[Mapping[str, Any]], sample: int = GAP_SAMPLE) -> tuple[GapGroup, ...]:
    """Coverage gaps grouped by collector and reason, with a sample of the accounts each affects."""
    if not errors:
        return ()
    df = pd.DataFrame([{
        "collector": str(e.get("collector") or "unknown"),
        "reason": _gap_reason(e),
        "permission": e.get("permission") or "",
        "upn": e.get("upn") or e.get("account") or "",
    } for e in errors])
    groups = []
    for (collector, reason, permission), g in df.groupby(["collector", "reason", "permission"], sort=False):
        upns = [u for u in dict.fromkeys(g["upn"]) if u]
        groups.append(GapGroup(
            collector=str(collector), reason=str(reason), permission=str(permission) or None,
            count=len(upns) if upns else int(len(g)),
            accounts=tuple(upns[:sample]), more=max(0, len(upns) - sample), tenant_level=not upns,
            meaning=collector_meaning(str(collector)),
        ))
    groups.sort(key=lambda gg: (not gg.tenant_level, -gg.count, gg.collector))
    return tuple(groups)


def _gap_reason(e: Mapping[str, Any]) -> str:
    """Group key for a gap: the error code when present (messages often embed per-account ids), else the message."""
    code = e.get("code")
    msg = str(e.get("message") or "").strip()
    if code:
        return f"{code}: {msg.splitlines()[0][:160]}" if msg else str(code)
    return msg.splitlines()[0][:200] if msg else "unknown"


def action_summary(journal: Sequence[Mapping[str, Any]], cap: int = 200) -> ActionSummary:
    latest = latest_per_action(journal)
    views = [journal_view(r) for r in latest]
    count = {k: sum(1 for v in views if v.state == k) for k in ("done", "pending", "failed", "undone")}
    upns = tuple(dict.fromkeys(str(r.get("upn")) for r in latest if r.get("upn")))
    return ActionSummary(done=count["done"], pending=count["pending"], failed=count["failed"],
                         undone=count["undone"], rows=tuple(views[:cap]), upns=upns)


# ---- charts (inline SVG geometry) ----------------------------------------------------------------------------------

def severity_trend(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows {scan_id, started, severity, n} → one row per scan (oldest first), one column per severity."""
    cols = list(SEVERITIES)
    if not rows:
        return pd.DataFrame(columns=["scan_id", "started", *cols])
    df = pd.DataFrame(rows)
    df["severity"] = df["severity"].map(lambda s: SEVERITIES[s] if isinstance(s, int) else str(s))
    pivot = df.pivot_table(index=["scan_id", "started"], columns="severity", values="n", aggfunc="sum",
                           fill_value=0)
    pivot = pivot.reindex(columns=cols, fill_value=0).reset_index().sort_values("started")
    pivot.columns.name = None
    return pivot.reset_index(drop=True)


def severity_chart(trend: pd.DataFrame, width: int = 720, height: int = 220) -> Chart:
    """Stacked bars of active findings by severity, one bar per stored scan."""
    left, right, top, bottom = 44, 10, 12, 34
    n = len(trend)
    if n == 0:
        return Chart(width, height, (), (), (), True)
    totals = trend[list(SEVERITIES)].sum(axis=1)
    peak = max(int(totals.max()), 1)
    step = _nice_step(peak)
    ymax = step * max(1, -(-peak // step))
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / n
    bw = max(2.0, min(40.0, slot * 0.7))
    bars: list[Bar] = []
    labels: list[Label] = []
    every = max(1, n // 8)
    # Nightly scans are told apart by their date; several scans on one day also need the time.
    days = [fmt_time(st)[:10] for st in trend["started"]]
    same_day = len(set(days)) < len(days)
    minutes = [fmt_time(st)[:16] for st in trend["started"]]
    same_minute = len(set(minutes)) < len(minutes)  # back-to-back scans (a re-run, a test): seconds too
    for i, row in enumerate(trend.itertuples(index=False)):
        x = left + i * slot + (slot - bw) / 2
        y = top + plot_h
        when = fmt_time(row.started)
        for sev in SEVERITIES:
            value = int(getattr(row, sev))
            if value <= 0:
                continue
            h = plot_h * value / ymax
            y -= h
            bars.append(Bar(round(x, 1), round(y, 1), round(bw, 1), round(h, 1), f"sev-{sev}",
                            f"{when}: {value} {sev}"))
        if i % every == 0 or i == n - 1:
            dt = parse_time(row.started)
            text = (dt.strftime("%H:%M:%S") if same_minute and dt else when[5:16] if same_day else when[5:10])
            labels.append(Label(round(x + bw / 2, 1), height - bottom + 16, text))
    grid = tuple((round(top + plot_h - plot_h * v / ymax, 1), str(v)) for v in range(0, ymax + 1, step))
    return Chart(width, height, tuple(bars), tuple(labels), grid, False)


def _nice_step(peak: int) -> int:
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000):
        if peak / s <= 5:
            return s
    return max(1, peak // 5)


def timeline(entries: Sequence[Mapping[str, Any]], now: Any, width: int = 720, row_h: int = 18,
             label_width: int = 230) -> Timeline:
    """Per-account first seen → last seen bars from finding_history rows {upn, first_seen, last_seen, resolved,
    verdict}, one row per account (earliest first_seen, latest last_seen)."""
    rows = [e for e in entries if parse_time(e.get("first_seen"))]
    if not rows:
        return Timeline(width, 40, label_width, (), (), True)
    per: dict[str, dict[str, Any]] = {}
    for e in rows:
        u = str(e["upn"])
        fs, ls = parse_time(e.get("first_seen")), parse_time(e.get("last_seen")) or parse_time(e.get("first_seen"))
        cur = per.setdefault(u, {"first": fs, "last": ls, "open": False, "verdict": e.get("verdict") or "clean"})
        cur["first"] = min(cur["first"], fs)
        cur["last"] = max(cur["last"], ls)
        cur["open"] = cur["open"] or not e.get("resolved")
    end = parse_time(now) or max(v["last"] for v in per.values())
    start = min(v["first"] for v in per.values())
    if all(v["first"] == v["last"] for v in per.values()) and len({v["first"] for v in per.values()}) == 1:
        return Timeline(width, 40, label_width, (), (), True)  # one scan of history: nothing to draw yet
    span = max((end - start).total_seconds(), 1.0)
    plot_w = width - label_width - 16
    ordered = sorted(per.items(), key=lambda kv: (-VERDICT_RANK.get(kv[1]["verdict"], 0), kv[1]["first"], kv[0]))
    out = []
    for i, (u, v) in enumerate(ordered[:TIMELINE_ACCOUNTS]):
        x1 = label_width + plot_w * (v["first"] - start).total_seconds() / span
        x2 = label_width + plot_w * (v["last"] - start).total_seconds() / span
        out.append(TimelineRow(u, 22 + i * row_h, round(x1, 1), round(max(x2, x1 + 4), 1), fmt_time(v["first"]),
                               fmt_time(v["last"]), not v["open"], v["verdict"]))
    short = (end - start).total_seconds() < 3 * 86400  # days alone would repeat: show the time too
    ticks = tuple(Label(round(label_width + plot_w * f, 1), 12,
                        fmt_time(start + (end - start) * f)[5:16] if short else fmt_time(start + (end - start) * f)[:10])
                  for f in (0.0, 0.5, 1.0))
    return Timeline(width, 30 + len(out) * row_h, label_width, tuple(out), ticks, False,
                    max(0, len(ordered) - TIMELINE_ACCOUNTS))


# ---- assembly from the store ---------------------------------------------------------------------------------------

def build_report(store: Store, scan_id: str, cfg: Any = None,
                 findings: list[dict[str, Any]] | None = None) -> ReportModel:
    scan = store.scan(scan_id)
    tenant = json.loads(scan["tenant"]) if scan.get("tenant") else {}
    findings = store.findings(scan_id) if findings is None else findings
    errors = store.errors(scan_id)
    previous = store.previous_scan_id(scan_id)

    acc_df = pd.read_sql_query(
        "select upn, verdict, score, reasons, privileged, has_gaps from accounts where scan_id = ?",
        store.db.conn, params=[scan_id])
    acc_df["verdict"] = acc_df["verdict"].fillna("clean")

    scan_upns = {u.lower() for u in acc_df["upn"]}
    by_upn: dict[str, list[dict[str, Any]]] = {}
    tenant_rows: list[dict[str, Any]] = []
    for f in findings:
        key = str(f["account"]).lower()
        if key in scan_upns:
            by_upn.setdefault(key, []).append(f)
        else:  # a tenant-level finding (pseudo-account): no account row, no verdict, its own section
            tenant_rows.append(f)
    gaps_by_upn: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        if e.get("upn"):
            gaps_by_upn.setdefault(str(e["upn"]).lower(), []).append(e)
    journal_all = store.journal()
    journal_by_upn: dict[str, list[dict[str, Any]]] = {}
    for r in journal_all:
        if r.get("upn"):
            journal_by_upn.setdefault(str(r["upn"]).lower(), []).append(r)
    journal_scan = [r for r in journal_all if r.get("scan_id") == scan_id
                    or (r.get("upn") and str(r["upn"]).lower() in scan_upns
                        and str(r.get("time") or "") >= str(scan["started"]))]

    rendered: list[AccountView] = []
    timeline_entries: list[dict[str, Any]] = []
    # Drawn one by one: flagged accounts and any with findings (suppressed included) or remediation rows. Clean
    # accounts with nothing to show (even with coverage gaps, summarised by collector) are counted, not drawn, so a
    # 100,000-account tenant stays a usable file.
    mask = (acc_df["verdict"] != "clean") | acc_df["upn"].str.lower().isin(by_upn) | \
        acc_df["upn"].str.lower().isin(journal_by_upn)
    drawn = acc_df[mask].to_dict("records")
    snapshots = store.get_accounts(scan_id, [str(r["upn"]) for r in drawn])  # 500 to a query
    for row in drawn:
        key = str(row["upn"]).lower()
        fs = by_upn.get(key, [])
        history = {}
        for f in fs:
            h = store.history(str(f["id"]))
            if h:
                history[str(f["id"])] = h
                if not f.get("suppressed"):
                    timeline_entries.append({**h, "upn": row["upn"], "verdict": row["verdict"]})
        row["reasons"] = json.loads(row["reasons"] or "[]")
        rendered.append(account_view(row, fs, snapshot=snapshots.get(key),
                                     gaps=gaps_by_upn.get(key, []), journal=journal_by_upn.get(key, []),
                                     history=history))
    rendered.sort(key=account_sort_key)
    tenant_hist: dict[str, dict[str, Any]] = {}
    for f in tenant_rows:
        h = store.history(str(f["id"]))
        if h:
            tenant_hist[str(f["id"])] = h
            if not f.get("suppressed"):
                timeline_entries.append({**h, "upn": split_subject(str(f["account"]))[1], "verdict": "tenant"})
    tenant_views = tenant_finding_views(tenant_rows, tenant_hist)

    clean = acc_df.loc[~mask, "upn"].sort_values(key=lambda s: s.str.lower())
    clean_upns = tuple(clean.head(CLEAN_LIST_CAP))

    trend_rows = []
    scans = [s for s in store.scans(scan["tenant_id"]) if s["started"] <= scan["started"]][-TREND_SCANS:]
    if scans:
        ids = [s["id"] for s in scans]
        started = {s["id"]: s["started"] for s in scans}
        marks = ",".join("?" * len(ids))
        for sid, sev, n in store.db.execute(
                f"select scan_id, severity, count(*) from findings where suppressed is null "  # noqa: S608 - '?' marks only
                f"and coalesce(status, 'active') = 'active' and scan_id in ({marks}) group by scan_id, severity", ids):
            trend_rows.append({"scan_id": sid, "started": started[sid], "severity": sev, "n": n})
        for sid in ids:  # scans without findings still get a (zero) bar
            trend_rows.append({"scan_id": sid, "started": started[sid], "severity": "info", "n": 0})

    new_accounts = tuple(a.upn for a in rendered if a.new)
    summary = Summary(
        tenant_id=str(scan["tenant_id"]), tenant_name=tenant.get("display_name") or (
            getattr(getattr(cfg, "tenant", None), "name", None) if cfg is not None else None),
        tenant_domain=tenant.get("default_domain") or tenant.get("initial_domain"),
        scan_id=scan_id, status=str(scan.get("status") or ""), started=fmt_time(scan["started"]),
        finished=fmt_time(scan["finished"]) if scan.get("finished") else None,
        duration=fmt_duration(scan["started"], scan.get("finished")), accounts_scanned=len(acc_df),
        verdicts=verdict_counts(acc_df), severities=severity_counts(findings),
        findings_total=sum(1 for f in findings if not f.get("suppressed")),
        suppressed_total=sum(1 for f in findings if f.get("suppressed")),
        new_findings=sum(1 for f in findings if f.get("new_since_last_scan") and not f.get("suppressed")),
        new_accounts=new_accounts,
        tenant_findings=sum(1 for t in tenant_views if not t.finding.suppressed),
        tenant_new=tuple(f"{t.name}: {t.finding.title}" for t in tenant_views
                         if t.finding.new and not t.finding.suppressed),
        previous_scan_id=previous,
        previous_started=fmt_time(store.scan(previous)["started"]) if previous else None, first_scan=previous is None,
        gaps=group_gaps(errors), gap_accounts=len({str(e["upn"]).lower() for e in errors if e.get("upn")}),
        actions=action_summary(journal_scan),
    )
    views_det = sorted({d for a in rendered for d in a.detectors} | {t.finding.detector for t in tenant_views})
    views_tech = sorted({t for a in rendered for t in a.techniques}
                        | {t.finding.technique for t in tenant_views if t.finding.technique})
    return ReportModel(
        generated=fmt_time(datetime.now(UTC)), summary=summary, accounts=tuple(rendered),
        tenant_findings=tenant_views,
        clean_count=int((~mask).sum()), clean_upns=clean_upns, clean_truncated=max(0, len(clean) - CLEAN_LIST_CAP),
        detectors=tuple(views_det), techniques=tuple(views_tech),
        severity_chart=severity_chart(severity_trend(trend_rows)),
        # The axis ends at this scan's start: finding_history's last_seen is the start time of the scan that saw it.
        timeline=timeline(timeline_entries, scan["started"]), trend_scans=len(scans),
    )


__all__ = [
    "AccountView", "FindingView", "ReportModel", "Summary", "account_view", "build_report", "group_gaps",
    "manual_checklist", "severity_chart", "severity_trend", "timeline", "verdict_counts", "severity_counts",
    "flatten_evidence", "action_summary", "TenantFindingView", "tenant_finding_views", "split_subject",
]
