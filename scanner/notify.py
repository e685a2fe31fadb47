"""Webhook notifications: when a scan finds NEW findings at or above ``[notify] min_severity``.

Three payload formats (``[notify] format``):

- ``json``  — a generic, versioned JSON document for SIEMs and scripts (:func:`payload_json`);
- ``teams`` — a Microsoft Teams message carrying an Adaptive Card (what Teams "Workflows" webhooks and the older
  incoming-webhook connectors both accept: ``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": {...}}]}``);
- ``slack`` — Slack incoming-webhook ``text`` + ``blocks``.

"New" is the detector engine's ``new_since_last_scan``. A tenant's first scan (the baseline) has no new findings by
that definition, so it reports every standing finding at or above the floor instead, once, flagged ``baseline``.

Tenant strings (UPNs, rule names in titles, tenant labels) are attacker-controlled data: JSON encoding handles the
generic format; Slack's mrkdwn needs ``&``, ``<``, ``>`` escaped (otherwise ``<https://evil|Click>`` becomes a link
and ``<!channel>`` pings everyone); Teams' TextBlock markdown needs its markup characters backslash-escaped. Evidence
is never sent (it can quote message subjects and rule conditions): only ids, accounts, severities and titles.

Delivery is retried with bounded exponential backoff on network errors, 408, 429 (honouring a bounded
``Retry-After``) and 5xx; any other 4xx is permanent. A failing webhook is logged (host only: Teams and Slack webhook
URLs embed their secret) and never fails the scan.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from scanner.config import SEVERITIES, Config

log = logging.getLogger("m365sweep.notify")

PAYLOAD_VERSION = 1
MAX_LISTED = 20  # findings listed in a message; the rest are counted ("and 14 more")


@dataclass(frozen=True)
class NotifyResult:
    sent: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    findings: int = 0  # how many new findings the message reported


# ---------------------------------------------------------------------------------------------------------------------
# selection


def severity_rank(sev: str) -> int:
    return SEVERITIES.index(str(sev).lower())


def select_new(findings: Sequence[Mapping[str, Any]], min_severity: str, *,
               baseline: bool = False) -> list[dict[str, Any]]:
    """New, not suppressed (allow-listed), at or above ``min_severity``; most severe first.

    ``baseline``: the tenant's first scan. The detector engine marks nothing new on a first scan (findings are
    *standing*: there is no previous scan to differ from), but the admin who just set up the nightly job must hear
    about a compromise that is already there, so every standing finding counts, once."""
    floor = severity_rank(min_severity)
    out = [dict(f) for f in findings
           if (baseline or f.get("new_since_last_scan")) and not f.get("suppressed")
           and severity_rank(f["severity"]) >= floor]
    out.sort(key=lambda f: (-severity_rank(f["severity"]), str(f.get("account", "")), str(f.get("detector", ""))))
    return out


def _public(f: Mapping[str, Any]) -> dict[str, Any]:
    # Only these keys leave the machine: never evidence (may quote mail subjects / rule text).
    return {k: f.get(k) for k in ("id", "account", "detector", "technique", "severity", "title")}


def _counts(findings: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {s: 0 for s in reversed(SEVERITIES)}
    for f in findings:
        counts[str(f["severity"]).lower()] += 1
    return {k: v for k, v in counts.items() if v}


@dataclass(frozen=True)
class ScanInfo:
    tenant_label: str
    tenant_id: str
    scan_id: str
    started: str | None = None
    finished: str | None = None
    accounts_scanned: int | None = None
    report: str | None = None  # local path of report.html, as text (the receiver cannot open it, a human can)
    baseline: bool = False  # the tenant's first scan: findings are standing, not new


# ---------------------------------------------------------------------------------------------------------------------
# payloads


def _what(info: ScanInfo, n: int) -> str:
    return f"first scan, {n} finding(s)" if info.baseline else f"{n} new finding(s)"


def payload_json(info: ScanInfo, new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "event": "m365sweep.new_findings",
        "version": PAYLOAD_VERSION,
        "baseline": info.baseline,
        "tenant": {"label": info.tenant_label, "id": info.tenant_id},
        "scan": {"id": info.scan_id, "started": info.started, "finished": info.finished,
                 "accounts_scanned": info.accounts_scanned, "report": info.report},
        "new_findings": len(new),
        "by_severity": _counts(new),
        "findings": [_public(f) for f in new[:MAX_LISTED]],
        "truncated": max(len(new) - MAX_LISTED, 0),
    }


_SLACK = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_escape(text: Any) -> str:
    """Slack's documented control characters; ``&`` first so entities are not double-escaped."""
    return re.sub(r"[&<>]", lambda m: _SLACK[m.group(0)], str(text))


def payload_slack(info: ScanInfo, new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    e = slack_escape
    counts = ", ".join(f"{n} {sev}" for sev, n in _counts(new).items())
    headline = f"m365sweep: {_what(info, len(new))} in {e(info.tenant_label)} ({counts})"
    lines = [f"• *{e(f['severity']).upper()}* {e(f.get('account'))}: {e(f.get('title'))}" for f in new[:MAX_LISTED]]
    if len(new) > MAX_LISTED:
        lines.append(f"… and {len(new) - MAX_LISTED} more")
    context = f"tenant {e(info.tenant_id)} · scan {e(info.scan_id)}"
    if info.report:
        context += f" · report {e(info.report)}"
    return {
        "text": headline,  # notification / fallback text
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "-"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


# Inline markup only: every tenant string sits mid-line after our own prefix and line breaks are flattened, so the
# line-start constructs (#, -, +, "1.", >) cannot form; escaping fewer characters keeps stray backslashes rare.
_TEAMS_MD = re.compile(r"([\\`*_\[\]~<>])")


def teams_escape(text: Any) -> str:
    """Backslash-escape the markdown Teams renders in TextBlocks; flatten line breaks (they would start lists or
    headings)."""
    return _TEAMS_MD.sub(r"\\\1", str(text)).replace("\r", " ").replace("\n", " ")


_TEAMS_COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Accent", "info": "Default"}


def payload_teams(info: ScanInfo, new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    e = teams_escape
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": f"m365sweep: {_what(info, len(new))} in {e(info.tenant_label)}"},
        {"type": "FactSet", "facts": [
            # FactSet values are rendered as plain text by Teams, but escape anyway: clients differ.
            {"title": "Tenant", "value": e(info.tenant_id)},
            {"title": "Scan", "value": e(info.scan_id)},
            *({"title": sev.capitalize(), "value": str(n)} for sev, n in _counts(new).items()),
        ]},
    ]
    for f in new[:MAX_LISTED]:
        sev = str(f["severity"]).lower()
        body.append({"type": "TextBlock", "wrap": True, "color": _TEAMS_COLOR.get(sev, "Default"),
                     "text": f"**{e(sev.upper())}** {e(f.get('account'))}: {e(f.get('title'))}"})
    if len(new) > MAX_LISTED:
        body.append({"type": "TextBlock", "wrap": True, "text": f"and {len(new) - MAX_LISTED} more"})
    if info.report:
        body.append({"type": "TextBlock", "wrap": True, "isSubtle": True, "text": f"Report: {e(info.report)}"})
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                        "version": "1.4", "body": body},
        }],
    }


FORMATS: dict[str, Callable[[ScanInfo, Sequence[Mapping[str, Any]]], dict[str, Any]]] = {
    "json": payload_json,
    "slack": payload_slack,
    "teams": payload_teams,
}


def build_payload(fmt: str, info: ScanInfo, new: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return FORMATS[fmt](info, new)


# ---------------------------------------------------------------------------------------------------------------------
# delivery


def webhook_url(cfg: Config) -> str | None:
    """``[notify] webhook_url``, or the value of the env var named by ``webhook_url_env`` (preferred: Teams and
    Slack webhook URLs are bearer secrets)."""
    n = cfg.notify
    if n.webhook_url_env:
        v = os.environ.get(n.webhook_url_env, "").strip()
        if v:
            return v
    return (n.webhook_url or "").strip() or None


def _host(url: str) -> str:
    # Log only the host: the path and query of Teams / Slack webhook URLs are the credential.
    try:
        return urlsplit(url).netloc.rsplit("@", 1)[-1] or "?"
    except ValueError:
        return "?"


def _retry_after(resp: httpx.Response, cap: float) -> float | None:
    v = resp.headers.get("Retry-After")
    try:
        return min(max(float(v), 0.0), cap) if v is not None else None
    except ValueError:
        return None


def post_webhook(url: str, payload: Mapping[str, Any], *, attempts: int = 4, base_delay: float = 1.0,
                 max_delay: float = 30.0, timeout: float = 10.0, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> NotifyResult:
    """POST ``payload`` as JSON; retries (at most ``attempts`` tries, delays ``base_delay * 2**i`` with jitter,
    capped at ``max_delay``). Never raises."""
    if not re.match(r"^https?://", url, re.I):
        log.warning("notification not sent: webhook URL is not http(s)")
        return NotifyResult(False, 0, error="webhook URL is not http(s)")
    own = client is None
    c = client or httpx.Client(timeout=timeout, follow_redirects=False)
    status: int | None = None
    error: str | None = None
    try:
        for attempt in range(1, attempts + 1):
            delay = min(base_delay * 2 ** (attempt - 1), max_delay) * (0.5 + random.random() / 2)  # noqa: S311 - retry jitter, not crypto
            try:
                resp = c.post(url, json=payload, headers={"User-Agent": "m365sweep"})
                status = resp.status_code
                if 200 <= status < 300:
                    log.info("notification delivered to %s (attempt %d)", _host(url), attempt)
                    return NotifyResult(True, attempt, status)
                error = f"HTTP {status}"
                if status not in (408, 429) and status < 500:
                    break  # permanent: a bad URL or a rejected payload will not get better
                delay = _retry_after(resp, max_delay) or delay
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                status, error = None, type(exc).__name__
            if attempt < attempts:
                log.info("notification to %s failed (%s), retrying in %.1fs", _host(url), error, delay)
                sleep(delay)
        log.warning("notification to %s failed after %d attempt(s): %s", _host(url), attempt, error)
        return NotifyResult(False, attempt, status, error)
    finally:
        if own:
            c.close()


def notify_new_findings(cfg: Config, info: ScanInfo, findings: Sequence[Mapping[str, Any]], *,
                        url: str | None = None, **post_kw: Any) -> NotifyResult | None:
    """Send one message for ``findings`` (the scan's findings, findings.json shape) if any are new and at or above
    ``[notify] min_severity``. None when nothing was to be sent (no webhook configured, nothing new)."""
    target = url or webhook_url(cfg)
    if not target:
        return None
    new = select_new(findings, cfg.notify.min_severity, baseline=info.baseline)
    if not new:
        log.info("%s: no new findings at or above %s; no notification", info.tenant_label, cfg.notify.min_severity)
        return None
    try:
        payload = build_payload(cfg.notify.format, info, new)
    except Exception:  # noqa: BLE001 - never fatal
        log.exception("notification payload could not be built")
        return NotifyResult(False, 0, error="payload")
    try:
        res = post_webhook(target, payload, **post_kw)
    except Exception as exc:  # noqa: BLE001 - a failing webhook is never fatal
        log.warning("notification to %s failed: %s", _host(target), type(exc).__name__)
        return NotifyResult(False, 0, error=type(exc).__name__, findings=len(new))
    return NotifyResult(res.sent, res.attempts, res.status, res.error, findings=len(new))


def notify_scan(cfg: Config, store: Any, scan_id: str, *, report: str | None = None,
                **post_kw: Any) -> NotifyResult | None:
    """:func:`notify_new_findings` for a stored scan (reads the findings and scan row from ``store``)."""
    try:
        row = store.scan(scan_id)
        findings = store.findings(scan_id)
    except Exception:  # noqa: BLE001 - never fatal
        log.exception("notification skipped: scan %s could not be read", scan_id)
        return NotifyResult(False, 0, error="store")
    info = ScanInfo(tenant_label=cfg.label, tenant_id=row.get("tenant_id") or cfg.tenant.tenant_id, scan_id=scan_id,
                    started=row.get("started"), finished=row.get("finished"),
                    accounts_scanned=row.get("accounts_scanned"), report=report,
                    baseline=store.previous_scan_id(scan_id) is None)
    return notify_new_findings(cfg, info, findings, **post_kw)
