"""Least privilege: with only the read permissions the permission matrix names (scanner/permissions.py), a scan reads
everything (exit 0, the planted compromises found) and ``check`` names, per remediation step, the permission that is
missing; with one read permission removed, ``check`` names that collector's missing permission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanner.cli import _check
from scanner.permissions import COLLECTORS, STEPS
from scanner.simulator import SimOptions, create_app, generate_tenant
from tests.reliability.helpers import env_for, scan

READ_ONLY = frozenset(n.permission for needs in COLLECTORS.values() for n in needs)


def test_read_only_set_has_no_write_permission() -> None:
    assert READ_ONLY and not [p for p in READ_ONLY if "Write" in p]


async def test_scan_with_read_permissions_only_reads_everything(tmp_path: Path) -> None:
    tenant = generate_tenant(users=60, seed=7, scenarios=True)
    env = env_for(tmp_path, tenant, create_app(tenant, SimOptions(permissions=set(READ_ONLY))))
    result = await scan(env, tmp_path / "out")
    assert result.errors == [] and result.exit_code == 0
    planted = {u for u, lab in tenant.labels.items() if lab["label"] == "compromised"}
    assert planted and len(planted & set(result.compromised)) >= len(planted) * 3 // 4


async def _run_check(tmp_path: Path, perms: set[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    tenant = generate_tenant(users=10, seed=3, scenarios=False)
    app = create_app(tenant, SimOptions(permissions=perms))
    env = env_for(tmp_path, tenant, app)
    try:
        code: int | None = await _check(env.cfg, credential=env.credential, transport=env.transport)
    except Exception as exc:  # noqa: BLE001 - UserError when the required permission is missing
        code = None
        print(f"error: {exc}")
    return code, capsys.readouterr().out


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


async def test_check_names_the_missing_write_permission_per_step(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out = await _run_check(tmp_path, set(READ_ONLY), capsys)
    assert code == 0
    for name in COLLECTORS:
        assert _line(out, name).split(None, 1)[1] == "available", _line(out, name)
    for name, needs in STEPS.items():
        line = _line(out, name)
        graph_needs = [n for n in needs if n.service == "graph"]
        if graph_needs:  # every Graph step needs a write permission the read-only app lacks, named
            assert "MISSING" in line and graph_needs[0].permission in line, line
        else:  # Exchange steps ride on Exchange.ManageAsApp (plus an RBAC role the token cannot show)
            assert line.endswith("available"), line


@pytest.mark.parametrize("collector", ["inbox_rules", "auth_methods", "roles", "folders"])
async def test_check_names_the_missing_read_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       collector: str) -> None:
    need = next(n for n in COLLECTORS[collector] if n.service == "graph")
    code, out = await _run_check(tmp_path, set(READ_ONLY) - set(need.accepted), capsys)
    assert code == 0
    line = _line(out, collector)
    assert "MISSING" in line and need.permission in line, line


async def test_check_without_user_read_is_one_line_naming_it(tmp_path: Path, capsys: Any) -> None:
    users_need = COLLECTORS["users"][0]
    code, out = await _run_check(tmp_path, set(READ_ONLY) - set(users_need.accepted), capsys)
    assert code is None and "User.Read.All" in out.splitlines()[-1]
