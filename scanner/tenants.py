"""Several tenants in one run: each is an independent unit of work with its own database and output directory.

- :func:`load_configs` expands ``--config`` values (files, or directories of ``*.toml``) into configs and refuses
  layouts that would mix tenants (two configs sharing a database, two tenants with the same label).
- :func:`run_tenant` is the unit of work: lock the tenant → ``run_scan`` → auto-remediation (when asked for and the
  ``[remediation]`` policy allows it) → re-render the report if anything was changed → retention → notification.
  It touches nothing but its own config, database, lock file and output directory, and returns a plain
  :class:`TenantOutcome`, so a job queue could later run tenants on different machines.
- :func:`run_many` runs a list of tenants (sequentially, or ``parallel`` at a time), writes
  ``<out>/<tenant label>/`` per tenant and one summary across them: ``<out>/summary.json`` and ``<out>/summary.html``.

Exit codes per interface.md; across tenants the most urgent wins: 2 (a tenant could not be scanned) > 1 (findings at
or above ``--fail-on``) > 3 (coverage gaps) > 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner.config import SEVERITIES, Config, ConfigError, load_config

log = logging.getLogger("m365sweep.tenants")

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_GAPS = 0, 1, 2, 3
_EXIT_PRECEDENCE = (EXIT_ERROR, EXIT_FINDINGS, EXIT_GAPS, EXIT_OK)


def combine_exit_codes(codes: Iterable[int]) -> int:
    have = set(codes)
    for c in _EXIT_PRECEDENCE:
        if c in have:
            return c
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# configs


def slug(label: str) -> str:
    """A directory name for a tenant label: letters, digits, ``.``, ``_``, ``-``; never empty, never hidden."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", label.strip()).strip("._") or "tenant"
    return s[:80]


def expand_config_paths(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(x for x in p.glob("*.toml") if x.is_file())
            if not found:
                raise ConfigError(f"config directory {p} contains no *.toml files")
            out.extend(found)
        else:
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def check_independent(configs: Sequence[Config]) -> None:
    """Tenants must not share a database (scans of different tenants would diff against each other) nor an output
    directory (reports would overwrite each other)."""
    dbs: dict[Path, Config] = {}
    slugs: dict[str, Config] = {}
    for cfg in configs:
        where = f" ({cfg.source})" if cfg.source else ""
        db = cfg.database_path.resolve()
        if db in dbs:
            other = dbs[db]
            raise ConfigError(
                f"tenants {other.label} and {cfg.label}{where} use the same database {db}; "
                "set a separate [storage] database for each tenant")
        dbs[db] = cfg
        s = slug(cfg.label)
        if s in slugs:
            raise ConfigError(
                f"two configs have the tenant label {s!r}{where}; set a distinct [tenant] name in each")
        slugs[s] = cfg


def load_configs(paths: Sequence[str | Path]) -> list[Config]:
    """Configs from files and directories (every ``*.toml`` in a directory, sorted). ConfigError names the file."""
    files = expand_config_paths(paths)
    if not files:
        raise ConfigError("no config given: use --config FILE (repeatable) or --config DIR")
    configs = [load_config(p) for p in files]
    check_independent(configs)
    return configs


# ---------------------------------------------------------------------------------------------------------------------
# one tenant


@dataclass(frozen=True)
class TenantJob:
    """Everything one tenant's run needs, as plain data (no clients, no shared state)."""

    config: Config
    out_dir: Path
    resume: bool = False
    fail_on: str | None = None
    remediate: bool = False  # the scheduler: run auto-remediation when [remediation] allow_auto = true
    notify: bool = True
    retention: bool = True
    actor: str = "scan"


@dataclass(frozen=True)
class TenantOutcome:
    label: str
    tenant_id: str
    database: str
    out_dir: str
    exit_code: int
    status: str  # "complete" | "partial" (coverage gaps) | "error" | "busy"
    message: str | None = None
    scan_id: str | None = None
    started: str | None = None
    finished: str | None = None
    accounts_scanned: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)  # active (not suppressed) findings by severity
    new_findings: int = 0
    coverage_gaps: int = 0
    remediation: dict[str, Any] | None = None
    notification: dict[str, Any] | None = None
    retention_deleted: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _scan_id_of(result: Any) -> str | None:
    for name in ("scan_id", "id"):
        v = getattr(result, name, None)
        if isinstance(v, str):
            return v
    scan = getattr(result, "scan", None)
    if isinstance(scan, Mapping) and isinstance(scan.get("id"), str):
        return scan["id"]
    return None


def scan_stats(store: Any, scan_id: str) -> dict[str, Any]:
    """Counts for summaries and exit codes, read back from the store (the one source of truth)."""
    row = store.scan(scan_id)
    verdicts: dict[str, int] = {}
    for a in store.accounts(scan_id):
        verdicts[a["verdict"]] = verdicts.get(a["verdict"], 0) + 1
    by_sev = {s: 0 for s in reversed(SEVERITIES)}
    new = 0  # the engine marks nothing new on a tenant's first scan (standing findings)
    for f in store.findings(scan_id):
        if f.get("suppressed"):
            continue
        by_sev[f["severity"]] += 1
        new += int(bool(f.get("new_since_last_scan")))
    return {
        "scan_id": scan_id, "started": row.get("started"), "finished": row.get("finished"),
        "status": row.get("status"), "accounts_scanned": int(row.get("accounts_scanned") or 0),
        "verdicts": verdicts, "findings": {k: v for k, v in by_sev.items() if v}, "new_findings": new,
        "coverage_gaps": len(store.errors(scan_id)),
    }


def exit_code_for(stats: Mapping[str, Any], fail_on: str | None) -> int:
    if fail_on:
        floor = SEVERITIES.index(fail_on)
        if any(n and SEVERITIES.index(s) >= floor for s, n in stats["findings"].items()):
            return EXIT_FINDINGS
    if stats["coverage_gaps"]:
        return EXIT_GAPS
    return EXIT_OK


def _error_outcome(job: TenantJob, status: str, message: str) -> TenantOutcome:
    cfg = job.config
    return TenantOutcome(label=cfg.label, tenant_id=cfg.tenant.tenant_id, database=str(cfg.database_path),
                         out_dir=str(job.out_dir), exit_code=EXIT_ERROR, status=status, message=message)


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "fix your config / permissions / sign-in" (exit 2) rather than a crash."""
    from scanner.store import StoreError

    errs: list[type[BaseException]] = [ConfigError, StoreError]
    try:
        from scanner.graph.client import ApiError

        errs.append(ApiError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from azure.core.exceptions import ClientAuthenticationError

        errs.append(ClientAuthenticationError)
    except ImportError:  # pragma: no cover
        pass
    try:  # the scanner's own "cannot scan" error, when it defines one
        from scanner import sweep

        for name in ("ScanAbort", "ScanError"):
            e = getattr(sweep, name, None)
            if isinstance(e, type) and issubclass(e, BaseException):
                errs.append(e)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


async def _remediate(job: TenantJob, store: Any, scan_kw: Mapping[str, Any]) -> dict[str, Any]:
    from remediators.runner import run_auto
    from scanner.graph.factory import connect

    cfg = job.config
    async with connect(cfg, credential=scan_kw.get("credential"), transport=scan_kw.get("transport")) as conn:
        # The scheduler counts as the confirmation: an admin enabled allow_auto in the config for exactly this.
        res = await run_auto(cfg, store, conn, dry_run=False, confirmed=True, actor=job.actor)
    return {
        "run_id": getattr(res, "run_id", None),
        "dry_run": bool(getattr(res, "dry_run", False)),
        "dry_run_reason": getattr(res, "dry_run_reason", "") or None,
        "acted": [getattr(o, "upn", str(o)) for o in getattr(res, "acted", [])],
        "pending": list(getattr(res, "pending", [])),
        "protected": list(getattr(res, "protected", [])),
        "errors": dict(getattr(res, "errors", {}) or {}),
        "ok": bool(getattr(res, "ok", True)),
    }


async def run_tenant(job: TenantJob, *, credential: Any = None, transport: Any = None, progress: Any = None,
                     notify_kw: Mapping[str, Any] | None = None) -> TenantOutcome:
    """One tenant, start to finish. Never raises for a tenant-level problem: the outcome carries exit code and
    message (so one tenant's failure cannot stop the others)."""
    from scanner.locks import TenantBusyError, TenantLock
    from scanner.store import Store

    cfg = job.config
    lock = TenantLock(cfg.database_path, cfg.label)
    try:
        lock.acquire()
    except TenantBusyError as exc:
        log.warning("%s", exc)
        return _error_outcome(job, "busy", str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. unwritable database directory
        return _error_outcome(job, "error", str(exc))
    try:
        return await _run_locked(job, credential=credential, transport=transport, progress=progress,
                                 notify_kw=notify_kw or {}, store_cls=Store)
    finally:
        lock.release()


async def _run_locked(job: TenantJob, *, credential: Any, transport: Any, progress: Any,
                      notify_kw: Mapping[str, Any], store_cls: Any) -> TenantOutcome:
    from scanner.sweep import run_scan

    cfg = job.config
    scan_kw = {"credential": credential, "transport": transport}
    usage = _usage_errors()
    try:
        result = await run_scan(cfg, credential=credential, transport=transport, out_dir=job.out_dir,
                                resume=job.resume, progress=progress, fail_on=job.fail_on)
    except usage as exc:
        log.error("%s: %s", cfg.label, exc)
        return _error_outcome(job, "error", str(exc))
    except Exception as exc:  # noqa: BLE001 - one tenant's crash must not stop the others
        log.exception("%s: scan failed", cfg.label)
        return _error_outcome(job, "error", f"scan failed: {type(exc).__name__}: {exc}")

    store = store_cls(cfg.database_path)
    try:
        scan_id = _scan_id_of(result) or store.latest_scan_id()
        if scan_id is None:
            return _error_outcome(job, "error", "the scan stored no result")
        remediation: dict[str, Any] | None = None
        if job.remediate and cfg.remediation.allow_auto:
            try:
                remediation = await _remediate(job, store, scan_kw)
                # The report shows the journal: re-render it so tonight's actions are in tonight's report.
                from reports import write_outputs

                write_outputs(store, scan_id, job.out_dir, cfg=cfg)
            except Exception as exc:  # noqa: BLE001 - logged and reported; the scan result still stands
                log.exception("%s: auto-remediation failed", cfg.label)
                remediation = {"error": f"{type(exc).__name__}: {exc}"}
        stats = scan_stats(store, scan_id)
        post = await asyncio.to_thread(after_scan, cfg, store, scan_id, job.out_dir, notify=job.notify,
                                       retention=job.retention, notify_kw=notify_kw)
        deleted, notification = post["retention_deleted"], post["notification"]
    finally:
        store.close()
    code = getattr(result, "exit_code", None)
    if not isinstance(code, int):
        code = exit_code_for(stats, job.fail_on)
    return TenantOutcome(
        label=cfg.label, tenant_id=cfg.tenant.tenant_id, database=str(cfg.database_path), out_dir=str(job.out_dir),
        exit_code=code, status="partial" if stats["coverage_gaps"] else "complete", scan_id=scan_id,
        started=stats["started"], finished=stats["finished"], accounts_scanned=stats["accounts_scanned"],
        verdicts=stats["verdicts"], findings=stats["findings"], new_findings=stats["new_findings"],
        coverage_gaps=stats["coverage_gaps"], remediation=remediation, notification=notification,
        retention_deleted=deleted,
    )


def after_scan(cfg: Config, store: Any, scan_id: str, out_dir: str | Path | None, *, notify: bool = True,
               retention: bool = True, notify_kw: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Housekeeping after a finished scan: retention, then the webhook notification. Never raises (both are logged
    on failure: a scan's result stands regardless). Synchronous (webhook retries sleep): async callers run it in a
    thread."""
    deleted = 0
    if retention:
        from scanner.retention import apply_config_retention

        try:
            deleted = len(apply_config_retention(cfg, store).deleted)
        except Exception:  # noqa: BLE001 - housekeeping never fails a scan
            log.exception("%s: retention failed", cfg.label)
    notification: dict[str, Any] | None = None
    if notify:
        from scanner.notify import notify_scan

        report = Path(out_dir) / "report.html" if out_dir is not None else None
        res = notify_scan(cfg, store, scan_id, report=str(report) if report and report.exists() else None,
                          **(notify_kw or {}))
        notification = asdict(res) if res is not None else None
    return {"retention_deleted": deleted, "notification": notification}


def after_scan_of(cfg: Config, result: Any, out_dir: str | Path | None) -> dict[str, Any]:
    """:func:`after_scan` for a ``run_scan`` result (the single-tenant ``scan`` command: one call after run_scan)."""
    from scanner.store import Store

    scan_id = _scan_id_of(result)
    if scan_id is None:
        return {"retention_deleted": 0, "notification": None}
    with Store(cfg.database_path) as store:
        return after_scan(cfg, store, scan_id, out_dir)


# ---------------------------------------------------------------------------------------------------------------------
# many tenants


@dataclass(frozen=True)
class ManyResult:
    outcomes: tuple[TenantOutcome, ...]
    summary_json: Path
    summary_html: Path

    @property
    def exit_code(self) -> int:
        return combine_exit_codes(o.exit_code for o in self.outcomes)


def jobs_for(configs: Sequence[Config], out_root: Path, **job_kw: Any) -> list[TenantJob]:
    return [TenantJob(config=c, out_dir=Path(out_root) / slug(c.label), **job_kw) for c in configs]


async def run_many(configs: Sequence[Config] | Sequence[TenantJob], out_root: str | Path, *, parallel: int = 1,
                   connect_kwargs: Callable[[Config], Mapping[str, Any]] | None = None,
                   progress_factory: Callable[[Config], Any] | None = None,
                   notify_kw: Mapping[str, Any] | None = None, **job_kw: Any) -> ManyResult:
    """Run every tenant, then write ``summary.json`` / ``summary.html`` in ``out_root``.

    ``connect_kwargs(cfg)`` supplies per-tenant ``credential`` / ``transport`` (tests, or a credential per customer);
    ``progress_factory(cfg)`` a per-tenant progress display. ``job_kw`` (resume, fail_on, remediate, notify, actor)
    apply to every tenant given as a Config.
    """
    root = Path(out_root)
    jobs: list[TenantJob] = [c for c in configs if isinstance(c, TenantJob)]
    cfgs = [c for c in configs if isinstance(c, Config)]
    check_independent(cfgs + [j.config for j in jobs])
    jobs += jobs_for(cfgs, root, **job_kw)
    sem = asyncio.Semaphore(max(1, parallel))

    async def one(job: TenantJob) -> TenantOutcome:
        async with sem:
            kw = dict(connect_kwargs(job.config)) if connect_kwargs else {}
            prog = progress_factory(job.config) if progress_factory else None
            try:
                log.info("tenant %s: scanning", job.config.label)
                return await run_tenant(job, credential=kw.get("credential"), transport=kw.get("transport"),
                                        progress=prog, notify_kw=notify_kw)
            finally:
                close = getattr(prog, "close", None)
                if callable(close):
                    close()

    outcomes = tuple(await asyncio.gather(*(one(j) for j in jobs)))
    js, html = write_summary(root, outcomes)
    return ManyResult(outcomes, js, html)


def run_many_sync(*args: Any, **kw: Any) -> ManyResult:
    return asyncio.run(run_many(*args, **kw))


# ---------------------------------------------------------------------------------------------------------------------
# the summary across tenants


def summary_data(root: Path, outcomes: Sequence[TenantOutcome], now: datetime | None = None) -> dict[str, Any]:
    tenants = []
    for o in outcomes:
        d = o.to_json()
        out = Path(o.out_dir)
        try:
            rel = out.resolve().relative_to(root.resolve())
            d["report"] = f"{rel.as_posix()}/report.html" if (out / "report.html").exists() else None
        except ValueError:
            d["report"] = str(out / "report.html") if (out / "report.html").exists() else None
        tenants.append(d)
    totals = {"tenants": len(outcomes), "accounts_scanned": sum(o.accounts_scanned for o in outcomes),
              "new_findings": sum(o.new_findings for o in outcomes),
              "compromised": sum(o.verdicts.get("compromised", 0) for o in outcomes),
              "suspicious": sum(o.verdicts.get("suspicious", 0) for o in outcomes),
              "failed": sum(1 for o in outcomes if o.exit_code == EXIT_ERROR)}
    return {
        "generated": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exit_code": combine_exit_codes(o.exit_code for o in outcomes),
        "totals": totals,
        "tenants": tenants,
    }


_SUMMARY_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>m365sweep summary ({{ d.totals.tenants }} tenants)</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left}
th{background:#f4f4f4}.bad{color:#b00020;font-weight:600}.warn{color:#a05a00}.ok{color:#1b7a1b}
.num{text-align:right;font-variant-numeric:tabular-nums}small{color:#666}
</style></head><body>
<h1>m365sweep: {{ d.totals.tenants }} tenant(s)</h1>
<p><small>generated {{ d.generated }}</small> ·
{{ d.totals.accounts_scanned }} accounts scanned ·
<span class="{{ 'bad' if d.totals.compromised else 'ok' }}">{{ d.totals.compromised }} compromised</span> ·
{{ d.totals.suspicious }} suspicious · {{ d.totals.new_findings }} new findings ·
<span class="{{ 'bad' if d.totals.failed else 'ok' }}">{{ d.totals.failed }} tenant(s) not scanned</span></p>
<table>
<thead><tr><th>tenant</th><th>status</th><th class="num">accounts</th><th class="num">compromised</th>
<th class="num">suspicious</th><th>findings</th><th class="num">new</th><th class="num">gaps</th><th>report</th></tr></thead>
<tbody>
{% for t in d.tenants %}
<tr>
<td>{{ t.label }}<br><small>{{ t.tenant_id }}</small></td>
<td class="{{ 'bad' if t.exit_code == 2 else ('warn' if t.status == 'partial' else 'ok') }}">{{ t.status }}
{% if t.message %}<br><small>{{ t.message }}</small>{% endif %}</td>
<td class="num">{{ t.accounts_scanned }}</td>
<td class="num {{ 'bad' if t.verdicts.get('compromised') else '' }}">{{ t.verdicts.get('compromised', 0) }}</td>
<td class="num">{{ t.verdicts.get('suspicious', 0) }}</td>
<td>{% for sev, n in t.findings.items() %}{{ n }} {{ sev }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}</td>
<td class="num">{{ t.new_findings }}</td>
<td class="num">{{ t.coverage_gaps }}</td>
<td>{% if t.report %}<a href="{{ t.report }}">report</a>{% else %}-{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>
</body></html>
"""


def render_summary_html(data: Mapping[str, Any]) -> str:
    from jinja2 import Environment, StrictUndefined

    # autoescape on: labels, tenant ids and error messages can carry attacker-controlled text.
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_SUMMARY_TEMPLATE).render(d=data)


def write_summary(root: Path, outcomes: Sequence[TenantOutcome],
                  now: datetime | None = None) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    data = summary_data(root, outcomes, now)
    js = root / "summary.json"
    html = root / "summary.html"
    for path, text in ((js, json.dumps(data, indent=2, ensure_ascii=False) + "\n"),
                       (html, render_summary_html(data))):
        # A temporary file of its own per write, then an atomic rename: the scheduler's tenants finish concurrently,
        # and two writers sharing one "summary.json.tmp" made one rename fail (the other had already moved it).
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(name, 0o644)
            os.replace(name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
    return js, html


def scan_many_cli(config_paths: Sequence[str | Path], *, out_dir: Path | None, default_out: str | Path,
                  fail_on: str | None = None, resume: bool = False, quiet: bool = False) -> int:
    """The body of ``m365sweep scan`` with several ``--config`` values (or a directory): returns the exit code.

    Each tenant writes ``<out>/<label>/``; ``<out>/summary.json`` and ``summary.html`` summarise them all."""
    import click

    from scanner.logsetup import setup_logging
    from scanner.progress import make_progress

    configs = load_configs(config_paths)
    first = configs[0]
    level = first.logging.level
    if quiet and level in ("debug", "info"):
        level = "warning"
    setup_logging(first.logging.format, level,
                  extra_env=[c.notify.webhook_url_env for c in configs if c.notify.webhook_url_env])
    root = Path(out_dir) if out_dir is not None else Path(default_out)
    res = run_many_sync(configs, root, progress_factory=lambda c: make_progress(quiet=quiet, tenant=c.label),
                        resume=resume, fail_on=fail_on)
    for o in res.outcomes:
        click.echo(_printable(outcome_line(o)))
    click.echo(f"summary: {res.summary_html} and {res.summary_json.name}")
    return res.exit_code


def _printable(text: str) -> str:
    # Tenant strings are attacker-controlled: never let them drive the terminal.
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def outcome_line(o: TenantOutcome) -> str:
    """One line per tenant for the terminal."""
    if o.exit_code == EXIT_ERROR:
        return f"{o.label}: NOT SCANNED ({o.status}): {o.message}"
    comp = o.verdicts.get("compromised", 0)
    susp = o.verdicts.get("suspicious", 0)
    gaps = f", {o.coverage_gaps} coverage gap(s)" if o.coverage_gaps else ""
    return (f"{o.label}: {o.accounts_scanned} accounts, {comp} compromised, {susp} suspicious, "
            f"{o.new_findings} new finding(s){gaps} -> {o.out_dir}")


__all__ = [
    "ManyResult", "TenantJob", "after_scan", "after_scan_of", "scan_many_cli", "TenantOutcome", "check_independent", "combine_exit_codes", "expand_config_paths",
    "exit_code_for", "jobs_for", "load_configs", "outcome_line", "run_many", "run_many_sync", "run_tenant",
    "scan_stats", "slug", "summary_data", "write_summary",
]
