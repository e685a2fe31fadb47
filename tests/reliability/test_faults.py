"""A test per fault class: whatever the service does, the scan finishes, every account it could not read is named with
the reason (store errors, findings.json scan.errors), the exit code is 3, and nothing is silently shortened.

The simulator injects the faults (``tenant.faults.add``); the real scanner and msgraph-sdk pipeline run unchanged.
Retry-After values are small (the client really waits), and ``[scan] max_retries`` is lowered where a fault never
ends, so a test that proves "gives up and reports" stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from scanner.snapshot import NotCollected
from tests.reliability.helpers import (
    SlowPaths,
    SmallPages,
    assert_nothing_lost,
    env_for,
    gaps_of,
    read_findings_json,
    scan,
    snapshot,
)

VICTIM = "megan.bowen@contoso.com"
OTHER = "alex.wilber@contoso.com"


@pytest.fixture
def tenant() -> Any:
    return generate_tenant(users=40, seed=7, scenarios=True)


def _user_rules(tenant: Any, upn: str) -> int:
    """Rules the scanner must report: all but Exchange's own system rules (junk-mail, OOF)."""
    return sum(1 for r in tenant.rules(tenant.user(upn)) if not r.system)


def _env(tmp_path: Path, tenant: Any, **kw: Any) -> Any:
    return env_for(tmp_path, tenant, create_app(tenant, SimOptions()), **kw)


# ---- throttling ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", ["0", "0.128", None], ids=["integer", "fractional", "absent"])
async def test_429_storm_is_ridden_out(tmp_path: Path, tenant: Any, retry_after: str | None) -> None:
    # Fractional Retry-After (Microsoft's own sample is 2.128) makes the SDK's RetryHandler raise; ours waits.
    times = 2 if retry_after is None else 4  # without Retry-After the client backs off exponentially (slow)
    tenant.faults.add("/messageRules", kind="throttle", times=times, upn=VICTIM, retry_after=retry_after)
    tenant.faults.add("^/v1.0/users$", kind="throttle", times=2, retry_after=retry_after)
    tenant.faults.add("Get-InboxRule", kind="throttle", times=times, upn=VICTIM, retry_after=retry_after)
    tenant.faults.add("Get-Mailbox", kind="throttle", times=2, retry_after=retry_after)
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0
    assert result.stats["throttled"] >= 2 * times + 4
    assert len(snapshot(env, result, VICTIM).require("inbox_rules")) == _user_rules(tenant, VICTIM)


async def test_endless_429_on_one_mailbox_is_a_gap_naming_it(tmp_path: Path, tenant: Any) -> None:
    tenant.faults.add("/messageRules", kind="throttle", times=None, upn=VICTIM, retry_after="0")
    env = _env(tmp_path, tenant, scan={"max_retries": 2})
    out = tmp_path / "out"
    result = await scan(env, out)
    assert result.exit_code == 3
    assert "429" in gaps_of(result, VICTIM)["inbox_rules"]
    assert isinstance(snapshot(env, result, VICTIM).inbox_rules, NotCollected)
    assert snapshot(env, result, OTHER).status("inbox_rules") == "collected"
    listed = read_findings_json(out)["scan"]["errors"]
    assert any(e["account"] == VICTIM and e["collector"] == "inbox_rules" and "429" in e["message"] for e in listed)
    assert_nothing_lost(env, result)


# ---- server errors ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [503, 504])
async def test_transient_5xx_is_retried(tmp_path: Path, tenant: Any, status: int) -> None:
    tenant.faults.add("/authentication/methods", kind="status", status=status, times=2, upn=VICTIM, retry_after="0")
    tenant.faults.add("Get-CASMailbox", kind="status", status=status, times=2, retry_after="0")
    tenant.faults.add("/oauth2PermissionGrants", kind="status", status=status, times=1, retry_after="0")
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0
    assert result.stats["retries"] >= 5


@pytest.mark.parametrize("status", [503, 504])
async def test_persistent_5xx_is_a_gap(tmp_path: Path, tenant: Any, status: int) -> None:
    tenant.faults.add("/authentication/methods", kind="status", status=status, times=None, upn=VICTIM,
                      retry_after="0")
    tenant.faults.add("Get-CASMailbox", kind="status", status=status, times=None, retry_after="0")
    env = _env(tmp_path, tenant, scan={"max_retries": 2})
    result = await scan(env)
    assert result.exit_code == 3
    assert str(status) in gaps_of(result, VICTIM)["auth_methods"]
    assert str(status) in gaps_of(result, None)["protocols"]
    # A tenant-wide source that failed is a gap on every mailbox that needed it, never "no risky protocols".
    assert snapshot(env, result, OTHER).status("protocols") == "not_collected"
    assert snapshot(env, result, OTHER).status("auth_methods") == "collected"
    assert_nothing_lost(env, result)


# ---- transport faults ------------------------------------------------------------------------------------------------
async def test_connection_reset_is_retried_then_a_gap(tmp_path: Path, tenant: Any) -> None:
    tenant.faults.add("Get-InboxRule", kind="reset", times=1, upn=OTHER)  # once: retried, read
    tenant.faults.add("Get-InboxRule", kind="reset", times=None, upn=VICTIM)  # always: a gap
    tenant.faults.add("^/v1.0/domains$", kind="reset", times=1)
    env = _env(tmp_path, tenant, scan={"max_retries": 2})
    result = await scan(env)
    assert result.exit_code == 3
    assert set(gaps_of(result, None)) == set() and set(gaps_of(result, OTHER)) == set()
    assert "connection failed" in gaps_of(result, VICTIM)["inbox_rules"]
    # The Graph rules of the victim were read; only the hidden-rule source is missing, and it says so.
    assert snapshot(env, result, VICTIM).status("inbox_rules") == "collected"
    assert_nothing_lost(env, result)


def test_request_beyond_the_timeout_is_abandoned_then_a_gap(tmp_path: Path, tenant: Any) -> None:
    """A mailbox whose Exchange answer never comes in time: retried, then listed; the rest of the tenant is read.

    Served for real (uvicorn on 127.0.0.1): httpx enforces timeouts in its network transport, not in ASGITransport.
    """
    import asyncio

    app = create_app(tenant, SimOptions())
    victim_primary = tenant.user(VICTIM).mailbox.primary_smtp if hasattr(tenant.user(VICTIM).mailbox,
                                                                         "primary_smtp") else VICTIM
    slow = SlowPaths(app, rf"Get-InboxRule.*{victim_primary.split('@')[0]}", seconds=3.0)
    with SimulatorServer(slow, port=0) as srv:
        env = env_for(tmp_path, tenant, app, endpoints={"graph": srv.url, "exchange": srv.url.replace(
            "127.0.0.1", "localhost")}, scan={"request_timeout": 0.5, "max_retries": 1})
        env = type(env)(cfg=env.cfg, credential=env.credential, transport=None, tenant=tenant, app=app)
        result = asyncio.run(scan(env))
    # The batch holding it (the first try and one retry, each abandoned after 0.5 s), then the cmdlet on its own (the
    # same): the other cmdlets of that batch are read one at a time.
    assert slow.hits == 4
    assert result.exit_code == 3
    assert "Timeout" in gaps_of(result, VICTIM)["inbox_rules"]
    assert [e for e in result.errors if e["upn"] not in (VICTIM,)] == []
    assert_nothing_lost(env, result)


# ---- broken bodies ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["malformed", "truncated", "empty"])
async def test_broken_json_is_a_gap_never_an_empty_list(tmp_path: Path, tenant: Any, kind: str) -> None:
    tenant.add_rule(VICTIM, displayName="to the attacker", conditions={},
                    actions={"forwardTo": [{"emailAddress": {"name": "x", "address": "x@evil.example"}}]})
    status = 200 if kind == "empty" else None
    tenant.faults.add("/messageRules", kind=kind, times=None, upn=VICTIM, **({"status": status} if status else {}))
    tenant.faults.add("Get-InboxRule", kind=kind, times=None, upn=VICTIM, **({"status": status} if status else {}))
    env = _env(tmp_path, tenant, scan={"max_retries": 1})
    result = await scan(env)
    assert result.exit_code == 3
    assert "inbox_rules" in gaps_of(result, VICTIM)
    # An unreadable rule list is NotCollected (a detector cannot read it as "no rules"), not an empty tuple.
    assert isinstance(snapshot(env, result, VICTIM).inbox_rules, NotCollected)
    assert_nothing_lost(env, result)


async def test_broken_json_on_a_tenant_wide_source(tmp_path: Path, tenant: Any) -> None:
    tenant.faults.add("Get-Mailbox", kind="truncated", times=None)
    tenant.faults.add("/roleManagement/directory/roleAssignments", kind="malformed", times=None)
    env = _env(tmp_path, tenant, scan={"max_retries": 1})
    result = await scan(env)
    assert result.exit_code == 3
    tenant_gaps = gaps_of(result, None)
    assert "roles" in tenant_gaps and "forwarding" in tenant_gaps, tenant_gaps
    assert result.accounts_scanned == tenant.user_count
    assert snapshot(env, result, OTHER).status("roles") == "not_collected"
    assert snapshot(env, result, OTHER).status("forwarding") == "not_collected"


# ---- tokens ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["^/v1.0/users$", "/authentication/methods", "Get-InboxRule", "Get-Mailbox"])
async def test_token_expiring_mid_scan_is_replaced(tmp_path: Path, tenant: Any, where: str) -> None:
    tenant.faults.add(where, kind="expire_tokens", times=1)
    env = _env(tmp_path, tenant, fresh_tokens=True)
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0, result.errors[:3]
    assert result.accounts_scanned == tenant.user_count
    assert tenant.token_generation == 1


async def test_token_that_cannot_be_replaced_leaves_a_listed_gap(tmp_path: Path, tenant: Any) -> None:
    # access_token auth: a static token that expires mid-scan cannot be renewed. Every account read before is kept;
    # every account after is listed with the 401 (exit 3), none is dropped and the scan does not hang.
    tenant.faults.add("Get-InboxRule", kind="expire_tokens", times=1, upn=VICTIM)
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.exit_code == 3
    assert any("401" in e["message"] for e in result.errors)
    assert_nothing_lost(env, result)


# ---- paging ----------------------------------------------------------------------------------------------------------
async def test_hidden_rule_paging_loop_is_a_gap_not_a_short_list(tmp_path: Path, tenant: Any) -> None:
    tenant.add_many_rules(VICTIM, 1500)  # Get-InboxRule answers in pages of 1000
    tenant.faults.add("Get-InboxRule", kind="loop_nextlink", times=None, upn=VICTIM)
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.exit_code == 3
    assert "loop" in gaps_of(result, VICTIM)["inbox_rules"]
    # Graph's list is complete and kept; the gap says the hidden-rule view is missing (not "page 1 of it").
    assert len(snapshot(env, result, VICTIM).require("inbox_rules")) == _user_rules(tenant, VICTIM) - sum(
        1 for r in tenant.rules(tenant.user(VICTIM)) if r.hidden and not r.system)


async def test_user_paging_loop_is_a_gap_and_the_read_accounts_are_kept(tmp_path: Path) -> None:
    tenant = generate_tenant(users=120, seed=3, scenarios=False)
    tenant.faults.add("^/v1.0/users$", kind="loop_nextlink", times=None)
    app = create_app(tenant, SimOptions())
    env = env_for(tmp_path, tenant, app, asgi=SmallPages(app, 50))
    result = await scan(env, out=tmp_path / "out")
    assert result.exit_code == 3
    assert "loop" in gaps_of(result, None)["users"]
    assert result.accounts_scanned == 50  # page 1 was read and kept; the rest is named as a gap, not dropped
    assert read_findings_json(tmp_path / "out")["scan"]["accounts_scanned"] == 50
    assert_nothing_lost(env, result)


# ---- volume and hostile names ----------------------------------------------------------------------------------------
async def test_mailbox_with_thousands_of_rules_is_read_in_full(tmp_path: Path, tenant: Any) -> None:
    tenant.add_many_rules(VICTIM, 3000)
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0
    rules = snapshot(env, result, VICTIM).require("inbox_rules")
    assert len(rules) == _user_rules(tenant, VICTIM) >= 3000
    assert len({r.display_name for r in rules}) == len(rules)


HOSTILE = ("\u202eexe.ecioval" + "\u200b" * 50 + " <script>alert(1)</script> =HYPERLINK(\"http://evil\") "
           + "Ω≈ç√∫˜µ≤≥÷ 𝕿𝖍𝖊 😈 \x07\x1b[31m" + "A" * 20_000)


async def test_huge_and_unicode_names_are_stored_intact(tmp_path: Path, tenant: Any) -> None:
    tenant.add_rule(VICTIM, displayName=HOSTILE, conditions={"subjectContains": [HOSTILE]},
                    actions={"forwardTo": [{"emailAddress": {"name": HOSTILE, "address": "x@evil.example"}}]})
    tenant.add_rule(VICTIM, displayName=HOSTILE[:300], conditions={}, hidden=True,
                    actions={"redirectTo": [{"emailAddress": {"name": "y", "address": "y@evil.example"}}]})
    tenant.user(OTHER).displayName = HOSTILE
    tenant.mark_dirty(tenant.user(OTHER))
    env = _env(tmp_path, tenant)
    out = tmp_path / "out"
    result = await scan(env, out)
    assert result.errors == [] and result.exit_code == 0
    names = {r.display_name for r in snapshot(env, result, VICTIM).require("inbox_rules")}
    assert HOSTILE in names and HOSTILE[:300] in names
    assert snapshot(env, result, OTHER).user.display_name == HOSTILE
    assert any(f["account"] == VICTIM for f in read_findings_json(out)["findings"])


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
async def test_a_garbled_page_of_a_read_is_fetched_again(tmp_path: Path, tenant: Any, kind: str) -> None:
    # One bad page must not end the user list or a tenant-wide source (the 10k fault benchmark lost half a tenant
    # to one truncated /users page before reads were retried).
    tenant.faults.add("^/v1.0/users$", kind=kind, times=1)
    tenant.faults.add("userRegistrationDetails", kind=kind, times=1)
    tenant.faults.add("Get-Mailbox", kind=kind, times=1)
    tenant.faults.add("Get-InboxRule", kind=kind, times=1, upn=VICTIM)
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0, result.errors[:3]
    assert result.accounts_scanned == tenant.user_count


async def test_a_long_throttling_window_is_waited_out_not_reported(tmp_path: Path, tenant: Any) -> None:
    # The reports API allows 5 requests / 10 s: it may answer 429 "Retry-After: 1" ten times in a row. That is
    # throttling, not failure: more 429s than max_retries are waited out (found by benchmarks/fault_bench.py at 10k).
    tenant.faults.add("userRegistrationDetails", kind="throttle", times=9, retry_after="0.01")
    env = _env(tmp_path, tenant, scan={"max_retries": 2})
    result = await scan(env)
    assert result.errors == [] and result.exit_code == 0
    assert result.stats["throttled"] >= 9


# ---- truncation announced by a warning ---------------------------------------------------------------------------
class IgnoresResultSize:
    """An Exchange endpoint that ignores ``ResultSize: Unlimited`` on one cmdlet (graph-api.md §3.2 reports services
    that apply it client-side): it answers the first ``limit`` rows, no next page, and Exchange's own warning."""

    def __init__(self, app: Any, cmdlet: str, limit: int) -> None:
        self.app, self.cmdlet, self.limit = app, cmdlet, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import json

        from tests.reliability.helpers import read_request, replay_body

        if scope["type"] != "http" or "InvokeCommand" not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return
        raw, again = await read_request(receive)
        try:
            body = json.loads(raw)
            cmd = body["CmdletInput"]
        except (ValueError, KeyError, TypeError):
            await self.app(scope, again, send)
            return
        if cmd.get("CmdletName") != self.cmdlet:
            await self.app(scope, again, send)
            return
        cmd.setdefault("Parameters", {})["ResultSize"] = str(self.limit)
        data = json.dumps(body).encode()
        replay = replay_body(data)

        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await self.app({**scope, "headers": headers}, replay, send)


async def test_a_result_the_service_says_it_cut_short_is_a_gap_not_a_shorter_tenant(tmp_path: Path,
                                                                                       tenant: Any) -> None:
    app = create_app(tenant, SimOptions())
    env = env_for(tmp_path, tenant, app, asgi=IgnoresResultSize(app, "Get-Mailbox", 10))
    result = await scan(env)
    assert result.exit_code == 3
    gaps = [e for e in result.errors if e["collector"] == "forwarding"]
    assert gaps and all("only part of the result" in e["message"] for e in gaps), result.errors[:3]
    # No account is reported as "no forwarding" on the strength of a cut list: the victim's forward is not read as
    # absent, it is a gap.
    snap = snapshot(env, result, VICTIM)
    assert snap.get("forwarding") is None
    assert_nothing_lost(env, result)


def test_other_exchange_warnings_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    from scanner.graph.client import ApiError, _check_warnings

    warn = {"@adminapi.warnings": ["The command completed successfully but no settings of 'x' have been modified."]}
    warned: set[tuple[str, str]] = set()  # one connection (one scan)
    with caplog.at_level("WARNING", logger="m365sweep.exchange"):
        _check_warnings(warn, "Set-Mailbox", has_next=False, warned=warned)
        _check_warnings(warn, "Get-Mailbox", has_next=False, warned=warned)
        for _ in range(50):  # the same warning on every mailbox: logged once per cmdlet, not once per mailbox
            _check_warnings(warn, "Get-Mailbox", has_next=False, warned=warned)
        _check_warnings(warn, "Get-Mailbox", has_next=False, warned=set())  # the next scan says it again
    assert sum("no settings" in r.getMessage() for r in caplog.records) == 3
    cut = {"@adminapi.warnings": ["By default, only the first 1000 items are returned."]}
    _check_warnings(cut, "Get-InboxRule", has_next=True)  # a next page follows: the warning is about this page only
    with pytest.raises(ApiError) as exc:
        _check_warnings(cut, "Get-InboxRule", has_next=False)
    assert exc.value.code == "truncated"


async def test_unreadable_pim_eligibility_keeps_the_active_roles_and_says_so(tmp_path: Path, tenant: Any) -> None:
    # A service that does not answer the PIM list (not implemented, or refused): the active role assignments are still
    # read and used; the gap says only eligibility is missing — never every account's roles lost.
    admins = [u.userPrincipalName for u in tenant.iter_users() if tenant.roles_of(tenant.user(u.userPrincipalName))]
    assert admins
    tenant.faults.add("/roleEligibilitySchedules", kind="status", status=404, times=None, code="ResourceNotFound",
                      message="Resource not found for the segment 'roleEligibilitySchedules'.")
    env = _env(tmp_path, tenant)
    result = await scan(env)
    assert result.exit_code == 3
    tenant_gaps = [e for e in result.errors if e["collector"] == "roles"]
    assert tenant_gaps and all("PIM-eligible" in e["message"] for e in tenant_gaps), result.errors[:3]
    roles = snapshot(env, result, admins[0]).get("roles")
    assert roles and any(r.kind == "active" for r in roles)
    assert_nothing_lost(env, result)
