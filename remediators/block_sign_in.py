"""block_sign_in: disable the account (Microsoft's optional step 5). ``PATCH /users/{id} {"accountEnabled": false}``.

Undo re-enables it. For accounts synced from on-premises the cloud value is overwritten at the next sync if the
account is enabled in Active Directory: disable it there too (the plan says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, Target, read_account
from remediators._util import seg


class BlockSignIn(BaseStep):
    name: ClassVar[str] = "block_sign_in"
    permissions: ClassVar[tuple[str, ...]] = ("User.EnableDisableAccount.All",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "disables the account"

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        fresh = await read_account(ctx.graph, account.id)
        notes = []
        if fresh.synced:
            notes.append("account synced from on-premises: the next sync re-enables it unless it is disabled in "
                         "Active Directory too")
        if fresh.account_enabled is False:
            return [], notes, None
        return [Target(key="accountEnabled", label="sign-in", before={"accountEnabled": True},
                       after={"accountEnabled": False})], notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.graph.request("PATCH", f"/users/{seg(plan.account.id)}", body={"accountEnabled": False})
        return {"accountEnabled": False}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        await ctx.graph.request("PATCH", f"/users/{seg(entry.get('user_id') or entry['upn'])}",
                                body={"accountEnabled": True})
        return "sign-in re-enabled"
