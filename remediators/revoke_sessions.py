"""revoke_sessions: invalidate the account's refresh tokens and session cookies (containment, before step 1).

``POST /users/{id}/revokeSignInSessions``. Microsoft documents 204 but the service answers 200
``{"value": true}`` (graph-api.md §7): any 2xx is success. Already-issued access tokens live until they expire (up to
about an hour); guests are not affected. There is no before-state to restore, so the step is irreversible.

Idempotency: the live state cannot say "sessions were revoked after the compromise was seen", so the plan is empty
when the journal shows a revocation applied after the scan that produced the evidence (``ctx.reference_time``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, Target
from remediators._util import seg


class RevokeSessions(BaseStep):
    name: ClassVar[str] = "revoke_sessions"
    permissions: ClassVar[tuple[str, ...]] = ("User.RevokeSessions.All",)
    reversible: ClassVar[bool] = False
    irreversible_reason: ClassVar[str] = "revoked sessions cannot be restored; the user signs in again"
    summary: ClassVar[str] = "invalidates refresh tokens and sessions"

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        notes = []
        if account.user_type == "Guest":
            notes.append("guest account: revoking sessions in this tenant does not affect the home tenant")
        done = ctx.done_since_reference.get(self.name)
        if done:
            return [], [f"sessions already revoked at {done} (after the scan that flagged the account)"], None
        return [Target(key="sessions", label="sign-in sessions and refresh tokens",
                       before={"sessions": "valid"}, after={"sessions": "revoked"})], notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.graph.request("POST", f"/users/{seg(plan.account.id)}/revokeSignInSessions")
        return {"sessions": "revoked"}

    async def _still_pending(self, ctx: StepContext, plan: Plan, keys: set[str]) -> set[str]:
        # Nothing to read back: a 2xx is the service's acknowledgement.
        return set()
