"""unblock_sending: remove the account from the restricted entities (Microsoft's step 4).

Exchange ``Get-BlockedSenderAddress`` / ``Remove-BlockedSenderAddress -SenderAddress``. Microsoft's order puts this
last: unblock only once the account is secured, or the attacker goes back to spamming from it. The runner runs it
last and only when every earlier step succeeded. Irreversible-ish: there is no API to put an account back on the
restricted list (the service does that itself when the account sends spam again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, Target


def _addresses(account: Account) -> list[str]:
    return [a for a in dict.fromkeys(x.lower() for x in (account.mail, account.upn) if x)]


class UnblockSending(BaseStep):
    name: ClassVar[str] = "unblock_sending"
    permissions: ClassVar[tuple[str, ...]] = ("Exchange.ManageAsApp",)
    reversible: ClassVar[bool] = False
    irreversible_reason: ClassVar[str] = ("there is no API to restrict a sender again; the service re-blocks the "
                                          "account if it sends spam again")
    summary: ClassVar[str] = "removes the account from restricted senders, only once the account is secured"
    uses_exchange: ClassVar[bool] = True
    plans_from_live_state: ClassVar[bool] = True

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        rows = await ctx.exchange.invoke("Get-BlockedSenderAddress", {})
        mine = set(_addresses(account))
        targets = []
        for r in rows:
            addr = str(r.get("SenderAddress") or "").strip()
            if addr.lower() in mine:
                targets.append(Target(key=addr.lower(), label=f"restricted sender {addr}",
                                      before={"blocked": True, "Reason": r.get("Reason"),
                                              "CreatedDatetime": r.get("CreatedDatetime")},
                                      after={"blocked": False}, data={"SenderAddress": addr}))
        return targets, [], None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.exchange.invoke("Remove-BlockedSenderAddress", {
            "SenderAddress": target.data["SenderAddress"],
            "Reason": "m365sweep: account remediated (password reset, back-doors removed)"})
        return {"blocked": False}
