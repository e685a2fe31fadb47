"""One full tenant sweep: collect → store → detect → outputs. ``run_scan()`` is the one entry point the CLI, the demo
and the scheduler call.

Flow (bulk first, then per account, streamed):
1. tenant-wide sources once (domains, roles, OAuth grants, registration report, Get-Mailbox, Get-CASMailbox, SendAs,
   restricted senders) — stored in ``tenant_data`` so ``resume`` reuses them;
2. ``/users`` page by page; each page is cut into chunks of 20 accounts collected concurrently (``$batch`` + Exchange);
   each finished chunk is written with ``store.put_accounts`` — the tenant's snapshots are never all in memory, and
   the stored rows are the checkpoint for ``resume``;
3. the detector engine over the stored scan; 4. report.html / findings.json / findings.csv.

One mailbox or one collector failing never stops the scan: it becomes a coverage gap (``store.errors``) and exit 3.
Only a *required* source failing (the users list: forbidden, or sign-in refused) stops it, as :class:`ScanAbort`
(exit 2, one line naming the permission).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner.collectors.account import REUSED_COLLECTIONS, AccountCollector, Gap
from scanner.collectors.tenant import SOURCES, TenantSources, read_tenant_sources
from scanner.collectors.tenant_rows import RowStore
from scanner.collectors.users import iter_user_pages
from scanner.config import SEVERITIES, Config
from scanner.graph.client import ApiError
from scanner.permissions import least
from scanner.snapshot import OAuthGrant, TenantInfo
from scanner.store import Store

log = logging.getLogger("m365sweep.sweep")

CHUNK = 20  # accounts per $batch round (Graph's batch limit)
TENANT_KEY = "scan.tenant_sources"


class ScanAbort(Exception):
    """The scan cannot run at all (a required source is forbidden, sign-in refused): exit 2, one line."""

    exit_code = 2


@dataclass
class ScanResult:
    scan_id: str
    exit_code: int
    accounts_scanned: int
    errors: list[dict[str, Any]]
    outputs: dict[str, Path]
    verdicts: dict[str, int] = field(default_factory=dict)
    findings_by_severity: dict[str, int] = field(default_factory=dict)
    compromised: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    database: Path | None = None
    resumed: bool = False
    summary: Any = None


class _NullProgress:
    def start(self, collector: str, total: int | None) -> None: ...
    def advance(self, collector: str, n: int = 1) -> None: ...
    def finish(self, collector: str) -> None: ...


def _call(progress: Any, method: str, *args: Any) -> None:
    try:
        getattr(progress, method)(*args)
    except Exception:  # noqa: BLE001 - a broken progress display must not break a scan
        log.debug("progress display failed", exc_info=True)


def exit_code_for(findings: list[dict[str, Any]], errors: list[dict[str, Any]], fail_on: str | None) -> int:
    """1 when an active, unsuppressed finding is at or above ``fail_on``; else 3 on coverage gaps; else 0.

    Findings win over gaps: a pipeline gating on ``--fail-on`` must see the finding even when a mailbox was unreadable.
    """
    if fail_on:
        floor = SEVERITIES.index(fail_on.lower())
        for f in findings:
            if f.get("suppressed") or f.get("status", "active") != "active":
                continue
            if SEVERITIES.index(str(f["severity"])) >= floor:
                return 1
    return 3 if errors else 0


async def _collect(cfg: Config, store: Store, scan_id: str, conn: Any, *, resume: bool, progress: Any,
                   now: datetime, facts: Any = None) -> TenantInfo:
    # ---- 1. tenant-wide sources (reused on resume), read concurrently with each other and with step 2: a chunk
    # waits only for what it needs (the mailbox directory first; its users' registration rows and the rest when its
    # snapshots are assembled). The large sources stream into the scan database (tenant_rows), not into memory.
    rows = RowStore(store.db.conn, scan_id)
    stored = store.get_tenant_data(scan_id, TENANT_KEY) if resume else None
    tenant_task: asyncio.Task[TenantSources] | None = None
    if stored is not None:
        sources = TenantSources.from_json(stored, rows)
    else:
        _call(progress, "start", "tenant", None)
        sources = TenantSources(rows=rows)
        tenant_task = asyncio.create_task(read_tenant_sources(conn, rows=rows, src=sources,
                                                             client_id=cfg.tenant.client_id
                                                             or cfg.auth.managed_identity_client_id))
        # an unexpected failure must not leave chunks waiting for a source forever (it is re-raised below)
        tenant_task.add_done_callback(lambda t: t.cancelled() or t.exception() is None or sources.finish())
    upn_domains: set[str] = set()
    previous = None
    if cfg.scan.incremental:
        # Nightly incremental: per-user reads that last night's snapshot + tonight's bulk reports prove unchanged are
        # skipped (authentication methods when the registration record is unchanged; well-known folder ids). Rules,
        # folders, sent items and the Exchange cmdlets have no change marker and are always read.
        prev_id = store.previous_scan_id(scan_id)
        if prev_id is None:
            log.info("incremental: no previous finished scan of this tenant; reading everything")
        else:
            log.info("incremental: reusing unchanged per-user data from scan %s", prev_id)

            def previous(users: list[dict[str, Any]]) -> dict[str, Any]:
                # one query per chunk, parsing only what the reuse reads (account.py: methods_unchanged,
                # known_well_known) — a whole snapshot per user cost as much CPU as the reads it saved
                snaps = store.get_accounts(prev_id, (u["userPrincipalName"] for u in users),
                                           fields=REUSED_COLLECTIONS)
                out = {}
                for u in users:
                    snap = snaps.get(u["userPrincipalName"].lower())
                    if snap is not None and snap.user.id.lower() == u["id"].lower():
                        out[u["id"].lower()] = snap
                return out
    collector = AccountCollector(conn, cfg, sources, now, upn_domains, previous)

    # ---- 2. users, page by page, chunk by chunk
    done = {u.lower() for u in store.done_upns(scan_id)} if resume else set()
    # Chunks in flight: each chunk waits mostly on $batch round trips (Graph runs sub-requests ~4 at a time), so
    # keep about as many chunks going as the Graph client has request slots.
    sem = asyncio.Semaphore(max(2, cfg.scan.concurrency))
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def run_chunk(chunk: list[dict[str, Any]]) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                sem.release()

        try:
            snaps, gaps = await collector.collect(chunk, release)
            store.put_accounts(scan_id, snaps)
            if facts is not None:
                for snap in snaps:  # detection's pass 1, from the snapshots in hand (no second read of the store)
                    facts.add(snap)
            _record(store, scan_id, gaps)
            _call(progress, "advance", "accounts", len(chunk))
        except ApiError as err:
            # A whole chunk failed (e.g. the $batch endpoint itself refused): record per account, keep going.
            for u in chunk:
                store.add_error(scan_id, u["userPrincipalName"], "account", err.short(), err.code)
        except Exception as exc:  # noqa: BLE001 - one chunk must not stop the scan; recorded, then re-raised at end
            failures.append(exc)
            for u in chunk:
                store.add_error(scan_id, u["userPrincipalName"], "account", f"internal error: {type(exc).__name__}")
        finally:
            release()

    _call(progress, "start", "accounts", None)
    seen = 0
    try:
        async for page in iter_user_pages(conn.graph):
            _call(progress, "advance", "users", len(page))
            batch: list[dict[str, Any]] = []
            for u in page:
                upn = u["userPrincipalName"]
                for addr in (upn, u.get("mail")):
                    if isinstance(addr, str) and "@" in addr and "#ext#" not in addr.lower():
                        upn_domains.add(addr.rsplit("@", 1)[1].lower())
                if not cfg.scan.include_guests and (u.get("userType") == "Guest" or "#EXT#" in upn):
                    continue
                seen += 1
                if upn.lower() in done:
                    continue
                batch.append(u)
            for i in range(0, len(batch), CHUNK):
                await sem.acquire()
                t = asyncio.create_task(run_chunk(batch[i:i + CHUNK]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            _call(progress, "start", "accounts", seen)
    except ApiError as err:
        if seen and not (err.is_permission or err.is_auth):
            # The listing broke after some pages (a looping nextLink, a 503 storm on page N): the accounts already
            # read are finished normally and the rest of the directory is a named gap, never a silently short scan.
            store.add_error(scan_id, None, "users", f"user list incomplete after {seen} users: {err.short()}",
                            err.code or (str(err.status) if err.status else None))
        else:
            if tenant_task is not None:
                tenant_task.cancel()
                await asyncio.gather(tenant_task, return_exceptions=True)
            await _abort_users(err, tasks)
    if tenant_task is not None:
        sources = await tenant_task
        store.put_tenant_data(scan_id, TENANT_KEY, sources.to_json())
        for name, why in [*sources.gaps.items(), *sources.partial.items()]:
            store.add_error(scan_id, None, SOURCES[name], why.reason, why.code, why.permission)
        _call(progress, "finish", "tenant")
    if tasks:
        await asyncio.gather(*list(tasks))
    _call(progress, "finish", "accounts")
    if failures:
        log.error("%d chunk(s) failed with an internal error; accounts recorded as gaps", len(failures))
    for note in sources.notes:
        log.info("%s", note)
    grants = sources.data.get("grants") or {}
    store.put_tenant_data(scan_id, "oauth_grants.all_principals", grants.get("all_principals", []))
    dom = sources.data.get("domains") or {}
    domains: set[str] = set(dom.get("domains") or [])

    if not domains:
        domains = upn_domains
        store.add_error(scan_id, None, "domains",
                        "accepted domains not readable; using the domains of users' addresses instead "
                        f"({least('domains')} would give the authoritative list)", "fallback",
                        least("domains"))
    all_p = tuple(OAuthGrant(**g) for g in grants.get("all_principals", []))
    initial = dom.get("initial") or next((d for d in sorted(domains) if d.endswith(".onmicrosoft.com")), None)
    return TenantInfo(tenant_id=cfg.tenant.tenant_id, domains=tuple(sorted(domains)), initial_domain=initial,
                      default_domain=dom.get("default"), display_name=dom.get("display_name") or cfg.tenant.name,
                      all_principals_grants=all_p, all_principals_grants_read="grants" not in sources.gaps,
                      privileged_principals=sources.privileged_principals(),
                      app_role_grants=sources.app_role_grants(), scanner_app_id=sources.scanner_app_id(),
                      transport_rules=sources.transport_rules(), outbound_policy=sources.outbound_policy(),
                      exchange_role_groups=sources.exchange_role_groups())


async def _abort_users(err: ApiError, tasks: set[asyncio.Task[None]]) -> None:
    for t in list(tasks):
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if err.is_permission:
        raise ScanAbort(f"cannot list users: the app needs the Graph application permission "
                        f"{least('users', 'graph')} ({err.code or err.status})") from None
    if err.is_auth:
        raise ScanAbort(f"sign-in refused by Microsoft Graph ({err.code or '401'}): check the credentials, "
                        "tenant id and admin consent") from None
    raise ScanAbort(f"cannot list users: {err.short()}") from None


def _record(store: Store, scan_id: str, gaps: list[Gap]) -> None:
    for g in gaps:
        store.add_error(scan_id, g.upn, g.collector, g.why.reason, g.why.code, g.why.permission)


def _evaluate(cfg: Config, store: Store, scan_id: str, tenant: TenantInfo, now: datetime,
              facts: Any = None) -> Any:
    from detectors.engine import allowlist_from_config, evaluate_scan

    allowlist, warnings = allowlist_from_config(cfg.allowlist, now)
    for w in warnings:
        log.warning("%s", w)
    summary = evaluate_scan(store, scan_id, tenant=tenant, allowlist=allowlist, now=now,
                            protected_accounts=frozenset(a.lower() for a in cfg.remediation.protected_accounts),
                            prebuilt=facts)
    if warnings and hasattr(summary, "warnings"):
        summary.warnings.extend(warnings)
    return summary


async def run_scan(
    cfg: Config,
    *,
    credential: Any = None,
    transport: Any = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: Any = None,
    fail_on: str | None = None,
    now: datetime | None = None,
) -> ScanResult:
    """Sweep the tenant in ``cfg``; write outputs to ``out_dir`` (None: only the database). See module docstring."""
    from scanner.graph.factory import connect
    from scanner.locks import tenant_lock

    progress = progress or _NullProgress()
    now = now or datetime.now(UTC)
    t0, cpu0 = time.monotonic(), time.process_time()
    db_path = cfg.database_path
    with tenant_lock(db_path, cfg.label), Store(db_path) as store:
        scan_id = store.unfinished_scan_id(cfg.tenant.tenant_id) if resume else None
        resumed = scan_id is not None
        if resume and not resumed:
            log.info("no unfinished scan of this tenant to resume; starting a new scan")
        if scan_id is None:
            scan_id = store.begin_scan(cfg.tenant.tenant_id, cfg.label,
                                       {"graph": cfg.graph_url, "exchange": cfg.exchange_url,
                                        "hidden_rules": cfg.scan.hidden_rules, "sent_items": cfg.scan.sent_items})
        log.info("scan %s of tenant %s%s", scan_id, cfg.label, " (resumed)" if resumed else "")
        conn = connect(cfg, credential=credential, transport=transport)
        from detectors.engine import FactsBuilder

        facts = FactsBuilder(now)  # detection's tenant-wide facts, fed as accounts are stored
        try:
            tenant = await _collect(cfg, store, scan_id, conn, resume=resumed, progress=progress, now=now,
                                    facts=facts)
        finally:
            await conn.aclose()
        collect_s, collect_cpu = time.monotonic() - t0, time.process_time() - cpu0
        store.set_tenant(scan_id, tenant.model_dump(mode="json"))
        summary = _evaluate(cfg, store, scan_id, tenant, now, facts)
        stats = conn.stats
        stat_dict = {"http_requests": stats.http_requests, "logical_requests": stats.logical_requests,
                     "throttled": stats.throttled, "retries": stats.retries, "server_errors": stats.server_errors,
                     "by_service": dict(stats.by_service), "by_class": dict(stats.by_class),
                     "skipped": dict(stats.skipped),
                     "busy_seconds": {k: round(v, 3) for k, v in stats.busy_seconds.items()}, "seconds": round(time.monotonic() - t0, 3),
                     "cpu_seconds": round(time.process_time() - cpu0, 3),
                     "collect_seconds": round(collect_s, 3), "collect_cpu_seconds": round(collect_cpu, 3)}
        errors = store.errors(scan_id)
        store.finish_scan(scan_id, "partial" if errors else "complete", stat_dict)
        RowStore(store.db.conn, scan_id).drop_scan()  # streamed tenant rows: only a resume needs them
        outputs: dict[str, Path] = {}
        if out_dir is not None:
            from reports import write_outputs

            outputs = write_outputs(store, scan_id, Path(out_dir), cfg)
        accounts = store.accounts(scan_id)
        findings = store.findings(scan_id)
        return ScanResult(
            scan_id=scan_id,
            exit_code=exit_code_for(findings, errors, fail_on),
            accounts_scanned=len(accounts),
            errors=errors,
            outputs=outputs,
            verdicts=dict(getattr(summary, "verdicts", {}) or {}),
            findings_by_severity=dict(getattr(summary, "findings_by_severity", {}) or {}),
            compromised=[a["upn"] for a in accounts if a["verdict"] == "compromised"],
            suspicious=[a["upn"] for a in accounts if a["verdict"] == "suspicious"],
            stats=stat_dict,
            database=db_path,
            resumed=resumed,
            summary=summary,
        )


def run_scan_sync(cfg: Config, **kw: Any) -> ScanResult:
    return asyncio.run(run_scan(cfg, **kw))


ProgressFactory = Callable[[], Any]
