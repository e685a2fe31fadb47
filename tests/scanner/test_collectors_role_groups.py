"""Roles held through a role-assignable group, end to end against the simulator (real msgraph-sdk pipeline, real
scanner): the collector expands the group's Global Administrator to its members (``via_group``), the detectors see it
(a membership added between two scans is a new privileged role; a back-door on such an account is an admin back-door),
and an app that may not read group members gets a coverage gap naming the permission, not a crash and not "no
role"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.simulator import SimOptions, create_app, generate_tenant
from scanner.simulator.permissions import ALL_PERMISSIONS
from scanner.store import Store
from scanner.sweep import run_scan
from tests.conftest import make_sim_config

GA = "62e90394-69f5-4237-9190-012177145e10"
VICTIM = "leo.castillo@contoso.com"  # planted: role_group_member_added
STANDING = "cloud.ops@contoso.com"  # benign look-alike: role_group_standing_admin
GROUP = "Tier 0 Administrators"


def _env(tmp_path: Path, tenant: Any, **options: Any) -> Any:
    return make_sim_config(tmp_path, tenant, create_app(tenant, SimOptions(**options)))


def _findings(store: Store, scan_id: str, upn: str) -> dict[str, dict[str, Any]]:
    return {f["detector"]: f for f in store.findings(scan_id, upn)}


async def test_group_role_arrives_via_group_and_the_backdoor_detector_sees_it(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7)
    env = _env(tmp_path, tenant)
    result = await run_scan(env.cfg, **env.kwargs)
    with Store(env.cfg.database_path) as store:
        victim = store.get_account(result.scan_id, VICTIM)
        standing = store.get_account(result.scan_id, STANDING)
        assert victim is not None and standing is not None
        for snap in (victim, standing):
            (ga,) = [r for r in snap.require("roles") if r.role_template_id == GA]
            assert (ga.via_group, ga.kind, ga.privileged, ga.directory_scope_id) == (True, "active", True, "/")
        found = _findings(store, result.scan_id, VICTIM)
        # First scan: a standing role is no finding, but a forwarding rule on an admin is an admin back-door.
        assert "roles.privileged_role_new" not in found
        backdoor = found["roles.privileged_account_backdoor"]
        assert backdoor["evidence"]["roles"] == ["Global Administrator"]
        assert next(a for a in store.accounts(result.scan_id) if a["upn"] == VICTIM)["verdict"] == "compromised"
        assert next(a for a in store.accounts(result.scan_id) if a["upn"] == STANDING)["verdict"] == "clean"
        assert _findings(store, result.scan_id, STANDING) == {}
    assert not [e for e in result.errors if "roles" in e["collector"]]


async def test_membership_added_between_scans_is_a_new_privileged_role(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7)
    env = _env(tmp_path, tenant)
    upn = "alex.wilber@contoso.com"  # planted compromise without any role
    await run_scan(env.cfg, **env.kwargs)
    tenant.add_group_member(GROUP, upn)
    second = await run_scan(env.cfg, **env.kwargs)
    with Store(env.cfg.database_path) as store:
        f = _findings(store, second.scan_id, upn)["roles.privileged_role_new"]
        assert f["severity"] == "high" and f["evidence"]["via_group"] is True
        assert f["evidence"]["role"] == "Global Administrator"
        # Members of the group before the first scan have nothing new.
        assert "roles.privileged_role_new" not in _findings(store, second.scan_id, STANDING)


async def test_members_unreadable_is_a_coverage_gap_naming_the_permission(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7)
    group_read = {"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All",
                  "Group.ReadWrite.All", "Directory.ReadWrite.All"}
    env = _env(tmp_path, tenant, permissions=ALL_PERMISSIONS - group_read)
    result = await run_scan(env.cfg, **env.kwargs)
    with Store(env.cfg.database_path) as store:
        victim = store.get_account(result.scan_id, VICTIM)
        assert victim is not None and not [r for r in victim.require("roles") if r.role_template_id == GA]
        notes = store.get_tenant_data(result.scan_id, "scan.tenant_sources")["notes"]
    assert any("role-holding group" in n and "not marked" in n and "Authorization_RequestDenied" in n
               for n in notes), notes
    # Not only a log line: the roles that could not be attributed are a tenant-wide coverage gap (exit 3), naming the
    # permission — never a clean "no role" for the group's members.
    (gap,) = [e for e in result.errors if e["collector"] == "roles"]
    assert gap["upn"] is None and "GroupMember.Read.All" in gap["message"] and "not marked" in gap["message"]
    assert result.exit_code == 3
