"""disable_email_apps: turn off MAPI, EWS, ActiveSync, IMAP, POP and Outlook on the web (optional step 5).

Exchange ``Get-CASMailbox`` / ``Set-CASMailbox``. All default to ``$true``; ``OWAEnabled=$false`` also blocks the new
Outlook for Windows. The before-values are journaled and undo writes exactly those back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import as_bool

PROTOCOLS = ("MAPIEnabled", "EwsEnabled", "ActiveSyncEnabled", "ImapEnabled", "PopEnabled", "OWAEnabled")


class DisableEmailApps(BaseStep):
    name: ClassVar[str] = "disable_email_apps"
    permissions: ClassVar[tuple[str, ...]] = ("Exchange.ManageAsApp",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "turns off MAPI, EWS, ActiveSync, IMAP, POP and Outlook on the web"
    uses_exchange: ClassVar[bool] = True
    plans_from_live_state: ClassVar[bool] = True

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        from scanner.graph.client import ApiError

        try:
            rows = await ctx.exchange.invoke("Get-CASMailbox", {"Identity": account.upn})
        except ApiError as exc:
            if exc.status == 404 or "couldn't be found" in exc.message:
                return [], [], "the account has no Exchange Online mailbox"
            raise
        if not rows:
            return [], [], "the account has no Exchange Online mailbox"
        row = rows[0]
        # An unset value means the default, which is enabled.
        before = {p: as_bool(row.get(p)) is not False for p in PROTOCOLS}
        if not any(before.values()):
            return [], [], None
        on = [p for p, v in before.items() if v]
        return [Target(key="protocols", label="mail protocols: " + ", ".join(on), before=before,
                       after={p: False for p in PROTOCOLS})], [], None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.exchange.invoke("Set-CASMailbox", {"Identity": plan.account.upn, **{p: False for p in PROTOCOLS}})
        return {p: False for p in PROTOCOLS}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        before = entry.get("before") or {}
        values = {p: bool(before[p]) for p in PROTOCOLS if p in before}
        if not values:
            raise StepError("the journal holds no protocol settings to restore")
        await ctx.exchange.invoke("Set-CASMailbox", {"Identity": entry["upn"], **values})
        return "protocol settings restored: " + ", ".join(f"{k}={v}" for k, v in values.items())
