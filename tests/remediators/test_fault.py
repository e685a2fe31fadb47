"""A fault in the middle of a run: the journal says exactly what was and was not done; a re-run completes it."""

from __future__ import annotations

from pathlib import Path

from remhelpers import Scanned, plant_compromise, user_mailboxes

from scanner.simulator import create_app, generate_tenant


def test_fault_mid_run_is_journaled_and_rerun_completes(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=5, scenarios=False)
    upn = user_mailboxes(tenant, 1)[0]
    plant_compromise(tenant, upn)
    s = Scanned(tmp_path, tenant, create_app(tenant))
    u = tenant.user(upn)
    # Exchange refuses the forwarding change (the 3rd step) for this mailbox, every time.
    tenant.faults.add("Set-Mailbox", "status", status=500, times=None, upn=upn, code="InternalServerError",
                      message="Set-Mailbox failed")
    pw = tmp_path / "pw.txt"
    res = s.remediate("--user", upn, "--yes", "--password-file", str(pw))
    assert res.exit_code == 1, res.output
    rows = s.journal(upn)
    by_step: dict[str, list[str]] = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r["status"])
    assert by_step["revoke_sessions"] == ["started", "applied", "verified"]
    assert by_step["reset_password"] == ["started", "applied", "verified"]
    assert by_step["remove_forwarding"] == ["started", "failed"]
    assert by_step["disable_rules"].count("verified") == 2  # later back-door steps still ran
    assert by_step["unblock_sending"] == ["skipped"]  # not secured: not unblocked
    skipped = next(r for r in rows if r["step"] == "unblock_sending")
    assert "earlier steps" in skipped["detail"]
    # ... and the tenant agrees with the journal.
    assert u.sessions_revoked == 1 and u.password_changed_at is not None
    assert u.mailbox.forwarding_smtp is not None
    assert tenant.is_blocked(upn)

    tenant.faults.clear()
    res = s.remediate("--user", upn, "--yes", "--password-file", str(pw))
    assert res.exit_code == 0, res.output
    assert u.mailbox.forwarding_smtp is None and not tenant.is_blocked(upn)
    assert u.sessions_revoked == 1  # containment was not repeated
    assert pw.read_text().count("\n") == 1
    rerun = [r for r in s.journal(upn) if r["seq"] > rows[-1]["seq"]]
    assert [r["step"] for r in rerun if r["status"] == "applied"] == ["remove_forwarding", "unblock_sending"]
