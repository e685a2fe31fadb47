"""Retention: keep the last N scans (``[storage] keep_scans``) or D days (``[storage] keep_days``).

A scan is kept when *either* rule keeps it (as restic's ``--keep-last`` + ``--keep-within``): setting both never
deletes more than setting one. With neither set, nothing is deleted. Whatever the settings, these are never deleted:

- the newest finished scan of each tenant (the next scan diffs against it for ``new_since_last_scan``);
- an unfinished scan newer than that tenant's newest finished scan (it is either running or resumable with
  ``scan --resume``).

Deletion goes through :meth:`scanner.store.Store.delete_scan` (accounts, findings, errors and tenant data of the scan).
The remediation journal and ``finding_history`` are kept: they are the audit trail and the first-seen dates.

Snapshots are stored compressed already: :meth:`Store.put_accounts` zlib-compresses each account snapshot
(``scanner.store.pack``), and tenant-level data the same way; tests/ops/test_retention.py checks the stored bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("m365sweep.retention")


@dataclass(frozen=True)
class RetentionResult:
    deleted: tuple[str, ...]
    kept: tuple[str, ...]


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


def plan_retention(scans: list[dict[str, Any]], *, keep_scans: int | None, keep_days: int | None,
                   now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Pure: (ids to delete, ids kept) for scan rows (``Store.scans()`` dicts). Per tenant."""
    if keep_scans is None and keep_days is None:
        return [], [s["id"] for s in scans]
    now = now or datetime.now(UTC)
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for s in scans:
        by_tenant.setdefault(s.get("tenant_id") or "", []).append(s)
    delete: list[str] = []
    keep: list[str] = []
    for rows in by_tenant.values():
        rows = sorted(rows, key=lambda r: r["started"], reverse=True)  # ISO-8601 UTC sorts as text
        finished = [r for r in rows if r.get("finished")]
        newest_finished = finished[0] if finished else None
        for r in rows:
            started = _parse(r["started"])
            protected = r is newest_finished or (
                not r.get("finished") and (newest_finished is None or r["started"] > newest_finished["started"]))
            by_count = keep_scans is not None and r in finished[:keep_scans]
            by_age = keep_days is not None and started is not None and started >= now - timedelta(days=keep_days)
            (keep if protected or by_count or by_age else delete).append(r["id"])
    return delete, keep


def apply_retention(store: Any, *, keep_scans: int | None, keep_days: int | None, now: datetime | None = None,
                    tenant_id: str | None = None) -> RetentionResult:
    """Delete what :func:`plan_retention` says from ``store`` (a :class:`scanner.store.Store`)."""
    delete, keep = plan_retention(store.scans(tenant_id), keep_scans=keep_scans, keep_days=keep_days, now=now)
    for scan_id in delete:
        store.delete_scan(scan_id)
    if delete:
        log.info("retention: deleted %d old scan(s), kept %d", len(delete), len(keep))
    return RetentionResult(tuple(delete), tuple(keep))


def apply_config_retention(cfg: Any, store: Any, now: datetime | None = None) -> RetentionResult:
    """Retention as ``[storage]`` of ``cfg`` says."""
    return apply_retention(store, keep_scans=cfg.storage.keep_scans, keep_days=cfg.storage.keep_days, now=now)
