"""remove_admin_roles: remove the account's directory role assignments, recording them for restore (optional step 6).

``GET /roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'`` lists the ACTIVE assignments made to
the user directly; each is removed with ``DELETE /roleManagement/directory/roleAssignments/{id}``. The journal keeps
role definition and scope, and undo re-creates the assignment with
``POST /roleManagement/directory/roleAssignments``. Not covered (the plan says so): PIM-eligible assignments, roles
held through a role-assignable group, and Exchange / Defender role groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import seg
from scanner.graph.client import ApiError

try:
    from scanner.collectors.roles import PRIVILEGED_TEMPLATE_IDS as ROLE_NAMES
except ImportError:  # pragma: no cover - the collector defines the table
    ROLE_NAMES = {}

NOT_COVERED = ("PIM-eligible assignments, roles held through groups and Exchange/Defender role groups are not "
               "removed: review them in Entra PIM and the Exchange and Defender portals")


def _assignments_path() -> str:
    return "/roleManagement/directory/roleAssignments"


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

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        targets = []
        for a in await self._list(ctx, account.id):
            rd = str(a.get("roleDefinitionId") or "")
            scope = str(a.get("directoryScopeId") or "/")
            definition = a.get("roleDefinition") if isinstance(a.get("roleDefinition"), dict) else {}
            name = str(definition.get("displayName") or ROLE_NAMES.get(rd.lower(), rd))
            where = "tenant-wide" if scope == "/" else f"scope {scope}"
            targets.append(Target(key=str(a["id"]), label=f"role {name} ({where})",
                                  before={"roleDefinitionId": rd, "directoryScopeId": scope,
                                          "principalId": account.id, "roleName": name},
                                  after={"assigned": False}, data={"assignment_id": str(a["id"])}))
        return targets, [NOT_COVERED], None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
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
