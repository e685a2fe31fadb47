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
        rows = await ctx.graph.get_all(_assignments_path(), params={"$filter": f"principalId eq '{principal_id}'"})
        return [r for r in rows if str(r.get("principalId", principal_id)).lower() == principal_id.lower()]

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        targets = []
        for a in await self._list(ctx, account.id):
            rd = str(a.get("roleDefinitionId") or "")
            scope = str(a.get("directoryScopeId") or "/")
            name = ROLE_NAMES.get(rd.lower(), rd)
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
        rd = before.get("roleDefinitionId")
        scope = before.get("directoryScopeId") or "/"
        if not principal or not rd:
            raise StepError("the journal holds no role assignment to restore")
        current = await self._list(ctx, principal)
        if any(str(a.get("roleDefinitionId")) == rd and str(a.get("directoryScopeId") or "/") == scope
               for a in current):
            return f"role {before.get('roleName', rd)} is already assigned"
        await ctx.graph.post_json(_assignments_path(), {"principalId": principal, "roleDefinitionId": rd,
                                                        "directoryScopeId": scope})
        return f"role {before.get('roleName', rd)} restored"
