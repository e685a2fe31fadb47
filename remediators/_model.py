"""The remediation step contract: plan (read-only) → apply (exactly the plan, never a stale one) → verify → undo.

A step reads the LIVE tenant through ``scanner.graph`` (never the stored snapshot: the snapshot may be hours old) and
returns a :class:`Plan`: the targets it would change, each with a before- and after-image, plus a fingerprint of the
state it saw. ``apply`` re-plans first and refuses (:class:`StalePlanError`) when the fingerprint changed, so what
the operator confirmed is what happens. A clean account plans to nothing, which makes every step idempotent.

Journaling lives here too, in :meth:`BaseStep.apply`: a ``started`` row with the before-image is written BEFORE each
target is touched, then ``applied`` or ``failed``; a crash between the two leaves a ``started`` row that says
"maybe done", and the next run's re-plan finds out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from scanner.graph.client import ApiError

if TYPE_CHECKING:
    from remediators.journal import RunJournal
    from remediators.passwords import PasswordSink

USER_SELECT = ("id,userPrincipalName,mail,accountEnabled,onPremisesSyncEnabled,userType,"
               "lastPasswordChangeDateTime")


class StepError(Exception):
    """A step cannot run for this account (one line for the operator)."""


class StalePlanError(StepError):
    """The tenant changed between plan and apply: the confirmed plan is not what would happen now."""


class IrreversibleError(StepError):
    """Undo was asked for an action that cannot be reversed."""


@dataclass(frozen=True)
class Account:
    """The live directory object a remediation acts on (read fresh from Graph, not from the snapshot)."""

    id: str
    upn: str
    mail: str | None = None
    account_enabled: bool | None = None
    on_premises_sync_enabled: bool | None = None
    user_type: str | None = None
    last_password_change: str | None = None

    @classmethod
    def from_graph(cls, d: Mapping[str, Any]) -> Account:
        return cls(id=str(d["id"]), upn=str(d.get("userPrincipalName") or d["id"]), mail=d.get("mail"),
                   account_enabled=d.get("accountEnabled"), on_premises_sync_enabled=d.get("onPremisesSyncEnabled"),
                   user_type=d.get("userType"), last_password_change=d.get("lastPasswordChangeDateTime"))

    @property
    def synced(self) -> bool:
        return bool(self.on_premises_sync_enabled)


async def read_account(graph: Any, key: str) -> Account:
    """The user by UPN or id; StepError with one line when there is no such user."""
    from urllib.parse import quote

    # Graph's user doc: a userPrincipalName that begins with '$' breaks /users/{upn} (OData reserves the '$'
    # prefix), so such a user is addressed as /users('{upn}') (quotes doubled inside).
    path = (f"/users('{quote(key.replace(chr(39), chr(39) * 2), safe=chr(39) + '@$')}')" if key.startswith("$")
            else f"/users/{quote(key, safe='@')}")
    try:
        data = await graph.get_json(path, params={"$select": USER_SELECT})
    except ApiError as exc:
        if exc.is_not_found:
            raise StepError(f"no user {key!r} in the tenant") from None
        raise
    if not isinstance(data, dict) or "id" not in data:
        raise StepError(f"unexpected answer reading user {key!r}")
    return Account.from_graph(data)


@dataclass(frozen=True)
class Target:
    """One thing a step changes: a rule, a role assignment, the mailbox's forwarding, ..."""

    key: str  # stable within the step (rule id, assignment id, "mailbox"); part of the fingerprint
    label: str  # for the operator: what this is (tenant strings inside: escape when rendering)
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    data: Mapping[str, Any] = field(default_factory=dict)  # how to act (ids, paths, which API)


def fingerprint(step: str, account_id: str, targets: Sequence[Target], extra: Any = None) -> str:
    raw = json.dumps([step, account_id, [[t.key, t.before, t.data] for t in targets], extra], sort_keys=True,
                     default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Plan:
    step: str
    account: Account
    targets: tuple[Target, ...]
    reversible: bool
    notes: tuple[str, ...] = ()  # what the operator must know (synced account, PIM eligibility left, ...)
    skip_reason: str | None = None  # the step will not act, and why (nothing to do is NOT a skip reason)
    fingerprint: str = ""
    # Exchange writes lag reads: (target key, action id) of changes an earlier run applied (since the scan) that the
    # live state still shows as not done. They are re-checked, never applied again from a possibly stale read.
    awaiting: tuple[tuple[str, str], ...] = ()
    # (target key, action id) of such earlier changes the live state now shows as done: their read-back is confirmed.
    confirmed: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.targets

    @property
    def has_work(self) -> bool:
        """Something to apply or to re-check."""
        return bool(self.targets or self.awaiting)


@dataclass(frozen=True)
class TargetOutcome:
    key: str
    label: str
    status: str  # applied | failed | skipped
    action_id: str | None = None
    detail: str = ""
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    step: str
    upn: str
    status: str  # applied | failed | skipped | nothing_to_do | stale | dry_run
    outcomes: tuple[TargetOutcome, ...] = ()
    detail: str = ""
    verified: bool | None = None  # None: not verified (nothing applied)

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "nothing_to_do", "dry_run") and self.verified is not False


@dataclass
class StepContext:
    """What a step may use: the live connection, the account's findings, and the run's journal and delivery."""

    graph: Any  # scanner.graph.client.GraphApi
    exchange: Any  # scanner.graph.client.ExchangeApi
    findings: Sequence[Mapping[str, Any]] = ()  # store.findings(scan_id, upn), unsuppressed
    # When the evidence of compromise was collected (the scan's start); containment done after it is not repeated.
    reference_time: str | None = None
    # Containment steps already applied since reference_time (from the journal), step -> time.
    done_since_reference: Mapping[str, str] = field(default_factory=dict)
    journal: RunJournal | None = None
    password_sink: PasswordSink | None = None
    verify_timeout: float = 180.0  # Exchange writes lag reads by 20 s to minutes (graph-api.md §3.2)
    poll_interval: float = 5.0
    # Auto mode acts only on what the scan's findings name: live state that differs from the evidence (e.g. forwarding
    # changed since the scan) is left for a human, never "fixed" unattended.
    only_named: bool = False
    # Changes applied since reference_time whose read-back is not confirmed yet: step -> {target key -> action id}.
    unconfirmed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@runtime_checkable
class Step(Protocol):
    name: ClassVar[str]
    permissions: ClassVar[tuple[str, ...]]
    reversible: ClassVar[bool]
    summary: ClassVar[str]

    async def plan(self, ctx: StepContext, account: Account) -> Plan: ...

    async def apply(self, ctx: StepContext, plan: Plan) -> StepResult: ...

    async def verify(self, ctx: StepContext, plan: Plan, result: StepResult) -> bool: ...

    async def undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str: ...


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


GRAPH_VERIFY_BUDGET = 30.0  # seconds a Graph step's verify re-reads for (directory replication), at most


class BaseStep:
    """Shared plan/apply/verify machinery; a step implements :meth:`_plan_targets`, :meth:`_apply_target`."""

    name: ClassVar[str] = ""
    permissions: ClassVar[tuple[str, ...]] = ()
    reversible: ClassVar[bool] = False
    irreversible_reason: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    uses_exchange: ClassVar[bool] = False  # writes lag reads: verify polls
    # A step whose targets mix services: the keys of the targets that are Exchange writes (the rest are Graph).
    exchange_key_prefixes: ClassVar[tuple[str, ...]] = ()
    # _plan_targets reads the whole live state it acts on whatever the findings say, so a key absent from its targets
    # means "done" (forwarding, protocols, restricted senders). Finding-driven steps only look at what findings name.
    plans_from_live_state: ClassVar[bool] = False

    # ---- to implement ----------------------------------------------------------------------------------------------
    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        """(targets, notes, skip_reason) from the live state."""
        raise NotImplementedError

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        """Change one target; returns the after-image to journal (never a secret)."""
        raise NotImplementedError

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        raise IrreversibleError(f"{self.name} cannot be undone: {self.irreversible_reason}")

    # ---- the contract ----------------------------------------------------------------------------------------------
    async def plan(self, ctx: StepContext, account: Account) -> Plan:
        targets, notes, skip = await self._plan_targets(ctx, account)
        if skip:
            targets = []
        awaiting: list[tuple[str, str]] = []
        confirmed: list[tuple[str, str]] = []
        earlier = {k: a for k, a in ctx.unconfirmed.get(self.name, {}).items()
                   if self.lags_like_exchange(k)} if not skip else {}
        if earlier:
            live = {t.key for t in targets}
            for t in [t for t in targets if t.key in earlier]:
                # Applied by an earlier run since the scan, and the read still shows the old value: most likely
                # Exchange's read-after-write lag. Applying again from this read could write a stale before-image
                # to the journal; re-check instead (a newer scan that still shows it starts a new cycle).
                awaiting.append((t.key, earlier[t.key]))
                notes.append(f"{t.label}: changed by action {earlier[t.key]} after the scan; Exchange does not show "
                             "it yet, so it is re-checked, not applied again")
            targets = [t for t in targets if t.key not in earlier]
            if self.plans_from_live_state:
                confirmed = [(k, a) for k, a in sorted(earlier.items()) if k not in live]
        return Plan(step=self.name, account=account, targets=tuple(targets), reversible=self.reversible,
                    notes=tuple(notes), skip_reason=skip,
                    fingerprint=fingerprint(self.name, account.id, targets, [skip, awaiting]),
                    awaiting=tuple(awaiting), confirmed=tuple(confirmed))

    async def apply(self, ctx: StepContext, plan: Plan) -> StepResult:
        upn = plan.account.upn
        if plan.skip_reason:
            return StepResult(self.name, upn, "skipped", detail=plan.skip_reason)
        if plan.empty:
            return StepResult(self.name, upn, "nothing_to_do")
        fresh = await self.plan(ctx, plan.account)
        if fresh.fingerprint != plan.fingerprint:
            raise StalePlanError(f"{self.name}: the tenant changed since the plan was made; re-plan and confirm again")
        outcomes = await self._apply_targets(ctx, plan, plan.targets)
        status = "applied" if all(o.status == "applied" for o in outcomes) else "failed"
        return StepResult(self.name, upn, status, tuple(outcomes))

    async def _apply_targets(self, ctx: StepContext, plan: Plan, targets: Sequence[Target]) -> list[TargetOutcome]:
        """Change each target, journaling started → applied | failed around each one."""
        upn = plan.account.upn
        outcomes: list[TargetOutcome] = []
        for t in targets:
            action_id = ctx.journal.started(self.name, upn, t.key, before=dict(t.before), planned=dict(t.after),
                                            label=t.label, data=dict(t.data),
                                            user_id=plan.account.id) if ctx.journal else None
            try:
                after = _json_safe(dict(await self._apply_target(ctx, plan, t)))
            except ApiError as exc:
                detail = exc.short()
                if ctx.journal and action_id:
                    ctx.journal.record(action_id, self.name, upn, t.key, "failed", detail=detail)
                outcomes.append(TargetOutcome(t.key, t.label, "failed", action_id, detail, dict(t.before)))
                continue
            except StepError as exc:
                if ctx.journal and action_id:
                    ctx.journal.record(action_id, self.name, upn, t.key, "failed", detail=str(exc))
                outcomes.append(TargetOutcome(t.key, t.label, "failed", action_id, str(exc), dict(t.before)))
                continue
            if ctx.journal and action_id:
                ctx.journal.record(action_id, self.name, upn, t.key, "applied", after=after,
                                   detail=str(after.get("detail", "")))
            outcomes.append(TargetOutcome(t.key, t.label, "applied", action_id, str(after.get("detail", "")),
                                          dict(t.before), after))
        return outcomes

    async def _still_pending(self, ctx: StepContext, plan: Plan, keys: set[str]) -> set[str]:
        """Which of ``keys`` the live state still shows as needing the change (raw targets: no journal filtering)."""
        targets, _notes, skip = await self._plan_targets(ctx, plan.account)
        return set() if skip else {t.key for t in targets} & keys

    def lags_like_exchange(self, key: str) -> bool:
        """Whether the target ``key`` is an Exchange write (its read-back lags by minutes)."""
        return self.uses_exchange or (bool(self.exchange_key_prefixes) and key.startswith(self.exchange_key_prefixes))

    def _verify_budget(self, ctx: StepContext, keys: Iterable[str] = ()) -> float:
        """Exchange writes lag reads by 20 s to minutes (graph-api.md §3.2): the whole ``verify_timeout``. Directory
        writes through Graph are eventually consistent too, but replicate within seconds: a short budget, so a real
        tenant's replica lag is not reported as a failed change."""
        if self.uses_exchange or any(self.lags_like_exchange(k) for k in keys):
            return ctx.verify_timeout
        return min(ctx.verify_timeout, GRAPH_VERIFY_BUDGET)

    async def _poll(self, ctx: StepContext, plan: Plan, keys: set[str]) -> set[str]:
        """Re-read until none of ``keys`` is pending or the budget is spent; returns the keys still pending."""
        deadline = time.monotonic() + self._verify_budget(ctx, keys)
        while True:
            pending = await self._still_pending(ctx, plan, keys)
            if not pending or time.monotonic() >= deadline:
                return pending
            await asyncio.sleep(ctx.poll_interval)

    def not_confirmed_detail(self, ctx: StepContext, keys: Iterable[str] = ()) -> str:
        keys = list(keys)
        if not (self.uses_exchange or any(self.lags_like_exchange(k) for k in keys)):
            return f"the change did not read back within {self._verify_budget(ctx, keys):g} s"
        return (f"not confirmed yet: Exchange did not show the change within {ctx.verify_timeout:g} s (its writes can "
                "take minutes to read back); a later remediate run re-checks it without applying it again")

    async def verify(self, ctx: StepContext, plan: Plan, result: StepResult) -> bool:
        """Re-read until every applied target reads as changed. Exchange writes lag reads: poll with a budget."""
        keys = {o.key for o in result.outcomes if o.status == "applied"}
        if not keys:
            return result.status in ("nothing_to_do", "skipped")
        pending = await self._poll(ctx, plan, keys)
        if ctx.journal:
            for o in result.outcomes:
                if o.status == "applied" and o.action_id:
                    good = o.key not in pending
                    ctx.journal.record(o.action_id, self.name, result.upn, o.key,
                                       "verified" if good else "verify_failed",
                                       detail="" if good else self.not_confirmed_detail(ctx, [o.key]))
        return not pending

    async def recheck(self, ctx: StepContext, plan: Plan) -> bool:
        """Re-check the earlier runs' unconfirmed changes (``plan.awaiting``) with the verify budget; journal the
        outcome on those actions. Nothing is written to the tenant."""
        if not plan.awaiting:
            return True
        pending = await self._poll(ctx, plan, {k for k, _ in plan.awaiting})
        if ctx.journal:
            for key, action_id in plan.awaiting:
                good = key not in pending
                ctx.journal.record(action_id, self.name, plan.account.upn, key, "verified" if good else "verify_failed",
                                   detail="reads back now (re-checked by a later run)" if good
                                   else self.not_confirmed_detail(ctx, [key]))
        return not pending

    async def undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        if not self.reversible:
            raise IrreversibleError(f"{self.name} cannot be undone: {self.irreversible_reason}")
        return await self._undo(ctx, entry)


def finding_steps(findings: Sequence[Mapping[str, Any]]) -> set[str]:
    out: set[str] = set()
    for f in findings:
        out.update(str(s) for s in (f.get("remediation") or []))
    return out


def now_iso() -> str:
    from scanner.store import iso

    return iso()


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
