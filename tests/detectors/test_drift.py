"""Overnight drift against the simulator: what is new between two scans, and a rule that came and went.

Three real scans (collect → store → evaluate) of one simulated tenant with changes planted between them through the
simulator's Tenant mutation helpers:
  scan 1 baseline → plant a forward + a hiding rule + a phone method on one user, and a hiding rule on another →
  scan 2 (exactly those artefacts are new) → remove the second user's rule → scan 3 (reported as transient).
"""

from __future__ import annotations

from typing import Any

from scanner.store import Store
from scanner.sweep import run_scan


def _plain_users(tenant: Any, n: int) -> list[str]:
    out = []
    for u in tenant.iter_users():
        upn = u.userPrincipalName
        if u.has_mailbox and u.accountEnabled is not False and u.userType != "Guest" and \
                tenant.labels.get(upn.lower(), {}).get("label", "plain") == "plain":
            out.append(upn)
        if len(out) == n:
            return out
    raise AssertionError("not enough plain users in the simulated tenant")


def _findings(env: Any, scan_id: str) -> list[dict[str, Any]]:
    with Store(env.cfg.database_path) as store:
        return store.findings(scan_id)


async def test_new_since_last_scan_and_transient_rule(make_sim_env: Any) -> None:
    env = make_sim_env(users=40, seed=11, scenarios=True)
    t = env.tenant
    alice, bob = _plain_users(t, 2)

    r1 = await run_scan(env.cfg, **env.kwargs)
    first = _findings(env, r1.scan_id)
    assert first, "the planted scenarios give standing findings"
    assert not any(f["new_since_last_scan"] for f in first), "first scan: everything is standing"

    t.set_forwarding(alice, smtp="smtp:drop.box@gmail.com", deliver_and_forward=False)
    t.add_rule(alice, displayName=".", conditions={"subjectContains": ["invoice"]},
               actions={"moveToFolder": "RSS Feeds", "markAsRead": True})
    t.add_method(t.user(alice), "phoneMethods", {"phoneNumber": "+44 7700 900461", "phoneType": "mobile"},
                 created=None)
    t.add_rule(bob, displayName="..", conditions={"bodyOrSubjectContains": ["hacked", "phish"]},
               actions={"delete": True})

    r2 = await run_scan(env.cfg, **env.kwargs)
    second = _findings(env, r2.scan_id)
    new = [f for f in second if f["new_since_last_scan"]]
    assert {f["account"].lower() for f in new} == {alice.lower(), bob.lower()}
    new_detectors = {(f["account"].lower(), f["detector"]) for f in new}
    assert (alice.lower(), "mail.mailbox_external_forward") in new_detectors
    assert (alice.lower(), "mail.inbox_rule_hidden_folder_move") in new_detectors
    assert (alice.lower(), "auth.new_method") in new_detectors
    assert (bob.lower(), "mail.inbox_rule_security_keywords") in new_detectors
    # Everything that was already there in scan 1 is still standing, not new.
    old_ids = {f["id"] for f in first}
    assert all(not f["new_since_last_scan"] for f in second if f["id"] in old_ids)
    with Store(env.cfg.database_path) as store:
        verdicts = {a["upn"].lower(): a["verdict"] for a in store.accounts(r2.scan_id)}
    assert verdicts[alice.lower()] == "compromised"

    t.remove_rule(bob, "..")
    r3 = await run_scan(env.cfg, **env.kwargs)
    third = _findings(env, r3.scan_id)
    transient = [f for f in third if f["status"] == "transient"]
    assert transient and {f["account"].lower() for f in transient} == {bob.lower()}
    assert {f["detector"] for f in transient} >= {"mail.inbox_rule_security_keywords"}
    assert all(f["evidence"].get("rule_name") == ".." for f in transient)
    assert not any(f["status"] == "active" and f["account"].lower() == bob.lower()
                   and f["detector"] == "mail.inbox_rule_security_keywords" for f in third)
    # Nothing else is new in scan 3 except the transient report.
    assert all(f["status"] == "transient" for f in third if f["new_since_last_scan"])
