"""Remediation against Exchange's read-after-write lag (graph-api.md §3.2), with the simulator's lag switched on.

The simulator's lag is counted in reads (or in seconds of its frozen clock), so every test is deterministic: verify
polls with ``poll_interval=0`` and converges after the lagging reads, or gives up at once with ``verify_timeout=0``.
Assertions read the simulated tenant and the journal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from remhelpers import Scanned, plant_compromise, user_mailboxes

from remediators.cli import ConnectOptions, remediate_command, undo_command
from scanner.simulator import SimOptions, create_app, generate_tenant

EXCHANGE_STEPS = ("remove_forwarding", "disable_rules", "unblock_sending")


def _scanned(tmp_path: Path, *, reads: int = 0, seconds: float = 0.0, now: datetime | None = None) -> tuple[Scanned, str]:
    t = generate_tenant(users=40, seed=5, scenarios=False, now=now)
    upn = user_mailboxes(t, 1)[0]
    plant_compromise(t, upn)  # forwarding, a visible and a hidden malicious rule, a benign rule, restricted sending
    app = create_app(t, SimOptions(exchange_read_lag_reads=reads, exchange_read_lag_seconds=seconds))
    s = Scanned(tmp_path, t, app)
    s.app = app  # type: ignore[attr-defined]
    return s, upn


def _run(s: Scanned, upn: str, *, timeout: float, steps: tuple[str, ...] = EXCHANGE_STEPS) -> Any:
    opts = ConnectOptions(credential=s.env.credential, transport=s.env.transport, verify_timeout=timeout,
                          poll_interval=0.0)
    args = ["--config", str(s.config_path), "--user", upn, "--yes", "--json"]
    for st in steps:
        args += ["--step", st]
    return CliRunner().invoke(remediate_command, args, obj=opts, catch_exceptions=False)


def _undo(s: Scanned, action_id: str) -> Any:
    opts = ConnectOptions(credential=s.env.credential, transport=s.env.transport, verify_timeout=0.0,
                          poll_interval=0.0)
    return CliRunner().invoke(undo_command, ["--config", str(s.config_path), action_id], obj=opts,
                              catch_exceptions=False)


def _actions(s: Scanned, upn: str, step: str) -> dict[str, list[str]]:
    """action id -> its statuses in order, for the step's change actions."""
    out: dict[str, list[str]] = {}
    for r in s.journal(upn):
        if r["step"] == step and r["target"]:
            out.setdefault(r["action_id"], []).append(r["status"])
    return {a: st for a, st in out.items() if "started" in st}


def _set_mailbox_calls(s: Scanned, upn: str) -> int:
    """Set-Mailbox cmdlets the remediation sent (planting the compromise logs its own rows, with another path)."""
    return sum(1 for m in s.tenant.mutations_for(upn) if m["method"] == "Set-Mailbox" and m["detail"].get("parameters"))


def test_verify_polls_through_the_lag_and_confirms(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, reads=3)
    t = s.tenant
    res = _run(s, upn, timeout=60.0)
    assert res.exit_code == 0, res.output
    mbx = t.user(upn).mailbox
    assert mbx.forwarding_smtp is None and mbx.forwarding_address is None
    assert all(not r.isEnabled for r in t.hidden_rules(upn) if not r.system)
    assert not t.is_blocked(upn)  # every earlier step verified, so the account was unblocked last
    assert s.app.exchange_lag.stale_reads >= 3  # the reads really lagged; verify kept polling through them
    for step in EXCHANGE_STEPS:
        acts = _actions(s, upn, step)
        assert acts, step
        for statuses in acts.values():
            assert statuses[-1] == "verified", (step, statuses)
            assert "verify_failed" not in statuses


def test_lag_outlasting_the_budget_is_not_confirmed_and_a_later_run_rechecks_without_reapplying(
        tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, reads=40)
    t = s.tenant
    first = _run(s, upn, timeout=0.0, steps=("remove_forwarding", "unblock_sending"))
    assert first.exit_code == 1, first.output  # interface.md: a step that did not verify
    assert "not confirmed yet" in first.output
    assert t.user(upn).mailbox.forwarding_smtp is None  # the write itself happened
    assert t.is_blocked(upn)  # not unblocked while the containment is unconfirmed
    [(action, statuses)] = _actions(s, upn, "remove_forwarding").items()
    assert statuses == ["started", "applied", "verify_failed"]
    assert _set_mailbox_calls(s, upn) == 1

    # Still lagging: the stale read shows the forwarding, but the change is re-checked, not applied again.
    again = _run(s, upn, timeout=0.0, steps=("remove_forwarding", "unblock_sending"))
    assert again.exit_code == 1, again.output
    assert _set_mailbox_calls(s, upn) == 1
    assert list(_actions(s, upn, "remove_forwarding")) == [action]
    assert _actions(s, upn, "remove_forwarding")[action][-1] == "verify_failed"

    # With a budget that outlasts the lag, the same action is confirmed and the account is unblocked.
    last = _run(s, upn, timeout=600.0, steps=("remove_forwarding", "unblock_sending"))
    assert last.exit_code == 0, last.output
    assert _set_mailbox_calls(s, upn) == 1
    assert _actions(s, upn, "remove_forwarding")[action][-1] == "verified"
    assert not t.is_blocked(upn)


def test_time_based_lag_is_confirmed_by_a_later_run_once_the_clock_moves(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, seconds=90.0, now=datetime(2025, 3, 3, 9, 0, tzinfo=UTC))
    t = s.tenant
    first = _run(s, upn, timeout=0.0, steps=("remove_forwarding",))
    assert first.exit_code == 1, first.output
    [action] = _actions(s, upn, "remove_forwarding")
    t.advance(91)  # the simulator's frozen clock: the replica has caught up
    later = _run(s, upn, timeout=0.0, steps=("remove_forwarding",))
    assert later.exit_code == 0, later.output
    assert _actions(s, upn, "remove_forwarding")[action][-1] == "verified"
    assert _set_mailbox_calls(s, upn) == 1


def test_send_on_behalf_removals_do_not_resurrect_each_other_under_lag(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, reads=10)
    t = s.tenant
    a, b, keep = user_mailboxes(t, 4)[1:4]
    t.user(upn).mailbox.grant_send_on_behalf[:] = [keep]
    s.rescan()  # baseline: 'keep' is a standing delegate
    t.add_delegate(upn, a, "SendOnBehalf")
    t.add_delegate(upn, b, "SendOnBehalf")
    s.rescan()  # the two new delegates are findings
    res = _run(s, upn, timeout=60.0, steps=("remove_delegates",))
    acts = _actions(s, upn, "remove_delegates")
    assert len(acts) == 2, (res.output, s.journal(upn))
    assert res.exit_code == 0, res.output
    # Each removal wrote the whole list; the second did not write back the first one from a lagging read.
    assert [x.lower() for x in t.user(upn).mailbox.grant_send_on_behalf] == [keep.lower()]


def test_undo_under_lag_restores_the_journaled_forwarding(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, reads=40)
    t = s.tenant
    res = _run(s, upn, timeout=0.0, steps=("remove_forwarding",))
    assert res.exit_code == 1
    [action] = _actions(s, upn, "remove_forwarding")
    out = _undo(s, action)
    assert out.exit_code == 0, out.output
    # Undo writes the journaled before-image; it does not depend on what the lagging read shows.
    assert t.user(upn).mailbox.forwarding_smtp == "smtp:drop0@gmail.com"


def test_send_on_behalf_undo_refuses_a_list_it_cannot_trust_under_lag(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path, reads=40)
    t = s.tenant
    a = user_mailboxes(t, 2)[1]
    t.add_delegate(upn, a, "SendOnBehalf")
    s.rescan()
    _run(s, upn, timeout=0.0, steps=("remove_delegates",))
    [sob] = [k for k, st in _actions(s, upn, "remove_delegates").items() if "applied" in st]
    assert t.user(upn).mailbox.grant_send_on_behalf == []
    out = _undo(s, sob)
    assert out.exit_code == 2 and "may not read back yet" in out.output
    assert t.user(upn).mailbox.grant_send_on_behalf == []  # nothing written from the stale list
    assert _actions(s, upn, "remove_delegates")[sob][-1] == "undo_failed"


# ---- Graph (directory) replication lag -------------------------------------------------------------------------------
class DirectoryLag:
    """A directory that is eventually consistent: after a DELETE of a role assignment, the next ``reads`` lists of
    role assignments still show the state from before it (a replica that has not caught up)."""

    def __init__(self, app: Any, reads: int) -> None:
        self.app, self.reads, self.pending = app, reads, 0
        self.stale: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from tests.reliability.helpers import rewrite_body

        path = scope.get("path", "") if scope["type"] == "http" else ""
        listing = scope.get("method") == "GET" and path.endswith("/roleManagement/directory/roleAssignments")
        if scope["type"] == "http" and scope.get("method") == "DELETE" and "/roleAssignments/" in path:
            self.pending = self.reads
        if not listing:
            await self.app(scope, receive, send)
            return

        def fix(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            if self.pending and self.stale is not None:
                self.pending -= 1
                return self.stale
            self.stale = data
            return data

        await self.app(scope, receive, rewrite_body(send, fix))


def _graph_lag_run(s: Scanned, upn: str, lag: DirectoryLag, timeout: float) -> Any:
    import httpx

    opts = ConnectOptions(credential=s.env.credential, transport=httpx.ASGITransport(app=lag), verify_timeout=timeout,
                          poll_interval=0.0)
    return CliRunner().invoke(remediate_command, ["--config", str(s.config_path), "--user", upn, "--yes",
                                                  "--step", "remove_admin_roles"], obj=opts, catch_exceptions=False)


def test_a_directory_write_that_reads_back_late_is_verified_after_re_reading(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path)
    s.tenant.add_role(s.tenant.user(upn), "Exchange Administrator")
    res = _graph_lag_run(s, upn, DirectoryLag(s.app, reads=2), timeout=5.0)
    assert res.exit_code == 0, res.output
    assert s.tenant.roles_of(s.tenant.user(upn)) == []
    (statuses,) = _actions(s, upn, "remove_admin_roles").values()
    assert statuses == ["started", "applied", "verified"]


def test_a_directory_write_that_never_reads_back_is_reported_unconfirmed(tmp_path: Path) -> None:
    s, upn = _scanned(tmp_path)
    s.tenant.add_role(s.tenant.user(upn), "Exchange Administrator")
    res = _graph_lag_run(s, upn, DirectoryLag(s.app, reads=2), timeout=0.0)
    assert res.exit_code == 1
    (statuses,) = _actions(s, upn, "remove_admin_roles").values()
    assert statuses == ["started", "applied", "verify_failed"]
    assert s.tenant.roles_of(s.tenant.user(upn)) == []  # it was done; only the read-back lagged


def test_a_step_mixing_services_waits_the_exchange_budget_only_for_its_exchange_targets() -> None:
    from remediators._model import GRAPH_VERIFY_BUDGET, StepContext
    from remediators.remove_admin_roles import RemoveAdminRoles
    from remediators.remove_forwarding import RemoveForwarding

    ctx = StepContext(graph=None, exchange=None, verify_timeout=180.0)
    step = RemoveAdminRoles()
    # Entra assignments, PIM eligibility, role-assignable groups: Graph, replicated within seconds.
    assert step._verify_budget(ctx, ["abc-1", "eligible:xyz", "group:g1"]) == GRAPH_VERIFY_BUDGET
    assert "within 30 s" in step.not_confirmed_detail(ctx, ["abc-1"])
    # An Exchange role-group membership lags like every Exchange write.
    assert step._verify_budget(ctx, ["abc-1", "exorolegroup:Organization Management"]) == 180.0
    assert "Exchange" in step.not_confirmed_detail(ctx, ["exorolegroup:Organization Management"])
    assert RemoveForwarding()._verify_budget(ctx, ["forwarding"]) == 180.0  # a whole-Exchange step
