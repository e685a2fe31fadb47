"""remove_delegates: remove the mailbox delegates the findings name (delegate back-doors, T1098.002).

* FullAccess: ``Remove-MailboxPermission -Identity <mailbox> -User <trustee> -AccessRights FullAccess
  -InheritanceType <the ACE's own>`` (the rights come off the ACE with that inheritance only; for another, Exchange
  warns that the ACE doesn't exist and succeeds without removing anything)
* SendAs: ``Remove-RecipientPermission -Identity <primary SMTP address> -Trustee <trustee> -AccessRights SendAs``
  (its -Identity is a RecipientIdParameter, which takes no UPN)
* SendOnBehalf: ``Set-Mailbox -GrantSendOnBehalfTo <the list without the trustee>`` — over REST there is no
  add/remove form, the whole list is written (graph-api.md §3.4).

Undo re-adds them (``Add-MailboxPermission`` / ``Add-RecipientPermission`` / the old list). Exchange writes lag
reads, so verify polls. Only delegates the findings name; inherited and Deny entries are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import active_findings, as_bool, as_list, evidence_dicts, get_norm
from remediators.remove_forwarding import get_mailbox

RIGHTS = ("FullAccess", "SendAs", "SendOnBehalf")


def _named_delegates(findings: list[Mapping[str, Any]]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for d in evidence_dicts(findings, {"delegate", "delegates", "permission", "permissions"}):
        trustee = get_norm(d, "trustee", "user", "delegate")
        if not isinstance(trustee, str):
            continue
        right = get_norm(d, "access_right", "accessRight", "right", "access_rights", "accessRights", "rights")
        right_s = " ".join(str(x) for x in as_list(right)) if right else None
        item = (trustee.strip(), right_s)
        if item not in out:
            out.append(item)
    return out


def _recipient(mbx: Mapping[str, Any], account: Account) -> str:
    """How the *-RecipientPermission cmdlets name the mailbox: its primary SMTP address."""
    return str(mbx.get("PrimarySmtpAddress") or account.mail or account.upn)


INHERITANCE = ("All", "None", "Children", "Descendents", "SelfAndChildren")  # ActiveDirectorySecurityInheritance


def _inheritance(value: Any) -> str:
    """Get-MailboxPermission's InheritanceType as the parameter takes it; All (the cmdlets' default) when unknown."""
    return next((v for v in INHERITANCE if v.lower() == str(value or "").strip().lower()), "All")


def _right_of(text: str | None) -> set[str]:
    if not text:
        return set(RIGHTS)
    t = text.lower().replace(" ", "")
    return {r for r in RIGHTS if r.lower() in t}


class RemoveDelegates(BaseStep):
    name: ClassVar[str] = "remove_delegates"
    permissions: ClassVar[tuple[str, ...]] = ("Exchange.ManageAsApp",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "removes the mailbox delegates that findings name"
    uses_exchange: ClassVar[bool] = True

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        findings = active_findings(ctx.findings, self.name)
        if not findings:
            return [], [], None
        named = _named_delegates(findings)
        if not named:
            return [], ["the findings name no delegates: review the mailbox permissions by hand"], None
        mbx = await get_mailbox(ctx, account.upn)
        if mbx is None:
            return [], [], "the account has no Exchange Online mailbox"
        full = await ctx.exchange.invoke("Get-MailboxPermission", {"Identity": account.upn})
        # -Identity of the *-RecipientPermission cmdlets is a RecipientIdParameter (name, alias, DN, email address,
        # GUID): no UPN, which need not be one of the mailbox's addresses. The primary SMTP address always is.
        recipient = _recipient(mbx, account)
        send_as = await ctx.exchange.invoke("Get-RecipientPermission", {"Identity": recipient})
        on_behalf = [str(x) for x in as_list(mbx.get("GrantSendOnBehalfTo"))]
        targets: list[Target] = []
        for trustee, right_text in named:
            t = trustee.lower()
            rights = _right_of(right_text)
            if "FullAccess" in rights:
                for r in full:
                    if str(r.get("User") or "").strip().lower() != t or as_bool(r.get("IsInherited")) \
                            or as_bool(r.get("Deny")):
                        continue
                    if "fullaccess" in " ".join(str(x) for x in as_list(r.get("AccessRights"))).lower():
                        targets.append(self._target(trustee, "FullAccess", r.get("User"),
                                                    inheritance=_inheritance(r.get("InheritanceType"))))
            if "SendAs" in rights:
                for r in send_as:
                    if str(r.get("Trustee") or "").strip().lower() == t and not as_bool(r.get("IsInherited")) \
                            and str(r.get("AccessControlType") or "Allow").lower() == "allow":
                        targets.append(self._target(trustee, "SendAs", r.get("Trustee"), recipient=recipient))
            if "SendOnBehalf" in rights:
                for x in on_behalf:
                    if x.strip().lower() == t:
                        targets.append(self._target(trustee, "SendOnBehalf", x, on_behalf))
        uniq = {tg.key: tg for tg in targets}
        return list(uniq.values()), [], None

    @staticmethod
    def _target(trustee: str, right: str, exact: Any, on_behalf: list[str] | None = None,
                inheritance: str | None = None, recipient: str | None = None) -> Target:
        before: dict[str, Any] = {"trustee": str(exact or trustee), "access_right": right}
        if recipient is not None:
            before["recipient"] = recipient  # the mailbox as the *-RecipientPermission cmdlets name it
        if on_behalf is not None:
            before["GrantSendOnBehalfTo"] = list(on_behalf)
        if inheritance is not None:
            before["InheritanceType"] = inheritance
        return Target(key=f"{right}:{str(exact or trustee).lower()}", label=f"{right} for {exact or trustee}",
                      before=before, after={"granted": False})

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        upn, trustee, right = plan.account.upn, target.before["trustee"], target.before["access_right"]
        if right == "FullAccess":
            # The ACE's own inheritance: for any other, Exchange warns "the ACE doesn't exist" and removes nothing.
            await ctx.exchange.invoke("Remove-MailboxPermission", {
                "Identity": upn, "User": trustee, "AccessRights": ["FullAccess"],
                "InheritanceType": _inheritance(target.before.get("InheritanceType")), "Confirm": False})
        elif right == "SendAs":
            await ctx.exchange.invoke("Remove-RecipientPermission", {
                "Identity": target.before.get("recipient") or upn, "Trustee": trustee, "AccessRights": ["SendAs"],
                "Confirm": False})
        else:
            # The whole list is written. Not from a re-read: Exchange writes lag reads, so right after this run
            # removed another trustee a Get-Mailbox may still list it, and writing that back would restore it. The
            # plan's list (checked against the live state just before applying) minus every SendOnBehalf trustee
            # removed so far in this plan is the list Exchange holds now.
            sob = [t for t in plan.targets if t.before.get("access_right") == "SendOnBehalf"]
            done = {str(t.before["trustee"]).strip().lower() for t in sob[:sob.index(target) + 1]}
            keep = [x for x in (str(v) for v in target.before.get("GrantSendOnBehalfTo") or [])
                    if x.strip().lower() not in done]
            await ctx.exchange.invoke("Set-Mailbox", {"Identity": upn, "GrantSendOnBehalfTo": keep or None})
            return {"granted": False, "GrantSendOnBehalfTo": keep}
        return {"granted": False}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        before = entry.get("before") or {}
        upn, trustee, right = entry["upn"], before.get("trustee"), before.get("access_right")
        if not trustee or right not in RIGHTS:
            raise StepError("the journal holds no delegate to restore")
        if right == "FullAccess":
            await ctx.exchange.invoke("Add-MailboxPermission", {
                "Identity": upn, "User": trustee, "AccessRights": ["FullAccess"],
                "InheritanceType": _inheritance(before.get("InheritanceType")), "AutoMapping": False,
                "Confirm": False})
        elif right == "SendAs":
            await ctx.exchange.invoke("Add-RecipientPermission", {
                "Identity": before.get("recipient") or await self._recipient_of(ctx, upn), "Trustee": trustee,
                "AccessRights": ["SendAs"], "Confirm": False})
        else:
            mbx = await get_mailbox(ctx, upn) or {}
            current = [str(v) for v in as_list(mbx.get("GrantSendOnBehalfTo"))]
            if trustee.strip().lower() in (c.strip().lower() for c in current):
                # Still listed: either the removal has not read back yet (Exchange lags writes) or someone added it
                # again. Writing this list back could restore other trustees this run removed, so write nothing.
                raise StepError(f"Exchange still lists {trustee} with SendOnBehalf: the removal may not read back yet "
                                "(Exchange writes lag reads); nothing was written, run undo again in a few minutes")
            current.append(trustee)
            await ctx.exchange.invoke("Set-Mailbox", {"Identity": upn, "GrantSendOnBehalfTo": current})
        return f"{right} for {trustee} restored"

    @staticmethod
    async def _recipient_of(ctx: StepContext, upn: str) -> str:
        """The mailbox's primary SMTP address (journals written before it was recorded hold only the UPN)."""
        mbx = await get_mailbox(ctx, upn)
        if mbx is None:
            raise StepError(f"{upn} has no Exchange Online mailbox any more")
        return str(mbx.get("PrimarySmtpAddress") or upn)
