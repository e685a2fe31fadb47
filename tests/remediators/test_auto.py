"""Auto mode: only compromised accounts, never protected ones, never more than the cap, dry run unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from remhelpers import Scanned, plant_compromise, user_mailboxes

from scanner.simulator import create_app, generate_tenant


def _auto_env(tmp_path: Path, *, allow_auto: bool = True, cap: int = 5) -> tuple[Scanned, list[str], str]:
    tenant = generate_tenant(users=60, seed=5, scenarios=False)
    victims = user_mailboxes(tenant, 11)
    for i, upn in enumerate(victims[:10]):
        plant_compromise(tenant, upn, i, hidden=(i % 2 == 0), blocked=False)
    protected = victims[3]
    s = Scanned(tmp_path, tenant, create_app(tenant), remediation={
        "allow_auto": allow_auto, "max_accounts_per_run": cap,
        # Mixed case on purpose: the UPN comparison is case-insensitive.
        "protected_accounts": [protected.upper()],
        "steps": ["revoke_sessions", "remove_forwarding", "disable_rules"]})
    for upn in victims[:10]:
        assert s.verdict(upn) == "compromised", upn
    assert s.verdict(victims[10]) == "clean"
    return s, victims[:10], protected


def _touched(s: Scanned, upns: list[str]) -> set[str]:
    return {u for u in upns if s.tenant.mutations_for(u)}


def _planted_mutations(s: Scanned) -> int:
    return len(s.tenant.mutations)


def test_auto_acts_on_exactly_cap_accounts_never_protected(tmp_path: Path) -> None:
    s, victims, protected = _auto_env(tmp_path)
    baseline = {u: len(s.tenant.mutations_for(u)) for u in victims}
    res = s.remediate("--auto", "--yes")
    assert res.exit_code == 0, res.output
    acted = {u for u in victims if len(s.tenant.mutations_for(u)) > baseline[u]}
    assert len(acted) == 5
    assert protected not in acted
    for u in acted:
        mb = s.tenant.user(u).mailbox
        assert mb.forwarding_smtp is None
        assert s.tenant.user(u).sessions_revoked == 1
        assert all(not r.isEnabled for r in s.tenant.rules(s.tenant.user(u)) if r.displayName in (".", ".."))
    untouched = set(victims) - acted
    for u in untouched:
        assert s.tenant.user(u).mailbox.forwarding_smtp  # still there: pending or protected
    rows = s.journal()
    assert {r["upn"] for r in rows if r["status"] == "pending"} == untouched - {protected}
    assert [r["upn"] for r in rows if r["status"] == "protected"] == [protected]
    assert all(r["mode"] == "auto" for r in rows)
    # The next run takes the pending ones (the acted ones are now clean), still never the protected one.
    res = s.remediate("--auto", "--yes")
    assert res.exit_code == 0, res.output
    assert s.tenant.user(protected).mailbox.forwarding_smtp
    assert all(s.tenant.user(u).mailbox.forwarding_smtp is None for u in victims if u != protected)


@pytest.mark.parametrize("args,allow", [(("--auto", "--yes", "--dry-run"), True), (("--auto",), True),
                                        (("--auto", "--yes"), False)])
def test_auto_without_permission_is_a_dry_run(tmp_path: Path, args: tuple[str, ...], allow: bool) -> None:
    s, victims, _ = _auto_env(tmp_path, allow_auto=allow)
    n = _planted_mutations(s)
    res = s.remediate(*args)
    assert res.exit_code == 0, res.output
    assert "DRY RUN" in res.output
    assert _planted_mutations(s) == n
    rows = s.journal()
    assert len({r["upn"] for r in rows if r["status"] == "dry_run"}) == 5
    assert not any(r["status"] in ("started", "applied") for r in rows)


def test_auto_skips_accounts_already_clean(tmp_path: Path) -> None:
    s, victims, protected = _auto_env(tmp_path, cap=3)
    # Same scan, second run: the accounts the first run cleaned read clean live and do not use up the cap.
    first = s.remediate("--auto", "--yes")
    assert first.exit_code == 0
    acted_first = {u for u in victims if s.tenant.user(u).mailbox.forwarding_smtp is None}
    assert len(acted_first) == 3
    second = s.remediate("--auto", "--yes")
    assert second.exit_code == 0
    acted_second = {u for u in victims if s.tenant.user(u).mailbox.forwarding_smtp is None} - acted_first
    assert len(acted_second) == 3  # the clean ones did not use up the cap
    skipped = {r["upn"] for r in s.store.journal() if r["status"] == "skipped" and r["step"] is None
               and "nothing left" in (r["detail"] or "")}
    assert acted_first <= skipped


def test_auto_never_touches_a_protected_account_listed_by_object_id(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=6, scenarios=False)
    victims = user_mailboxes(tenant, 2)
    for i, upn in enumerate(victims):
        plant_compromise(tenant, upn, i, hidden=False, blocked=False)
    protected = victims[0]
    s = Scanned(tmp_path, tenant, create_app(tenant), remediation={
        "allow_auto": True, "max_accounts_per_run": 5,
        # Listed by its Entra object id, not its UPN: still protected.
        "protected_accounts": [tenant.user(protected).id],
        "steps": ["remove_forwarding"]})
    assert s.verdict(protected) == "compromised"
    res = s.remediate("--auto", "--yes")
    assert res.exit_code == 0, res.output
    assert s.tenant.user(protected).mailbox.forwarding_smtp  # untouched
    assert s.tenant.user(victims[1]).mailbox.forwarding_smtp is None
    assert [r["upn"] for r in s.journal() if r["status"] == "protected"] == [protected]
