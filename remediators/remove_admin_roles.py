"""remove_admin_roles: remove the account's directory role assignments, recording them for restore (optional step 6).

Active assignments: ``GET /roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'`` lists the ones made
to the user directly; each is removed with ``DELETE /roleManagement/directory/roleAssignments/{id}`` and restored by
undo with ``POST /roleManagement/directory/roleAssignments``.

PIM-eligible assignments (Entra ID P2): an attacker who made the account *eligible* for a role can activate it again
after the active one is gone, so they go too. ``GET /roleManagement/directory/roleEligibilitySchedules?$filter=
principalId eq '{id}'`` lists them; each is revoked with ``POST /roleManagement/directory/roleEligibilityScheduleRequests``
``{"action": "adminRemove", principalId, roleDefinitionId, directoryScopeId}`` (201, status "Revoked") and restored by
undo with ``"action": "adminAssign"`` and the original expiry when it is still ahead (graph-api.md §5.2). A tenant
without P2 answers 400 AadPremiumLicenseRequired: it has no eligible assignments, and the plan says so.

Not covered (the plan says so): roles held through a role-assignable group, and Exchange / Defender role groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import seg
from scanner.collectors._util import LICENCE_CODES
from scanner.graph.client import ApiError

try:
    from scanner.collectors.roles import PRIVILEGED_TEMPLATE_IDS as ROLE_NAMES
except ImportError:  # pragma: no cover - the collector defines the table
    ROLE_NAMES = {}

NOT_COVERED = ("roles held through groups and Exchange/Defender role groups are not removed: review them in Entra ID "
               "and the Exchange and Defender portals")
ELIGIBLE_PREFIX = "eligible:"
JUSTIFICATION = "m365sweep: compromised-account response (remove_admin_roles)"


def _assignments_path() -> str:
    return "/roleManagement/directory/roleAssignments"


def _eligibility_path() -> str:
    return "/roleManagement/directory/roleEligibilitySchedules"


def _eligibility_requests_path() -> str:
    return "/roleManagement/directory/roleEligibilityScheduleRequests"


def _no_pim(exc: ApiError) -> bool:
    """A tenant without Entra ID P2 answers the PIM APIs with a licence error: it has no eligible assignments."""
    return exc.code in LICENCE_CODES or (exc.status == 400 and "licen" in (exc.message or "").lower())


def _role_name(row: Mapping[str, Any]) -> str:
    rd = str(row.get("roleDefinitionId") or "")
    definition = row.get("roleDefinition") if isinstance(row.get("roleDefinition"), dict) else {}
    return str(definition.get("displayName") or ROLE_NAMES.get(rd.lower(), rd))


def _expiry(row: Mapping[str, Any]) -> str | None:
    info = row.get("scheduleInfo") if isinstance(row.get("scheduleInfo"), dict) else {}
    exp = info.get("expiration") if isinstance(info.get("expiration"), dict) else {}
    end = exp.get("endDateTime")
    return str(end) if end and str(exp.get("type") or "").lower() == "afterdatetime" else None


def _future(when: str | None) -> bool:
    if not when:
        return False
    try:
        return datetime.fromisoformat(when.replace("Z", "+00:00")) > datetime.now(UTC)
    except ValueError:
        return False


class RemoveAdminRoles(BaseStep):
    name: ClassVar[str] = "remove_admin_roles"
    permissions: ClassVar[tuple[str, ...]] = ("RoleManagement.ReadWrite.Directory",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "removes admin role assignments, recording them for later restore"

    async def _list(self, ctx: StepContext, principal_id: str) -> list[dict[str, Any]]:
        # $expand=roleDefinition names every role (the collector's table only knows the privileged ones).
        rows = await ctx.graph.get_all(_assignments_path(), params={"$filter": f"principalId eq '{principal_id}'",
                                                                    "$expand": "roleDefinition"})
        return [r for r in rows if str(r.get("principalId", principal_id)).lower() == principal_id.lower()]

    async def _list_eligible(self, ctx: StepContext, principal_id: str) -> list[dict[str, Any]]:
        rows = await ctx.graph.get_all(_eligibility_path(), params={"$filter": f"principalId eq '{principal_id}'",
                                                                    "$expand": "roleDefinition"})
        return [r for r in rows if str(r.get("principalId", principal_id)).lower() == principal_id.lower()]

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        targets = []
        notes = [NOT_COVERED]
        for a in await self._list(ctx, account.id):
            rd = str(a.get("roleDefinitionId") or "")
            scope = str(a.get("directoryScopeId") or "/")
            name = _role_name(a)
            where = "tenant-wide" if scope == "/" else f"scope {scope}"
            targets.append(Target(key=str(a["id"]), label=f"role {name} ({where})",
                                  before={"roleDefinitionId": rd, "directoryScopeId": scope,
                                          "principalId": account.id, "roleName": name},
                                  after={"assigned": False}, data={"assignment_id": str(a["id"])}))
        try:
            eligible = await self._list_eligible(ctx, account.id)
        except ApiError as exc:
            if not _no_pim(exc):
                raise
            eligible = []
            notes.append("PIM is not available in this tenant (no Entra ID P2): no eligible role assignments")
        for e in eligible:
            rd = str(e.get("roleDefinitionId") or "")
            scope = str(e.get("directoryScopeId") or "/")
            name = _role_name(e)
            where = "tenant-wide" if scope == "/" else f"scope {scope}"
            end = _expiry(e)
            targets.append(Target(
                key=f"{ELIGIBLE_PREFIX}{e.get('id') or rd + scope}",
                label=f"PIM-eligible role {name} ({where}" + (f", until {end}" if end else "") + ")",
                before={"roleDefinitionId": rd, "directoryScopeId": scope, "principalId": account.id,
                        "roleName": name, "eligible": True, "endDateTime": end},
                after={"eligible": False},
                data={"eligible": True, "roleDefinitionId": rd, "directoryScopeId": scope}))
        return targets, notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        if target.data.get("eligible"):
            body = {"action": "adminRemove", "principalId": plan.account.id,
                    "roleDefinitionId": target.data["roleDefinitionId"],
                    "directoryScopeId": target.data["directoryScopeId"], "justification": JUSTIFICATION}
            try:
                await ctx.graph.post_json(_eligibility_requests_path(), body)
            except ApiError as exc:
                # Revoked meanwhile (by an admin, or it expired): nothing left to remove.
                if exc.status == 400 and exc.code == "RoleAssignmentDoesNotExist":
                    return {"eligible": False, "detail": "already gone"}
                raise
            return {"eligible": False}
        await ctx.graph.delete(f"{_assignments_path()}/{seg(target.data['assignment_id'])}")
        return {"assigned": False}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        before = entry.get("before") or {}
        principal = before.get("principalId") or entry.get("user_id")
        rd = str(before.get("roleDefinitionId") or "")
        scope = before.get("directoryScopeId") or "/"
        if not principal or not rd:
            raise StepError("the journal holds no role assignment to restore")
        name = before.get("roleName", rd)
        if before.get("eligible"):
            return await self._undo_eligible(ctx, principal, rd, scope, name, before.get("endDateTime"))
        if await self._assigned(ctx, principal, rd, scope):
            return f"role {name} is already assigned"
        body = {"@odata.type": "#microsoft.graph.unifiedRoleAssignment", "roleDefinitionId": rd,
                "principalId": principal, "directoryScopeId": scope}
        try:
            created = await ctx.graph.post_json(_assignments_path(), body)
        except ApiError as exc:
            # 400 "A conflicting object ..." is Graph's answer when the assignment exists (made meanwhile elsewhere).
            if exc.status == 400 and await self._assigned(ctx, principal, rd, scope):
                return f"role {name} is already assigned"
            raise
        new_id = created.get("id") if isinstance(created, dict) else None
        old_id = entry.get("target")
        where = "tenant-wide" if scope == "/" else f"scope {scope}"
        if new_id and old_id and new_id != old_id:
            return f"role {name} ({where}) restored as assignment {new_id} (was {old_id})"
        return f"role {name} ({where}) restored" + (f" as assignment {new_id}" if new_id else "")

    async def _assigned(self, ctx: StepContext, principal: str, rd: str, scope: str) -> bool:
        return any(str(a.get("roleDefinitionId") or "").lower() == rd.lower()
                   and str(a.get("directoryScopeId") or "/") == scope for a in await self._list(ctx, principal))

    async def _undo_eligible(self, ctx: StepContext, principal: str, rd: str, scope: str, name: str,
                             end: str | None) -> str:
        where = "tenant-wide" if scope == "/" else f"scope {scope}"

        async def present() -> bool:
            return any(str(e.get("roleDefinitionId") or "").lower() == rd.lower()
                       and str(e.get("directoryScopeId") or "/") == scope
                       for e in await self._list_eligible(ctx, principal))

        if await present():
            return f"PIM-eligible role {name} is already assigned"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The original expiry when it is still ahead; one that has passed meanwhile is not brought back to life as
        # a permanent eligibility: the operator decides.
        if end and not _future(end):
            raise StepError(f"PIM-eligible role {name} expired on {end}: not restored; assign it again in Entra PIM "
                            "if it is still needed")
        expiration = {"type": "afterDateTime", "endDateTime": end} if end else {"type": "noExpiration"}
        body = {"action": "adminAssign", "principalId": principal, "roleDefinitionId": rd, "directoryScopeId": scope,
                "justification": "m365sweep undo: restore the eligibility removed by remove_admin_roles",
                "scheduleInfo": {"startDateTime": now, "expiration": expiration}}
        try:
            await ctx.graph.post_json(_eligibility_requests_path(), body)
        except ApiError as exc:
            if exc.status == 400 and exc.code == "RoleAssignmentExists":
                return f"PIM-eligible role {name} is already assigned"
            raise
        return f"PIM-eligible role {name} ({where}) restored" + (f" until {end}" if end else "")
