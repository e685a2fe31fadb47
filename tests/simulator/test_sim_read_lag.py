"""The simulator's Exchange read-after-write lag: counted in reads or in seconds of its clock, off by default."""

from __future__ import annotations

from datetime import UTC, datetime

from scanner.simulator import exchange as ex
from scanner.simulator import generate_tenant


def _tenant_and_upn(now: datetime | None = None) -> tuple:
    t = generate_tenant(users=30, seed=5, scenarios=False, now=now)
    u = next(x for x in t.iter_users() if x.mailbox is not None and x.mailbox.kind == "user")
    t.set_forwarding(u.userPrincipalName, smtp="smtp:a@gmail.com")
    return t, u.userPrincipalName


def _fwd(t, upn: str, lag) -> str | None:
    return ex.run(t, "Get-Mailbox", {"Identity": upn}, lag)[0][0]["ForwardingSmtpAddress"]


def test_reads_after_a_write_show_the_old_state_for_n_reads() -> None:
    t, upn = _tenant_and_upn()
    lag = ex.ReadLag(t, reads=2)
    ex.run(t, "Set-Mailbox", {"Identity": upn, "ForwardingSmtpAddress": None}, lag)
    assert t.user(upn).mailbox.forwarding_smtp is None  # the live state changed at once
    assert ex.run(t, "Get-AcceptedDomain", {}, lag)  # reads no mailbox: not counted
    assert [_fwd(t, upn, lag) for _ in range(3)] == ["smtp:a@gmail.com", "smtp:a@gmail.com", None]
    # The bulk listing the scanner uses lags too.
    ex.run(t, "Set-Mailbox", {"Identity": upn, "ForwardingSmtpAddress": "b@evil.example"}, lag)
    pager, _ = ex.run(t, "Get-Mailbox", {"ResultSize": "Unlimited"}, lag)
    rows, _, _ = pager.page(None, 1000)
    assert next(r for r in rows if r["UserPrincipalName"] == upn)["ForwardingSmtpAddress"] is None


def test_time_lag_follows_the_tenant_clock_and_failed_writes_do_not_lag() -> None:
    t, upn = _tenant_and_upn(now=datetime(2025, 1, 6, 8, 0, tzinfo=UTC))
    lag = ex.ReadLag(t, seconds=60)
    try:
        ex.run(t, "Set-Mailbox", {"Identity": upn, "ForwardingAddress": "nobody@nowhere.example"}, lag)
    except ex.CmdletError:
        pass
    assert lag.pending == {}
    ex.run(t, "Set-Mailbox", {"Identity": upn, "ForwardingSmtpAddress": None}, lag)
    assert _fwd(t, upn, lag) == "smtp:a@gmail.com"
    t.advance(59)
    assert _fwd(t, upn, lag) == "smtp:a@gmail.com"
    t.advance(1)
    assert _fwd(t, upn, lag) is None


def test_off_by_default() -> None:
    t, upn = _tenant_and_upn()
    ex.run(t, "Set-Mailbox", {"Identity": upn, "ForwardingSmtpAddress": None})
    assert _fwd(t, upn, None) is None
    assert not ex.ReadLag(t).active
