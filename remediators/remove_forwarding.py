"""remove_forwarding: clear mailbox-level forwarding, SMTP and recipient (Microsoft's step 2).

Graph has no API for mailbox forwarding (graph-api.md §3.1): Exchange ``Get-Mailbox`` reads it and
``Set-Mailbox -ForwardingSmtpAddress $null -ForwardingAddress $null -DeliverToMailboxAndForward $false`` clears it
(JSON ``null`` clears a parameter over the admin REST API). ``ForwardingSmtpAddress`` reads back as ``smtp:addr``.
Undo writes the before-image back. Exchange writes lag reads, so verify polls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import as_bool, strip_smtp


async def get_mailbox(ctx: StepContext, upn: str) -> dict[str, Any] | None:
    from scanner.graph.client import ApiError

    try:
        rows = await ctx.exchange.invoke("Get-Mailbox", {"Identity": upn})
    except ApiError as exc:
        if exc.status == 404 or "couldn't be found" in exc.message:
            return None
        raise
    return rows[0] if rows else None


def forwarding_state(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"ForwardingSmtpAddress": strip_smtp(row.get("ForwardingSmtpAddress")),
            "ForwardingAddress": (str(row["ForwardingAddress"]).strip() or None)
            if row.get("ForwardingAddress") else None,
            "DeliverToMailboxAndForward": bool(as_bool(row.get("DeliverToMailboxAndForward")))}


def named_destinations(findings: Any) -> set[str]:
    """Mailbox-forwarding destinations the findings' evidence names (lower case)."""
    out: set[str] = set()
    for f in findings or ():
        ev = f.get("evidence") or {}
        if not isinstance(ev, Mapping):
            continue
        names_step = "remove_forwarding" in (f.get("remediation") or ())
        if not (names_step or str(f.get("detector", "")).startswith("mail.mailbox")):
            continue
        for key in ("destination", "forwarding_smtp_address", "forwarding_address", "address"):
            v = ev.get(key)
            if isinstance(v, str) and v.strip():
                out.add((strip_smtp(v) or v).strip().lower())
    return out


class RemoveForwarding(BaseStep):
    name: ClassVar[str] = "remove_forwarding"
    permissions: ClassVar[tuple[str, ...]] = ("Exchange.ManageAsApp",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "clears mailbox forwarding (SMTP and recipient)"
    uses_exchange: ClassVar[bool] = True
    plans_from_live_state: ClassVar[bool] = True

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        row = await get_mailbox(ctx, account.upn)
        if row is None:
            return [], [], "the account has no Exchange Online mailbox"
        before = forwarding_state(row)
        if not before["ForwardingSmtpAddress"] and not before["ForwardingAddress"]:
            return [], [], None
        dest = before["ForwardingAddress"] or before["ForwardingSmtpAddress"]
        if ctx.only_named:
            named = named_destinations(ctx.findings)
            live = {str(v).strip().lower() for v in (before["ForwardingAddress"], before["ForwardingSmtpAddress"]) if v}
            if not live & named:
                # Forwarding changed since the scan (or the findings name none): not what the evidence showed, so
                # auto mode leaves it for a human instead of clearing a destination nobody flagged.
                return [], [], (f"forwarding now points to {dest}, which the scan's findings do not name: left for "
                                "a human to review")
        return [Target(key="mailbox_forwarding", label=f"mailbox forwarding to {dest}", before=before,
                       after={"ForwardingSmtpAddress": None, "ForwardingAddress": None,
                              "DeliverToMailboxAndForward": False})], [], None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.exchange.invoke("Set-Mailbox", {"Identity": plan.account.upn, "ForwardingSmtpAddress": None,
                                                  "ForwardingAddress": None, "DeliverToMailboxAndForward": False})
        return dict(target.after)

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        before = entry.get("before") or {}
        upn = entry["upn"]
        params: dict[str, Any] = {"Identity": upn,
                                  "DeliverToMailboxAndForward": bool(before.get("DeliverToMailboxAndForward"))}
        if before.get("ForwardingSmtpAddress"):
            params["ForwardingSmtpAddress"] = before["ForwardingSmtpAddress"]
        if before.get("ForwardingAddress"):
            params["ForwardingAddress"] = before["ForwardingAddress"]
        if len(params) == 2:
            raise StepError("the journal holds no forwarding to restore")
        await ctx.exchange.invoke("Set-Mailbox", params)
        dest = before.get("ForwardingAddress") or before.get("ForwardingSmtpAddress")
        return f"forwarding to {dest} restored"
