"""End-to-end collection through the real msgraph-sdk pipeline against the in-process simulator."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.snapshot import AccountSnapshot, NotCollected
from scanner.store import Store
from scanner.sweep import run_scan


async def _scan(env: Any, **kw: Any) -> Any:
    return await run_scan(env.cfg, **env.kwargs, **kw)


def _account(env: Any, result: Any, upn: str) -> AccountSnapshot:
    with Store(env.cfg.database_path) as store:
        acc = store.get_account(result.scan_id, upn)
    assert acc is not None, upn
    return acc


@pytest.fixture
async def scanned(sim_env: Any) -> tuple[Any, Any]:
    return sim_env, await _scan(sim_env)


async def test_every_account_scanned_without_gaps(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    assert result.accounts_scanned == env.tenant.user_count == 60
    assert result.errors == []
    assert result.exit_code == 0
    assert result.stats["by_service"]["graph"] > 0 and result.stats["by_service"]["exchange"] > 0


async def test_hidden_rule_only_exchange_shows_is_collected_as_hidden(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    acc = _account(env, result, "isaiah.langer@contoso.com")
    rules = acc.require("inbox_rules")
    hidden = [r for r in rules if r.hidden]
    planted = [r for r in env.tenant.hidden_rules("isaiah.langer@contoso.com") if not r.system]
    assert len(hidden) == len(planted) == 1
    rule = hidden[0]
    assert rule.source == "exchange" and rule.exchange_identity
    assert rule.actions["redirectTo"][0]["emailAddress"]["address"] == "accounts@c0ntoso.com"
    # The Exchange system rule (Junk E-mail Rule) never shows up as an attacker rule.
    assert all("junk e-mail rule" != r.display_name.lower() for r in rules)


async def test_graph_rules_are_raw_and_matched_with_their_exchange_twin(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    acc = _account(env, result, "alex.wilber@contoso.com")
    (rule,) = acc.require("inbox_rules")
    assert rule.source == "graph" and not rule.hidden and rule.exchange_identity
    assert rule.conditions["bodyOrSubjectContains"][:3] == ["invoice", "payment", "wire"]
    folders = {f.id: f for f in acc.require("folders")}
    assert folders[rule.actions["moveToFolder"]].display_name == "RSS Feeds"
    assert {f.well_known_name for f in folders.values()} >= {"inbox", "deleteditems", "junkemail", "archive"}


async def test_hidden_folder_target_resolved(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    acc = _account(env, result, "megan.bowen@contoso.com")
    folders = {f.id: f for f in acc.require("folders")}
    moved = [r.actions["moveToFolder"] for r in acc.require("inbox_rules") if "moveToFolder" in r.actions]
    assert moved and all(m in folders for m in moved)
    assert any(folders[m].is_hidden for m in moved)


async def test_forwarding_smtp_prefix_stripped_and_forwarding_address_resolved(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    fwd = _account(env, result, "ap@contoso.com").require("forwarding")
    assert fwd.forwarding_smtp_address == "contoso-ap@partner-accounting.com"
    leaver = _account(env, result, "ben.walters@contoso.com").require("forwarding")
    assert leaver.forwarding_address_resolved == "lynne.robbins@contoso.com"
    assert leaver.deliver_to_mailbox_and_forward is True


async def test_delegates_sending_protocols(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    lidia = _account(env, result, "lidia.holloway@contoso.com")
    rights = {(d.access_right, d.trustee_address) for d in lidia.require("delegates")}
    assert {r for r, _ in rights} >= {"FullAccess", "SendAs"}
    assert all(d.trustee != "NT AUTHORITY\\SELF" for d in lidia.require("delegates"))
    lee = _account(env, result, "lee.gu@contoso.com").require("sending")
    assert lee.blocked_from_sending is True and lee.sent_last_24h == 900
    protocols = _account(env, result, "lee.gu@contoso.com").require("protocols")
    assert protocols.imap_enabled is not None and protocols.mapi_enabled is not None


async def test_roles_grants_methods_registration(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    patti = _account(env, result, "patti.fernandez@contoso.com")
    roles = patti.require("roles")
    assert any(r.role_name == "Global Administrator" and r.privileged and r.kind == "active" for r in roles)
    adam = _account(env, result, "adam.baxter@contoso.com").require("roles")
    assert any(r.kind == "eligible" and r.role_name == "Exchange Administrator" for r in adam)
    methods = patti.require("auth_methods")
    assert any(m.method_type == "microsoftAuthenticatorAuthenticationMethod" and m.created_date_time
               for m in methods)
    assert patti.require("registration").methods_registered
    grants = _account(env, result, "christie.cline@contoso.com").require("oauth_grants")
    assert any(g.app_display_name == "PerfectData Software" for g in grants)
    assert all(g.consent_type == "Principal" for g in grants)
    with Store(env.cfg.database_path) as store:
        tenant = store.scan(result.scan_id)["tenant"]
    assert "AllPrincipals" in tenant and "contoso.com" in tenant


async def test_user_without_mailbox_is_not_applicable_not_an_error(scanned: tuple[Any, Any]) -> None:
    env, result = scanned
    upn = "breakglass@contoso.onmicrosoft.com"
    assert env.tenant.user(upn).mailbox is None
    acc = _account(env, result, upn)
    for c in ("forwarding", "inbox_rules", "folders", "delegates", "sending", "protocols"):
        assert acc.status(c) == "not_applicable", c
    assert acc.status("auth_methods") == "collected"
    assert not [e for e in result.errors if e["upn"] == upn]


async def test_one_collector_failing_for_one_mailbox_is_a_gap_and_exit_3(sim_env: Any) -> None:
    upn = "megan.bowen@contoso.com"
    sim_env.tenant.faults.add("/messageRules", kind="status", status=500, times=None, upn=upn, retry_after="0")
    result = await _scan(sim_env)
    assert result.exit_code == 3
    assert result.accounts_scanned == 60
    assert [(e["upn"], e["collector"]) for e in result.errors if e["upn"]] == [(upn, "inbox_rules")]
    acc = _account(sim_env, result, upn)
    assert isinstance(acc.inbox_rules, NotCollected)
    assert acc.status("forwarding") == "collected"
    other = _account(sim_env, result, "alex.wilber@contoso.com")
    assert other.status("inbox_rules") == "collected"


async def test_hidden_rule_source_failing_is_a_gap_but_graph_rules_stay(sim_env: Any) -> None:
    upn = "alex.wilber@contoso.com"
    sim_env.tenant.faults.add("Get-InboxRule", kind="status", status=500, times=None, upn=upn, retry_after="0")
    result = await _scan(sim_env)
    assert result.exit_code == 3
    errs = [e for e in result.errors if e["upn"] == upn]
    assert [e["collector"] for e in errs] == ["inbox_rules"] and "hidden rules" in errs[0]["message"]
    assert len(_account(sim_env, result, upn).require("inbox_rules")) == 1


async def test_throttled_requests_are_retried(sim_env: Any) -> None:
    upn = "alex.wilber@contoso.com"
    sim_env.tenant.faults.add("/messageRules", kind="throttle", times=3, upn=upn, retry_after="0")
    sim_env.tenant.faults.add("^/v1.0/users$", kind="throttle", times=1, retry_after="0")
    sim_env.tenant.faults.add("Get-Mailbox", kind="throttle", times=1, retry_after="0")
    result = await _scan(sim_env)
    assert result.errors == [] and result.exit_code == 0
    assert result.stats["throttled"] >= 5
    assert len(_account(sim_env, result, upn).require("inbox_rules")) == 1


async def test_missing_mailbox_permission_is_a_gap_naming_it(make_sim_env: Any) -> None:
    from scanner.simulator.permissions import ALL_PERMISSIONS

    perms = set(ALL_PERMISSIONS) - {"MailboxSettings.Read", "MailboxSettings.ReadWrite"}
    env = make_sim_env(users=30, app_options={"permissions": perms})
    result = await _scan(env)
    assert result.exit_code == 3
    rule_errs = [e for e in result.errors if e["collector"] == "inbox_rules"]
    assert rule_errs and all(e["permission"] == "MailboxSettings.Read" for e in rule_errs)
    assert result.accounts_scanned == env.tenant.user_count


async def test_users_forbidden_aborts_naming_the_permission(make_sim_env: Any) -> None:
    from scanner.simulator.permissions import ALL_PERMISSIONS, DIR_READ
    from scanner.sweep import ScanAbort

    env = make_sim_env(users=20, app_options={"permissions": set(ALL_PERMISSIONS) - set(DIR_READ)})
    with pytest.raises(ScanAbort, match="User.Read.All"):
        await _scan(env)


async def test_resume_continues_the_unfinished_scan(sim_env: Any) -> None:
    from scanner.snapshot import User

    with Store(sim_env.cfg.database_path) as store:
        scan_id = store.begin_scan(sim_env.tenant.tenant_id)
        u = sim_env.tenant.user("alex.wilber@contoso.com")
        marker = AccountSnapshot(user=User(id=u.id, user_principal_name=u.userPrincipalName, display_name="checkpoint"))
        store.put_accounts(scan_id, [marker])
    result = await _scan(sim_env, resume=True)
    assert result.resumed and result.scan_id == scan_id
    assert result.accounts_scanned == 60
    # The stored account is the checkpoint: it was not read again.
    assert _account(sim_env, result, "alex.wilber@contoso.com").user.display_name == "checkpoint"


async def test_user_paging_and_exchange_paging(sim_env: Any) -> None:
    from scanner.collectors.exchange import read_mailboxes
    from scanner.collectors.users import iter_user_pages
    from scanner.graph.factory import connect

    async with connect(sim_env.cfg, **sim_env.kwargs) as conn:
        pages = [p async for p in iter_user_pages(conn.graph, page_size=7)]
        conn.exchange.page_size = 9
        directory = await read_mailboxes(conn.exchange)
    assert len(pages) == 9 and sum(len(p) for p in pages) == 60
    assert len({u["id"] for p in pages for u in p}) == 60
    assert len(directory.rows) == sum(1 for u in sim_env.tenant.iter_users() if u.mailbox is not None)


async def test_without_exchange_permission_graph_data_stays_and_exchange_sources_are_gaps(make_sim_env: Any) -> None:
    from scanner.simulator.permissions import ALL_PERMISSIONS

    env = make_sim_env(users=45, app_options={"permissions": set(ALL_PERMISSIONS) - {"Exchange.ManageAsApp"}})
    result = await _scan(env)
    assert result.exit_code == 3 and result.accounts_scanned == env.tenant.user_count
    tenant_gaps = {e["collector"]: e["permission"] for e in result.errors if e["upn"] is None}
    assert tenant_gaps["forwarding"] == "Exchange.ManageAsApp"
    acc = _account(env, result, "alex.wilber@contoso.com")
    assert acc.status("inbox_rules") == "collected" and acc.status("auth_methods") == "collected"
    assert acc.status("forwarding") == "not_collected" and acc.forwarding.permission == "Exchange.ManageAsApp"
    # Graph's 404 still tells a user without a mailbox apart.
    assert _account(env, result, "breakglass@contoso.onmicrosoft.com").status("inbox_rules") == "not_applicable"
