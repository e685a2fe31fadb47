"""Runs remediation: which steps, in which order, on which accounts — and the guards around auto mode.

Manual (``remediate --user``): the default playbook (interface.md) plus the steps the account's findings name, or
exactly the ``--step`` list; optional steps (block_sign_in, disable_email_apps, remove_admin_roles) only when named by
``--step``, or (remove_admin_roles) by a finding about a role itself (:data:`OPTIONAL_WHEN_ABOUT`).
Every step is planned from the live state first (:func:`prepare`), shown, confirmed, then applied in the safe order
and verified (:func:`execute`). ``unblock_sending`` runs last and only when every earlier step succeeded.

Auto (``remediate --auto`` and the scheduler, :func:`run_auto`): only accounts whose verdict in the latest scan is
``compromised``; never a protected account; at most ``max_accounts_per_run`` accounts acted on (the rest are
*pending*); an account whose live state is already clean is skipped. Without ``allow_auto = true`` AND a confirmation
(``--yes`` or the scheduler) it is a dry run. The selection is the pure function :func:`select_auto`, so its
guarantees are property-tested. Every decision is a journal row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from remediators._model import (
    Account,
    Plan,
    StalePlanError,
    StepContext,
    StepError,
    StepResult,
    read_account,
)
from remediators.journal import RunJournal, action_rows, done_since, unconfirmed_since, undo_entry
from remediators.passwords import PasswordDeliveryError, PasswordSink
from remediators.steps import DEFAULT_PLAYBOOK, OPTIONAL, ORDER, STEPS, ordered
from scanner.graph.client import ApiError


class RemediationError(Exception):
    """A run cannot start (unknown account, unknown step, no scan ...): one line for the operator."""


# ---- step selection ------------------------------------------------------------------------------------------------
# An optional step joins the default playbook only through a finding that is about what the step removes (a role
# assigned since the last scan, a guest in an admin role): then removing it IS "the step the finding names". Other
# findings that merely suggest it (a back-door on an admin's account) leave it to --step: removing every role of a
# genuine administrator is the operator's call (Microsoft's guide makes step 6 optional).
OPTIONAL_WHEN_ABOUT: Mapping[str, frozenset[str]] = {
    "remove_admin_roles": frozenset({"roles.privileged_role_new", "roles.guest_privileged",
                                     "roles.exchange_role_group_new"}),
}


def choose_steps(explicit: Sequence[str] | None, findings: Sequence[Mapping[str, Any]]) -> list[str]:
    """``--step`` list exactly (in safe order), else the default playbook plus what unsuppressed findings name."""
    if explicit:
        unknown = [s for s in explicit if s not in STEPS]
        if unknown:
            raise RemediationError(f"unknown step {unknown[0]!r}; known steps: {', '.join(ORDER)}")
        return ordered(list(explicit))
    named: set[str] = set()
    for f in findings:
        if f.get("suppressed"):
            continue
        for s in (str(x) for x in f.get("remediation") or []):
            if s in STEPS and (s not in OPTIONAL or f.get("detector") in OPTIONAL_WHEN_ABOUT.get(s, ())):
                named.add(s)
    return ordered(set(DEFAULT_PLAYBOOK) | named)


# ---- one account ---------------------------------------------------------------------------------------------------
@dataclass
class AccountRun:
    """An account with its live plans: what the operator confirms."""

    account: Account
    ctx: StepContext
    steps: list[str]
    plans: dict[str, Plan] = field(default_factory=dict)
    plan_errors: dict[str, str] = field(default_factory=dict)
    scan_id: str | None = None

    @property
    def has_work(self) -> bool:
        return any(p.has_work for p in self.plans.values()) or bool(self.plan_errors)

    def changes(self) -> list[tuple[str, Any]]:
        return [(s, t) for s in self.steps if s in self.plans for t in self.plans[s].targets]


@dataclass
class AccountOutcome:
    upn: str
    results: list[StepResult]
    run: AccountRun | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


async def prepare(store: Any, conn: Any, user: str, *, steps: Sequence[str] | None = None,
                  journal: RunJournal | None = None, password_sink: PasswordSink | None = None,
                  verify_timeout: float = 180.0, poll_interval: float = 5.0,
                  account: Account | None = None, only_named: bool = False) -> AccountRun:
    """Read the account and plan every chosen step from the live state (read-only)."""
    try:
        acc = account or await read_account(conn.graph, user)
    except StepError as exc:
        raise RemediationError(str(exc)) from None
    except ApiError as exc:
        raise RemediationError(f"cannot read user {user!r}: {exc.short()}") from None
    scan_id = store.latest_scan_id()
    findings: list[dict[str, Any]] = []
    reference: str | None = None
    if scan_id and store.get_account(scan_id, acc.upn) is not None:
        findings = [f for f in store.findings(scan_id, acc.upn) if not f.get("suppressed")]
        reference = store.scan(scan_id)["started"]
    chosen = choose_steps(steps, findings)
    ctx = StepContext(graph=conn.graph, exchange=conn.exchange, findings=findings, reference_time=reference,
                      done_since_reference=done_since(store, acc.upn, reference), journal=journal,
                      password_sink=password_sink, verify_timeout=verify_timeout, poll_interval=poll_interval,
                      only_named=only_named, unconfirmed=unconfirmed_since(store, acc.upn, reference))
    run = AccountRun(account=acc, ctx=ctx, steps=chosen, scan_id=scan_id)
    for name in chosen:
        try:
            run.plans[name] = await STEPS[name].plan(ctx, acc)
        except (ApiError, StepError) as exc:
            run.plan_errors[name] = exc.short() if isinstance(exc, ApiError) else str(exc)
    confirm_readbacks(run)
    return run


def confirm_readbacks(run: AccountRun) -> None:
    """Earlier changes whose read-back was not confirmed (Exchange lag) and that the live state now shows as done:
    journal ``verified`` on those actions, so the journal and the report stop calling them unconfirmed."""
    j = run.ctx.journal
    if j is None:
        return
    for name, plan in run.plans.items():
        for key, action_id in plan.confirmed:
            j.record(action_id, name, run.account.upn, key, "verified",
                     detail="reads back now (re-checked by a later run)")


def _note(plan: Plan | None) -> str:
    if plan is None:
        return ""
    return "; ".join(plan.notes)


async def execute(run: AccountRun) -> AccountOutcome:
    """Apply the plans in the safe order, verify each step, journal every decision."""
    ctx, upn = run.ctx, run.account.upn
    j = ctx.journal
    results: list[StepResult] = []
    if ctx.password_sink is not None and "reset_password" in run.plans and run.plans["reset_password"].targets:
        try:
            ctx.password_sink.prepare()
        except PasswordDeliveryError as exc:
            raise RemediationError(str(exc)) from None
    for name in run.steps:
        step = STEPS[name]
        plan = run.plans.get(name)
        if name == "unblock_sending" and any(not r.ok for r in results):
            why = "not unblocked: earlier steps did not all succeed, the account is not secured yet"
            if plan is not None and plan.targets:
                if j:
                    j.decision(upn, "skipped", why, step=name)
                results.append(StepResult(name, upn, "skipped", detail=why))
            continue
        if plan is None:
            detail = f"could not read the live state: {run.plan_errors.get(name, 'unknown error')}"
            if j:
                j.decision(upn, "failed", detail, step=name)
            results.append(StepResult(name, upn, "failed", detail=detail))
            continue
        if not plan.skip_reason and not plan.targets and plan.awaiting:
            # Only earlier, unconfirmed changes: re-check them (no write), journaled on their own actions.
            try:
                rechecked: bool | None = await step.recheck(ctx, plan)
            except (ApiError, StepError):
                rechecked = False
            detail = "applied earlier, " + ("now confirmed" if rechecked else step.not_confirmed_detail(
                ctx, [k for k, _ in plan.awaiting]))
            results.append(StepResult(name, upn, "nothing_to_do", detail=f"{detail}; {_note(plan)}",
                                      verified=rechecked))
            continue
        if plan.skip_reason or not plan.targets:
            detail = plan.skip_reason or ("nothing to do" + (f": {_note(plan)}" if plan.notes else ""))
            if j:
                j.decision(upn, "skipped", detail, step=name)
            results.append(StepResult(name, upn, "skipped" if plan.skip_reason else "nothing_to_do", detail=detail))
            continue
        try:
            res = await step.apply(ctx, plan)
        except StalePlanError as exc:
            if j:
                j.decision(upn, "skipped", str(exc), step=name)
            results.append(StepResult(name, upn, "stale", detail=str(exc)))
            continue
        except (ApiError, StepError) as exc:
            detail = exc.short() if isinstance(exc, ApiError) else str(exc)
            if j:
                j.decision(upn, "failed", f"could not re-read the live state before acting: {detail}", step=name)
            results.append(StepResult(name, upn, "failed", detail=detail))
            continue
        verified: bool | None = None
        if any(o.status == "applied" for o in res.outcomes):
            try:
                verified = await step.verify(ctx, plan, res)
            except (ApiError, StepError):
                verified = False
        if plan.awaiting:
            try:
                again = await step.recheck(ctx, plan)
            except (ApiError, StepError):
                again = False
            verified = again if verified is None else (verified and again)
        detail = _note(plan)
        if verified is False and res.status == "applied":
            detail = "; ".join(x for x in (step.not_confirmed_detail(
                ctx, [o.key for o in res.outcomes if o.status == "applied"]), detail) if x)
        results.append(StepResult(res.step, upn, res.status, res.outcomes, detail, verified))
    return AccountOutcome(upn, results, run)


def dry_run_results(run: AccountRun) -> list[StepResult]:
    out = []
    for name in run.steps:
        plan = run.plans.get(name)
        if plan is None:
            out.append(StepResult(name, run.account.upn, "failed", detail=run.plan_errors.get(name, "")))
        elif plan.skip_reason:
            out.append(StepResult(name, run.account.upn, "skipped", detail=plan.skip_reason))
        elif not plan.targets:
            out.append(StepResult(name, run.account.upn, "nothing_to_do", detail=_note(plan)))
        else:
            out.append(StepResult(name, run.account.upn, "dry_run", detail=_note(plan)))
    return out


def journal_dry_run(j: RunJournal | None, run: AccountRun) -> None:
    if j is None:
        return
    for name in run.steps:
        plan = run.plans.get(name)
        for t in plan.targets if plan else ():
            j.decision(run.account.upn, "dry_run", f"would change {t.label}", step=name, target=t.key,
                       after=dict(t.after))


async def remediate_user(cfg: Any, store: Any, conn: Any, user: str, *, steps: Sequence[str] | None = None,
                         dry_run: bool = False, confirm: Callable[[AccountRun], bool] | None = None,
                         actor: str | None = None, password_sink: PasswordSink | None = None,
                         verify_timeout: float = 180.0, poll_interval: float = 5.0) -> AccountOutcome:
    """Plan, confirm (``confirm(run) -> bool``; None means confirmed), apply, verify one account."""
    journal = RunJournal.begin(store, actor=actor, mode="manual", scan_id=store.latest_scan_id())
    run = await prepare(store, conn, user, steps=steps, journal=journal, password_sink=password_sink,
                        verify_timeout=verify_timeout, poll_interval=poll_interval)
    if dry_run:
        journal_dry_run(journal, run)
        return AccountOutcome(run.account.upn, dry_run_results(run), run)
    if confirm is not None and run.has_work and not confirm(run):
        journal.decision(run.account.upn, "skipped", "the operator declined the plan")
        return AccountOutcome(run.account.upn, [], run)
    return await execute(run)


# ---- auto mode -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoSelection:
    act: tuple[str, ...]  # acted on this run (≤ cap)
    pending: tuple[str, ...]  # over the cap: next run
    protected: tuple[str, ...]  # never touched automatically
    gone: tuple[str, ...]  # compromised in the scan, nothing left to do in the live state


def protected_upns(store: Any, scan_id: str, accounts: Iterable[Mapping[str, Any]],
                   configured: Iterable[str]) -> list[str]:
    """The configured protected accounts, plus every compromised account whose primary SMTP address or object id
    matches one of them: a protected mailbox listed by its mail address or id is still protected."""
    conf = {p.strip().lower() for p in configured if p and p.strip()}
    out = set(conf)
    for a in accounts:
        if str(a.get("verdict") or "").lower() != "compromised" or not a.get("upn"):
            continue
        keys = {str(a["upn"]).lower(), str(a.get("user_id") or "").lower()}
        snap = store.get_account(scan_id, a["upn"])
        if snap is not None:
            # Not otherMails: users (and attackers) can set those, which would let an attacker opt out of remediation.
            keys.add((snap.user.mail or "").lower())
        if keys & conf:
            out.add(str(a["upn"]).lower())
    return sorted(out)


def select_auto(accounts: Iterable[Mapping[str, Any]], protected: Iterable[str], cap: int,
                gone: Iterable[str] = ()) -> AutoSelection:
    """Pure: which compromised accounts to act on. Highest score first, then UPN; UPNs compared case-insensitively.

    Guarantees (property-tested): only ``compromised`` accounts; none in ``protected``; at most ``max(cap, 0)``;
    every compromised account lands in exactly one of act / pending / protected / gone.
    """
    prot = {p.strip().lower() for p in protected if p and p.strip()}
    gone_l = {g.strip().lower() for g in gone}
    limit = max(int(cap), 0)
    cands = [a for a in accounts if str(a.get("verdict") or "").lower() == "compromised" and a.get("upn")]
    cands.sort(key=lambda a: (-int(a.get("score") or 0), str(a["upn"]).lower()))
    act: list[str] = []
    pending: list[str] = []
    prot_out: list[str] = []
    gone_out: list[str] = []
    seen: set[str] = set()
    for a in cands:
        upn = str(a["upn"])
        key = upn.strip().lower()
        if key in seen:
            continue
        seen.add(key)
        if key in prot:
            prot_out.append(upn)
        elif key in gone_l:
            gone_out.append(upn)
        elif len(act) < limit:
            act.append(upn)
        else:
            pending.append(upn)
    return AutoSelection(tuple(act), tuple(pending), tuple(prot_out), tuple(gone_out))


@dataclass
class AutoResult:
    run_id: str
    dry_run: bool
    dry_run_reason: str = ""
    scan_id: str | None = None
    acted: list[AccountOutcome] = field(default_factory=list)  # applied (or, in a dry run, would be)
    pending: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # upn -> why it could not be planned

    @property
    def ok(self) -> bool:
        return not self.errors and all(o.ok for o in self.acted)


async def run_auto(cfg: Any, store: Any, conn: Any, *, dry_run: bool, confirmed: bool, actor: str,
                   verify_timeout: float = 180.0, poll_interval: float = 5.0) -> AutoResult:
    """Auto-remediation of the latest scan's compromised accounts, as ``[remediation]`` allows.

    ``confirmed``: ``--yes`` on the command line, or True from the scheduler. Without ``allow_auto`` and a
    confirmation this is a dry run: it plans (reads) and journals what it would do, and changes nothing.
    """
    from remediators.passwords import FileSink

    pol = cfg.remediation
    reason = ""
    if dry_run:
        reason = "--dry-run"
    elif not pol.allow_auto:
        reason = "[remediation] allow_auto is false"
    elif not confirmed:
        reason = "not confirmed (pass --yes)"
    effective_dry = bool(reason)
    scan_id = store.latest_scan_id()
    journal = RunJournal.begin(store, actor=actor, mode="auto", scan_id=scan_id)
    result = AutoResult(run_id=journal.run_id, dry_run=effective_dry, dry_run_reason=reason, scan_id=scan_id)
    if scan_id is None:
        journal.decision(None, "skipped", "no finished scan in the database: nothing to remediate")
        return result
    accounts = store.accounts(scan_id)
    sink = FileSink(cfg.resolve(pol.password_file)) if pol.password_file else None
    policy_steps = ordered(list(pol.steps))
    gone: set[str] = set()
    runs: dict[str, AccountRun] = {}
    protected = protected_upns(store, scan_id, accounts, pol.protected_accounts)
    while True:
        sel = select_auto(accounts, protected, pol.max_accounts_per_run, gone)
        todo = [u for u in sel.act if u not in runs]
        if not todo:
            break
        for upn in todo:
            try:
                run = await prepare(store, conn, upn, steps=policy_steps, journal=journal, password_sink=sink,
                                    verify_timeout=verify_timeout, poll_interval=poll_interval, only_named=True)
            except RemediationError as exc:
                # The account is gone from the directory (deleted, renamed): nothing to act on.
                gone.add(upn)
                result.errors[upn] = str(exc)
                continue
            runs[upn] = run
            if not run.has_work:
                gone.add(upn)
    for upn in sel.protected:
        journal.decision(upn, "protected", "protected account: never remediated automatically")
    for upn in sel.gone:
        skipped = [f"{n}: {p.skip_reason}" for n, p in (runs[upn].plans.items() if upn in runs else ())
                   if p is not None and p.skip_reason]
        detail = result.errors.get(upn) or "nothing left to remediate: the live state no longer shows the back-doors"
        if skipped and upn not in result.errors:
            detail = "nothing to act on automatically; " + "; ".join(skipped)
        journal.decision(upn, "skipped", detail)
    for upn in sel.pending:
        journal.decision(upn, "pending", f"over max_accounts_per_run ({pol.max_accounts_per_run}): left for the "
                                         "next run")
    result.protected, result.gone, result.pending = list(sel.protected), list(sel.gone), list(sel.pending)
    for upn in sel.act:
        run = runs[upn]
        if effective_dry:
            journal.decision(run.account.upn, "dry_run", f"would remediate ({reason})")
            journal_dry_run(journal, run)
            result.acted.append(AccountOutcome(run.account.upn, dry_run_results(run), run))
        else:
            result.acted.append(await execute(run))
    return result


# ---- undo ----------------------------------------------------------------------------------------------------------
class UndoError(Exception):
    """The action cannot be undone (unknown, not applied, irreversible, the service refused)."""


async def undo_action(store: Any, conn: Any, action_id: str, *, actor: str | None = None) -> str:
    """Reverse one journaled action from its stored before-image. Returns one line for the operator."""
    rows = action_rows(store, action_id)
    if not rows:
        raise UndoError(f"no journaled action {action_id!r}")
    step_name = rows[0]["step"]
    step = STEPS.get(step_name or "")
    statuses = [r["status"] for r in rows]
    if step is None:
        raise UndoError(f"action {action_id} is a decision ({statuses[-1]}), not a change: nothing to undo")
    if not step.reversible:
        raise UndoError(f"{step_name} cannot be undone: {step.irreversible_reason}")
    if "undone" in statuses and statuses[-1] == "undone":
        return f"action {action_id} ({step_name}) was already undone"
    if "applied" not in statuses:
        raise UndoError(f"action {action_id} ({step_name}) was not applied (last status: {statuses[-1]}): "
                        "nothing to undo")
    entry = undo_entry(rows)
    journal = RunJournal.begin(store, actor=actor, mode="manual", scan_id=rows[0].get("scan_id"))
    journal.record(action_id, step_name, entry["upn"], entry["target"], "undo_started",
                   before=entry.get("after"), after=entry.get("before"))
    ctx = StepContext(graph=conn.graph, exchange=conn.exchange, journal=journal)
    try:
        message = await step.undo(ctx, entry)
    except ApiError as exc:
        detail = exc.short()
        if exc.service == "exchange" and exc.status == 403 and not exc.code:
            detail = (f"the Exchange endpoint does not offer the cmdlet needed to undo {step_name} "
                      f"(undo unsupported here): {exc.message}")
        journal.record(action_id, step_name, entry["upn"], entry["target"], "undo_failed", detail=detail)
        raise UndoError(f"undo of {action_id} failed: {detail}") from None
    except StepError as exc:
        journal.record(action_id, step_name, entry["upn"], entry["target"], "undo_failed", detail=str(exc))
        raise UndoError(f"undo of {action_id} failed: {exc}") from None
    journal.record(action_id, step_name, entry["upn"], entry["target"], "undone", after=entry.get("before"),
                   detail=message)
    return f"{entry['upn']}: {message}"
