"""Throttling inside a Graph ``$batch`` is not failure: a sub-request answered 429 many rounds in a row (a big sweep
against the tenant's directory RU budget) is retried after each Retry-After until read, within the same allowance a
single request gets; only failures (5xx, no answer) count against the batch's rounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scanner.simulator import SimOptions, create_app, generate_tenant
from tests.reliability.helpers import assert_nothing_lost, env_for, gaps_of, scan, snapshot

VICTIM = "megan.bowen@contoso.com"


def test_a_sub_request_throttled_more_rounds_than_a_batch_has_is_still_read(tmp_path: Path) -> None:
    tenant = generate_tenant(users=30, seed=7, scenarios=True)
    tenant.faults.add("/authentication/methods", kind="throttle", times=12, upn=VICTIM, retry_after="0")
    env = env_for(tmp_path, tenant, create_app(tenant, SimOptions()))
    result = asyncio.run(scan(env))
    assert result.errors == [], result.errors[:2]
    assert result.stats["throttled"] >= 12
    assert snapshot(env, result, VICTIM).status("auth_methods") == "collected"
    assert_nothing_lost(env, result)


def test_a_sub_request_failing_every_round_is_a_gap_for_that_account(tmp_path: Path) -> None:
    tenant = generate_tenant(users=30, seed=7, scenarios=True)
    tenant.faults.add("/authentication/methods", kind="status", status=503, times=None, upn=VICTIM,
                      retry_after="0")
    env = env_for(tmp_path, tenant, create_app(tenant, SimOptions()))
    result = asyncio.run(scan(env))
    assert set(gaps_of(result, VICTIM)) == {"auth_methods"}
    assert [e for e in result.errors if e["upn"] != VICTIM] == []
    assert_nothing_lost(env, result)
