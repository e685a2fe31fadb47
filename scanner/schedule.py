"""``m365sweep schedule``: nightly (any cron) sweeps of one or several tenants, with APScheduler 3.x.

Each tenant is one job (id ``scan:<tenant label>``), built from its config at start (the schedule is never persisted:
the config is the only source, so editing the cron and restarting is all it takes). A job run is
:func:`scanner.tenants.run_tenant` with ``remediate=True``: scan → auto-remediation when ``[remediation] allow_auto``
(the scheduler counts as the confirmation) → report re-rendered → retention → webhook notification.

- ``CronTrigger.from_crontab([schedule] cron, timezone=[schedule] timezone)``.
- ``max_instances=1`` per tenant, ``coalesce=True`` (a backlog of missed fires runs once), and
  ``misfire_grace_time = [schedule] misfire_grace_seconds``. The per-tenant lock file (scanner.locks) also keeps a
  manual ``m365sweep scan`` of the same tenant from running alongside the nightly job.
- Catch-up: APScheduler's memory job store knows nothing about fires missed while the process was down. At start, for
  each tenant, if the cron's previous fire time is later than the start of the newest *finished* scan in the tenant's
  database, the job's first run is set to now — once; afterwards the cron takes over. A tenant with no scans at all
  is not caught up (nothing was missed: it has never been scheduled); its first run is the next cron time.
- Scheduled runs resume: a scan killed mid-way (reboot, OOM, ``kill -9``) is continued by the next run rather than
  started over — if it started after the cron's last fire time (tonight's scan). An older unfinished scan is stale
  (its stored accounts are a day old): the run starts a fresh scan instead.

Tests build the scheduler with a fast trigger (``build_scheduler(configs, trigger=...)``) and wait on
:meth:`SweepSchedule.wait_for_runs` (a condition variable), never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from scanner.config import Config, ConfigError
from scanner.tenants import TenantJob, TenantOutcome, run_tenant, slug, write_summary

log = logging.getLogger("m365sweep.schedule")


# ---------------------------------------------------------------------------------------------------------------------
# triggers and catch-up


def cron_trigger(cfg: Config) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(cfg.schedule.cron, timezone=cfg.schedule.timezone)
    except ValueError as exc:
        raise ConfigError(f"'schedule.cron' / 'schedule.timezone' of {cfg.label}: {exc}") from None
    except Exception as exc:  # zoneinfo.ZoneInfoNotFoundError and friends
        raise ConfigError(f"'schedule.timezone' of {cfg.label}: unknown time zone {cfg.schedule.timezone!r}"
                          f" ({type(exc).__name__})") from None


def previous_fire_time(trigger: Any, now: datetime) -> datetime | None:
    """The latest fire time of ``trigger`` at or before ``now`` (APScheduler 3 triggers only look forward, so walk
    forward from windows further and further back; a daily cron is found in the first day-long window)."""
    for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32),
                   timedelta(days=367), timedelta(days=366 * 8)):
        t = trigger.get_next_fire_time(None, now - window)
        prev = None
        steps = 0
        while t is not None and t <= now and steps < 10_000:
            prev = t
            t = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
            steps += 1
        if prev is not None:
            return prev
    return None


def _parse_ts(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


def latest_finished_start(cfg: Config) -> datetime | None:
    """Start time of the newest finished scan of this tenant (None without a database or a scan)."""
    if not cfg.database_path.exists():
        return None
    from scanner.store import Store

    with Store(cfg.database_path) as store:
        scan_id = store.latest_scan_id(complete_only=True)
        return _parse_ts(store.scan(scan_id)["started"]) if scan_id else None


def fresh_unfinished_scan(cfg: Config, since: datetime | None) -> bool:
    """True when the tenant has an unfinished scan that started at or after ``since`` (tonight's, cut short)."""
    if not cfg.database_path.exists():
        return False
    from scanner.store import Store

    with Store(cfg.database_path) as store:
        scan_id = store.unfinished_scan_id(cfg.tenant.tenant_id)
        if scan_id is None:
            return False
        started = _parse_ts(store.scan(scan_id)["started"])
    return since is None or (started is not None and started >= since)


def missed_run(cfg: Config, now: datetime, trigger: Any = None) -> bool:
    """True when the cron fired (at its previous fire time) after the newest finished scan started."""
    last = latest_finished_start(cfg)
    if last is None:
        return False
    prev = previous_fire_time(trigger or cron_trigger(cfg), now)
    return prev is not None and last < prev


# ---------------------------------------------------------------------------------------------------------------------
# the runner the jobs call


@dataclass
class SweepSchedule:
    """The scheduler plus what the jobs record: tests wait on :meth:`wait_for_runs`; the CLI just starts it."""

    scheduler: Any
    jobs: dict[str, TenantJob]
    out_root: Path | None
    connect_kwargs: Callable[[Config], Mapping[str, Any]] | None = None
    notify_kw: Mapping[str, Any] | None = None
    stop_after: int | None = None  # pause the scheduler after this many runs (smoke tests, `--max-runs`)
    caught_up: dict[str, bool] = field(default_factory=dict)
    outcomes: list[TenantOutcome] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _summary_lock: threading.Lock = field(default_factory=threading.Lock)
    _latest: dict[str, TenantOutcome] = field(default_factory=dict)

    def run_job(self, key: str) -> TenantOutcome:
        """The APScheduler job function (runs in the scheduler's thread pool; one event loop per run)."""
        job = self.jobs[key]
        if job.resume:
            # Resume only tonight's scan: one that started before the cron's last fire is stale (its stored
            # accounts would be a day old), so that run starts afresh instead.
            try:
                since = previous_fire_time(cron_trigger(job.config), datetime.now(UTC))
                job = replace(job, resume=fresh_unfinished_scan(job.config, since))
            except Exception:  # noqa: BLE001 - a damaged database is reported by the scan itself
                job = replace(job, resume=False)
        kw = dict(self.connect_kwargs(job.config)) if self.connect_kwargs else {}
        log.info("scheduled scan of %s starting", job.config.label)
        try:
            outcome = asyncio.run(run_tenant(job, credential=kw.get("credential"), transport=kw.get("transport"),
                                             notify_kw=self.notify_kw))
        except Exception as exc:  # noqa: BLE001 - a job must never kill the scheduler
            log.exception("scheduled scan of %s failed", job.config.label)
            from scanner.tenants import _error_outcome

            outcome = _error_outcome(job, "error", f"{type(exc).__name__}: {exc}")
        if outcome.exit_code == 2:
            log.error("scheduled scan of %s: %s", outcome.label, outcome.message)
        else:
            log.info("scheduled scan of %s done: scan %s, %d accounts, %d new finding(s), exit %d",
                     outcome.label, outcome.scan_id, outcome.accounts_scanned, outcome.new_findings,
                     outcome.exit_code)
        with self._cond:
            self.outcomes.append(outcome)
            self._latest[key] = outcome
            if self.stop_after is not None and len(self.outcomes) >= self.stop_after:
                # Paused from inside the job, before it returns: with max_instances=1 no further run of this
                # tenant can have started yet, so exactly stop_after runs happen.
                self.scheduler.pause()
            self._cond.notify_all()
        if self.out_root is not None and len(self.jobs) > 1:
            # Tenants finish concurrently: one writer at a time, each writing the newest outcomes (an older list
            # written last would roll the summary back).
            with self._summary_lock:
                with self._cond:
                    latest = [self._latest[k] for k in self.jobs if k in self._latest]
                try:
                    write_summary(self.out_root, latest)
                except OSError:
                    log.exception("summary could not be written")
        return outcome

    def wait_for_runs(self, n: int, timeout: float) -> bool:
        """Block until ``n`` runs (all tenants) have finished, or ``timeout`` seconds passed."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.outcomes) >= n, timeout=timeout)

    def start(self, **kw: Any) -> None:
        self.scheduler.start(**kw)

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)


def tenant_out_dir(cfg: Config, out: str | Path | None, multi: bool) -> Path:
    """``--out`` (per tenant ``<out>/<label>/`` when several), else ``[storage] output_dir``, else
    ``m365sweep-reports/`` next to the tenant's database."""
    if out is not None:
        return Path(out) / slug(cfg.label) if multi else Path(out)
    if cfg.storage.output_dir:
        return cfg.resolve(cfg.storage.output_dir)
    return cfg.database_path.parent / "m365sweep-reports"


def build_scheduler(configs: Sequence[Config], trigger: Any = None, *, out: str | Path | None = None,
                    blocking: bool = False, scheduler: Any = None, catch_up: bool = True,
                    now: datetime | None = None, connect_kwargs: Callable[[Config], Mapping[str, Any]] | None = None,
                    notify_kw: Mapping[str, Any] | None = None, resume: bool = True,
                    stop_after: int | None = None) -> SweepSchedule:
    """A not-yet-started scheduler with one job per tenant.

    ``trigger``: None → each tenant's cron; a trigger object → that trigger for every tenant (tests); a callable →
    ``trigger(cfg)``. ``connect_kwargs(cfg)`` gives per-tenant ``credential`` / ``transport`` (tests). ``now`` is
    the reference time for catch-up (tests)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    from scanner.tenants import check_independent

    check_independent(configs)
    multi = len(configs) > 1
    sched = scheduler or (BlockingScheduler if blocking else BackgroundScheduler)(timezone=UTC)
    jobs: dict[str, TenantJob] = {}
    for cfg in configs:
        key = f"scan:{slug(cfg.label)}"
        jobs[key] = TenantJob(config=cfg, out_dir=tenant_out_dir(cfg, out, multi), resume=resume, remediate=True,
                              notify=True, actor="scheduler")
    out_root = Path(out) if (out is not None and multi) else None
    ss = SweepSchedule(scheduler=sched, jobs=jobs, out_root=out_root, connect_kwargs=connect_kwargs,
                       notify_kw=notify_kw, stop_after=stop_after)
    ref = now or datetime.now(UTC)
    for key, job in jobs.items():
        cfg = job.config
        cron = cron_trigger(cfg)  # validated even when a test trigger replaces it
        trig = trigger(cfg) if callable(trigger) and not hasattr(trigger, "get_next_fire_time") else (trigger or cron)
        kw: dict[str, Any] = {}
        ss.caught_up[key] = bool(catch_up and missed_run(cfg, ref, cron))
        if ss.caught_up[key]:
            log.info("%s: the scheduled scan due at %s was missed; running it now", cfg.label,
                     previous_fire_time(cron, ref))
            kw["next_run_time"] = datetime.now(UTC)
        sched.add_job(ss.run_job, trig, args=[key], id=key, name=f"m365sweep scan {cfg.label}",
                      max_instances=1, coalesce=True, misfire_grace_time=cfg.schedule.misfire_grace_seconds,
                      replace_existing=True, **kw)
    return ss


# ---------------------------------------------------------------------------------------------------------------------
# CLI


def _configure_logging(configs: Sequence[Config]) -> None:
    from scanner.logsetup import setup_logging

    first = configs[0]
    extra_env = [c.notify.webhook_url_env for c in configs if c.notify.webhook_url_env]
    setup_logging(first.logging.format, first.logging.level, extra_env=extra_env)


@click.command("schedule")
@click.option("--config", "config_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Config file, repeatable; or a directory of *.toml configs (one per tenant).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output directory (with several tenants: one sub-directory per tenant plus summary.*).")
@click.option("--run-now", is_flag=True, help="Also run every tenant once immediately at start.")
@click.option("--no-catch-up", is_flag=True, help="Do not run a nightly scan missed while the scheduler was down.")
def schedule_command(config_paths: tuple[Path, ...], out: Path | None, run_now: bool, no_catch_up: bool) -> None:
    """Long-running: scans on each tenant's [schedule] cron, auto-remediation if [remediation] allows it."""
    from scanner.tenants import load_configs

    try:
        configs = load_configs(config_paths)
        _configure_logging(configs)
        ss = build_scheduler(configs, out=out, blocking=False, catch_up=not no_catch_up)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if run_now:
        now = datetime.now(UTC)
        for key in ss.jobs:
            ss.scheduler.modify_job(key, next_run_time=now)
    for key, job in ss.jobs.items():
        cfg = job.config
        click.echo(f"scheduled {cfg.label}: cron '{cfg.schedule.cron}' ({cfg.schedule.timezone})"
                   f"{' - catching up a missed run now' if ss.caught_up.get(key) else ''}", err=True)
    # systemd stops with SIGTERM, a terminal with SIGINT. Neither may interrupt the scheduler's code: an exception
    # raised by a signal handler inside APScheduler's locks can leave them held, and the process then never exits.
    # So both are blocked before the scheduler's threads start (they inherit the mask) and the main thread waits
    # for them synchronously. On the first one, scheduling stops and a scan in flight is finished and stored; a
    # second signal ends the process at once (that scan then resumes next time).
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        ss.start()
        signum = signal.sigwait(stop_signals)
        log.info("scheduler stopping on %s; a scan in flight finishes first", signal.Signals(signum).name)
    finally:
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        # wait: once the main thread returns the interpreter shuts down and a scan's executor work would fail
        ss.shutdown(wait=True)
