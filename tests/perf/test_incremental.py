"""Nightly incremental scans (``[scan] incremental = true``) find exactly what a full scan finds.

Two databases watch one simulated tenant: one scanned full every night, one incremental. Between the nights changes
are planted through the simulator (a new method type, a second method of a type already registered — the
registration report's ``methodsRegistered`` does not change, only its ``lastUpdatedDateTime`` — a hiding rule,
mailbox forwarding). The second night's findings must be identical, and the incremental scan must really have skipped
per-user reads (the simulator's request counters and the client's skip counters say so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scanner.store import Store
from scanner.sweep import run_scan
from tests.conftest import _create_app, make_sim_config


def _plain(tenant: Any, n: int, *, want: str | None = None) -> list[str]:
    out = []
    for u in tenant.iter_users():
        upn = u.userPrincipalName
        if not u.has_mailbox or u.accountEnabled is False or u.userType == "Guest" or \
                tenant.labels.get(upn.lower(), {}).get("label", "plain") != "plain":
            continue
        if want and not any(m["@odata.type"].endswith(want) for m in tenant.methods(u)):
            continue
        out.append(upn)
        if len(out) == n:
            return out
    raise AssertionError("not enough plain users in the simulated tenant")


def _finding_keys(db: Path, scan_id: str) -> set[tuple[str, str, str, str]]:
    with Store(db) as store:
        return {(f["account"].lower(), f["detector"], f["severity"], f["id"]) for f in store.findings(scan_id)}


def _verdicts(db: Path, scan_id: str) -> dict[str, str]:
    with Store(db) as store:
        return {a["upn"].lower(): a["verdict"] for a in store.accounts(scan_id)}


async def test_incremental_finds_what_the_full_sweep_finds(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=60, seed=11, scenarios=True)
    # Freeze the simulator's clock at the generation second: the nights' changes then land in the second the tenant
    # was generated, as they do on a fast machine. The registration report must still show them (a later
    # lastUpdatedDateTime), or the incremental scan would wrongly reuse last night's methods.
    tenant.advance(0)
    app = _create_app(tenant)
    (tmp_path / "full").mkdir()
    (tmp_path / "inc").mkdir()
    full = make_sim_config(tmp_path / "full", tenant, app)
    inc = make_sim_config(tmp_path / "inc", tenant, app, scan={"incremental": True})

    f1 = await run_scan(full.cfg, credential=full.credential, transport=full.transport)
    i1 = await run_scan(inc.cfg, credential=inc.credential, transport=inc.transport)
    assert i1.stats["skipped"] == {}, "no previous scan: the first incremental scan reads everything"
    assert _finding_keys(full.cfg.database_path, f1.scan_id) == _finding_keys(inc.cfg.database_path, i1.scan_id)

    # ---- changes planted between the two nights
    alice, carol, dave = _plain(tenant, 3)
    (bob,) = [u for u in _plain(tenant, 10, want="microsoftAuthenticatorAuthenticationMethod")
              if u not in (alice, carol, dave)][:1]
    now = tenant.now()
    tenant.add_method(tenant.user(alice), "microsoftAuthenticatorMethods",
                      {"displayName": "Galaxy S24 (attacker)", "deviceTag": "SoftwareTokenActivated"}, created=now)
    before = tenant.user(bob)
    reg_types_before = {m["@odata.type"] for m in tenant.methods(before)}
    tenant.add_method(before, "microsoftAuthenticatorMethods",
                      {"displayName": "iPhone 15 (attacker)", "deviceTag": "SoftwareTokenActivated"}, created=now)
    assert {m["@odata.type"] for m in tenant.methods(tenant.user(bob))} == reg_types_before, \
        "bob's second authenticator is a type already registered: methodsRegistered does not change"
    tenant.add_rule(carol, displayName=".", conditions={"subjectContains": ["invoice", "payment"]},
                    actions={"moveToFolder": "RSS Feeds", "markAsRead": True})
    tenant.set_forwarding(dave, smtp="smtp:drop.box@gmail.com", deliver_and_forward=False)

    methods_before = app.counters["requests"].get("directory", 0)
    i2 = await run_scan(inc.cfg, credential=inc.credential, transport=inc.transport)
    inc_directory = app.counters["requests"].get("directory", 0) - methods_before
    f2 = await run_scan(full.cfg, credential=full.credential, transport=full.transport)
    full_directory = app.counters["requests"].get("directory", 0) - methods_before - inc_directory

    full_found = _finding_keys(full.cfg.database_path, f2.scan_id)
    inc_found = _finding_keys(inc.cfg.database_path, i2.scan_id)
    assert inc_found == full_found
    assert _verdicts(full.cfg.database_path, f2.scan_id) == _verdicts(inc.cfg.database_path, i2.scan_id)
    # the planted changes are among them (so the comparison is not vacuous)
    accounts = {(a, d) for a, d, _s, _i in inc_found}
    assert (alice.lower(), "auth.new_method") in accounts
    assert (bob.lower(), "auth.new_method") in accounts
    assert (dave.lower(), "mail.mailbox_external_forward") in accounts
    assert any(a == carol.lower() and d.startswith("mail.inbox_rule") for a, d in accounts)

    # ... and the incremental scan really skipped work: every unchanged user's methods, but not alice's or bob's
    skipped = i2.stats["skipped"]
    assert skipped["auth_methods"] == i2.accounts_scanned - 2
    assert inc_directory < full_directory
    with Store(inc.cfg.database_path) as store:
        bob_methods = store.get_account(i2.scan_id, bob).require("auth_methods")
    assert any(m.display_name == "iPhone 15 (attacker)" for m in bob_methods)


async def test_incremental_does_not_hold_a_chunk_for_a_late_registration_report(tmp_path: Path) -> None:
    """The report may list users in another order than the directory, or lag: a chunk then sends its mailbox reads
    without waiting for its users' registration rows, and decides last night's methods at assembly — same findings,
    same reads saved, a changed user's methods read."""
    from scanner.simulator import generate_tenant
    from tests.perf.test_tenant_overlap import HoldReport

    tenant = generate_tenant(users=60, seed=11, scenarios=True)
    tenant.advance(0)  # frozen clock, as above
    app = _create_app(tenant)
    (tmp_path / "full").mkdir()
    (tmp_path / "inc").mkdir()
    full = make_sim_config(tmp_path / "full", tenant, app)
    inc = make_sim_config(tmp_path / "inc", tenant, app, scan={"incremental": True})
    await run_scan(full.cfg, credential=full.credential, transport=full.transport)
    await run_scan(inc.cfg, credential=inc.credential, transport=inc.transport)

    (alice,) = _plain(tenant, 1)
    tenant.add_method(tenant.user(alice), "microsoftAuthenticatorMethods",
                      {"displayName": "Pixel 9 (attacker)", "deviceTag": "SoftwareTokenActivated"}, created=tenant.now())
    hold = HoldReport(inc.transport)  # the report is answered only once a mailbox's rules were asked for
    i2 = await run_scan(inc.cfg, credential=inc.credential, transport=hold)
    f2 = await run_scan(full.cfg, credential=full.credential, transport=full.transport)

    assert hold.released_by == "rules", "a chunk waited for the registration report before its mailbox reads"
    assert _finding_keys(inc.cfg.database_path, i2.scan_id) == _finding_keys(full.cfg.database_path, f2.scan_id)
    assert (alice.lower(), "auth.new_method") in {(a, d) for a, d, _s, _i in
                                                  _finding_keys(inc.cfg.database_path, i2.scan_id)}
    assert i2.stats["skipped"]["auth_methods"] == i2.accounts_scanned - 1
    assert not i2.errors
