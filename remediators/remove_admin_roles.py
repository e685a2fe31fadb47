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

Roles held through a role-assignable group (an attacker with Privileged Role Administrator can add the account to a
group that holds Global Administrator; removing direct assignments leaves that, graph-api.md §5.1):
``GET /users/{id}/transitiveMemberOf/microsoft.graph.group`` lists the account's groups; for each role-assignable one
the group's own active and PIM-eligible assignments are read (``principalId eq '{group id}'``), and ``GET /groups/{id}
/members/microsoft.graph.user`` tells whether the account is a DIRECT member. Each such group is one target
(``group:{group id}``): ``DELETE /groups/{id}/members/{user id}/$ref`` removes the membership, undo adds it back with
``POST /groups/{id}/members/$ref`` ``{"@odata.id": ".../directoryObjects/{user id}"}`` (already a member: nothing to
do). Both need GroupMember.ReadWrite.All and, because the group is role-assignable, RoleManagement.ReadWrite.Directory
(group-delete-members / group-post-members). An account that holds the role only through a nested group is named in a
note with the group chain: the step never removes a group from another group (that would change other people's
access). Entra does not allow groups inside a role-assignable group today (groups-concept), so that path is defensive.
Groups or memberships the app may not read (403) become a note naming the permission, never a silent "no groups".

Exchange Online role groups (Organization Management, Discovery Management, a custom group holding Mailbox Import
Export ...): Exchange admin rights that no Entra role shows (detections.md §D1). ``Get-RoleGroup`` lists them and
``Get-RoleGroupMember -Identity <group>`` their members; each group the account is a member of (matched by
ExternalDirectoryObjectId, else WindowsLiveID / PrimarySmtpAddress) is one target (``exorolegroup:{group}``):
``Remove-RoleGroupMember -Identity <group> -Member <upn> -BypassSecurityGroupManagerCheck -Confirm:$false`` removes
the membership, undo adds it back with ``Add-RoleGroupMember`` (already a member: nothing to do). Both need the
Exchange role "Role Management" (Organization Management). Exchange writes lag reads (graph-api.md §3.2), so the
step polls for those targets like the other Exchange steps (``exchange_key_prefixes``). Role groups that cannot be read are named in the plan
(a refusal names the Exchange role), never read as "not a member".

Management roles assigned to the account directly, outside any role group (``New-ManagementRoleAssignment -Role
"Mailbox Import Export" -User <upn>``), are read with ``Get-ManagementRoleAssignment -RoleAssignee <upn>
-AssignmentMethod Direct``: one target per enabled one (``exoroleassignment:{name}``), removed with
``Remove-ManagementRoleAssignment -Identity <name>``; undo runs ``New-ManagementRoleAssignment -Name <name> -Role
<role> -User <upn>`` (with its custom recipient scope, if it had one).

Not covered (the plan says so): Defender / Purview role groups, nested group memberships (named, not removed), and
Exchange role-group membership held through a mail-enabled group inside the role group (each one named in a note with
the group and the cmdlet that removes the account from it, read through ``/users/{id}/transitiveMemberOf``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import seg
from scanner.collectors._util import LICENCE_CODES, as_list, as_str, is_exchange_refusal, parse_dt
from scanner.collectors.exchange_role_groups import role_name
from scanner.graph.client import ApiError
from scanner.permissions import ROLE_GROUPS_READ_ROLE, ROLE_GROUPS_WRITE_ROLE

try:
    from scanner.collectors.roles import PRIVILEGED_TEMPLATE_IDS as ROLE_NAMES
except ImportError:  # pragma: no cover - the collector defines the table
    ROLE_NAMES = {}

NOT_COVERED = ("Defender / Purview role groups are not removed, nor roles held through a nested group membership (in "
               "Entra, or an Exchange role group holding a mail-enabled group): review them in Entra ID and the "
               "Exchange and Defender portals")
ELIGIBLE_PREFIX = "eligible:"
GROUP_PREFIX = "group:"
EXO_GROUP_PREFIX = "exorolegroup:"
EXO_ASSIGNMENT_PREFIX = "exoroleassignment:"
GROUP_WRITE = "GroupMember.ReadWrite.All"
ROLE_WRITE = "RoleManagement.ReadWrite.Directory"
ALREADY_MEMBER = "one or more added object references already exist"
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
    d = parse_dt(when)
    return d is not None and d > datetime.now(UTC)


KINDS = frozenset({"active", "eligible", "group", "exchange", "exchange_assignment"})


def _kind(key: str) -> str:
    """Which kind of assignment a target key is (direct assignment keys are Graph's ids, without a prefix)."""
    for prefix, kind in ((EXO_GROUP_PREFIX, "exchange"), (EXO_ASSIGNMENT_PREFIX, "exchange_assignment"),
                         (GROUP_PREFIX, "group"), (ELIGIBLE_PREFIX, "eligible")):
        if key.startswith(prefix):
            return kind
    return "active"


def _where(scope: str) -> str:
    return "tenant-wide" if scope == "/" else f"scope {scope}"


def _group_name(g: Mapping[str, Any]) -> str:
    return str(g.get("displayName") or g.get("id"))


def _chain(names: list[str]) -> str:
    return " > ".join(f"'{n}'" for n in names)


class RemoveAdminRoles(BaseStep):
    name: ClassVar[str] = "remove_admin_roles"
    permissions: ClassVar[tuple[str, ...]] = (ROLE_WRITE, GROUP_WRITE)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "removes admin role assignments, recording them for later restore"
    # Exchange role-group removals lag their read-back like every Exchange write: verify polls with the full budget
    # for them; the Graph targets (assignments, eligibility, groups) keep the short directory budget.
    exchange_key_prefixes: ClassVar[tuple[str, ...]] = (EXO_GROUP_PREFIX, EXO_ASSIGNMENT_PREFIX)

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
        targets, notes = await self._read_targets(ctx, account, KINDS)
        return targets, [NOT_COVERED, *notes], None

    async def _still_pending(self, ctx: StepContext, plan: Plan, keys: set[str]) -> set[str]:
        # Re-read only the kinds of assignment still pending: a verify poll waiting on one Exchange role group does
        # not re-read every Entra assignment, eligibility, group and role group each time.
        targets, _notes = await self._read_targets(ctx, plan.account, {_kind(k) for k in keys})
        return {t.key for t in targets} & keys

    async def _read_targets(self, ctx: StepContext, account: Account,
                            kinds: set[str] | frozenset[str]) -> tuple[list[Target], list[str]]:
        targets: list[Target] = []
        notes: list[str] = []
        if "active" in kinds:
            targets += self._active_targets(account, await self._list(ctx, account.id))
        if "eligible" in kinds:
            eligible, note = await self._eligible_or_note(ctx, account.id)
            targets += self._eligible_targets(account, eligible)
            notes += [note] if note else []
        if "group" in kinds:
            group_targets, group_notes = await self._group_targets(ctx, account)
            targets += group_targets
            notes += group_notes
        if "exchange" in kinds:
            exo_targets, exo_notes = await self._exchange_role_group_targets(ctx, account)
            targets += exo_targets
            notes += exo_notes
        if "exchange_assignment" in kinds:
            a_targets, a_notes = await self._exchange_assignment_targets(ctx, account)
            targets += a_targets
            notes += a_notes
        return targets, notes

    @staticmethod
    def _active_targets(account: Account, rows: list[dict[str, Any]]) -> list[Target]:
        out = []
        for a in rows:
            rd = str(a.get("roleDefinitionId") or "")
            scope = str(a.get("directoryScopeId") or "/")
            name = _role_name(a)
            out.append(Target(key=str(a["id"]), label=f"role {name} ({_where(scope)})",
                              before={"roleDefinitionId": rd, "directoryScopeId": scope,
                                      "principalId": account.id, "roleName": name},
                              after={"assigned": False}, data={"assignment_id": str(a["id"])}))
        return out

    async def _eligible_or_note(self, ctx: StepContext, principal_id: str) -> tuple[list[dict[str, Any]], str | None]:
        try:
            return await self._list_eligible(ctx, principal_id), None
        except ApiError as exc:
            if _no_pim(exc):
                return [], "PIM is not available in this tenant (no Entra ID P2): no eligible role assignments"
            # The active roles still go; the operator is told what could not be checked.
            return [], (f"PIM-eligible role assignments could not be read ({exc.short()}): review them in Entra PIM, "
                        "an eligible role can be activated again")

    @staticmethod
    def _eligible_targets(account: Account, rows: list[dict[str, Any]]) -> list[Target]:
        out = []
        for e in rows:
            rd = str(e.get("roleDefinitionId") or "")
            scope = str(e.get("directoryScopeId") or "/")
            name = _role_name(e)
            end = _expiry(e)
            out.append(Target(
                key=f"{ELIGIBLE_PREFIX}{e.get('id') or rd + scope}",
                label=f"PIM-eligible role {name} ({_where(scope)}" + (f", until {end}" if end else "") + ")",
                before={"roleDefinitionId": rd, "directoryScopeId": scope, "principalId": account.id,
                        "roleName": name, "eligible": True, "endDateTime": end},
                after={"eligible": False},
                data={"eligible": True, "roleDefinitionId": rd, "directoryScopeId": scope}))
        return out

    # ---- roles through role-assignable groups ----------------------------------------------------------------------
    async def _group_roles(self, ctx: StepContext, group_id: str) -> list[str]:
        """Names of the roles assigned to the group (active; PIM-eligible ones marked), sorted."""
        names = {_role_name(a) + ("" if str(a.get("directoryScopeId") or "/") == "/"
                                  else f" (scope {a.get('directoryScopeId')})")
                 for a in await self._list(ctx, group_id)}
        try:
            names |= {f"{_role_name(e)} (PIM-eligible)" for e in await self._list_eligible(ctx, group_id)}
        except ApiError as exc:
            if not _no_pim(exc):
                raise
        return sorted(names)

    async def _user_members(self, ctx: StepContext, group_id: str) -> set[str]:
        rows = await ctx.graph.get_all(f"/groups/{seg(group_id)}/members/microsoft.graph.user",
                                       params={"$select": "id"})
        return {str(r.get("id") or "").lower() for r in rows}

    async def _group_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str]]:
        """One target per role-assignable group holding a role that the account is a DIRECT member of; a note per
        group it reaches only through nesting (with the chain), or when groups cannot be read."""
        try:
            groups = await ctx.graph.get_all(f"/users/{seg(account.id)}/transitiveMemberOf/microsoft.graph.group",
                                             params={"$select": "id,displayName,isAssignableToRole"})
        except ApiError as exc:
            if not exc.is_permission:
                raise
            return [], [f"the account's group memberships could not be read ({exc.short()}): roles held through "
                        "role-assignable groups were not checked; the app needs User.Read.All"]
        mine = {str(g.get("id") or "").lower(): g for g in groups if g.get("id")}
        targets: list[Target] = []
        notes: list[str] = []
        uid = account.id.lower()
        # isAssignableToRole None: an app that may list memberships but not read groups sees ids only — check them.
        for _key, g in sorted(mine.items()):
            if g.get("isAssignableToRole") is False:
                continue
            try:
                roles = await self._group_roles(ctx, g["id"])
                if not roles:
                    continue
                direct = uid in await self._user_members(ctx, g["id"])
                chain = [] if direct else await self._nesting_chain(ctx, g["id"], mine, uid)
            except ApiError as exc:
                if not exc.is_permission:
                    raise
                notes.append(f"role-assignable group '{_group_name(g)}' could not be read ({exc.short()}): whether "
                             f"the account holds a role through it is unknown; the app needs {GROUP_WRITE} "
                             f"(or GroupMember.Read.All) and {ROLE_WRITE}")
                continue
            name = _group_name(g)
            granted = ", ".join(roles)
            if direct:
                targets.append(Target(
                    key=f"{GROUP_PREFIX}{g['id']}",
                    label=f"member of role-assignable group '{name}' (grants {granted})",
                    before={"groupId": g["id"], "groupName": name, "roles": roles, "userId": account.id},
                    after={"member": False}, data={"group_id": g["id"]}))
            else:
                path = _chain([name, *chain]) if chain else f"'{name}' (through a group the app cannot see)"
                notes.append(f"the account holds {granted} through nested group membership {path}: not removed "
                             "(the step never takes a group out of another group, which would change other members' "
                             "access); remove the account from the innermost group, or the nesting, by hand")
        return targets, notes

    async def _nesting_chain(self, ctx: StepContext, top: str, mine: Mapping[str, Mapping[str, Any]],
                             uid: str) -> list[str]:
        """Group names from just inside ``top`` down to a group the account is a direct member of (breadth first,
        through the account's own groups only); [] when no such path is visible."""
        queue: list[tuple[str, list[str]]] = [(top, [])]
        seen = {top.lower()}
        while queue:
            gid, path = queue.pop(0)
            rows = await ctx.graph.get_all(f"/groups/{seg(gid)}/members/microsoft.graph.group",
                                           params={"$select": "id,displayName"})
            for r in rows:
                child = str(r.get("id") or "").lower()
                if child not in mine or child in seen:
                    continue
                seen.add(child)
                step = [*path, _group_name(mine[child] if mine[child].get("displayName") else r)]
                if uid in await self._user_members(ctx, child):
                    return step
                queue.append((child, step))
        return []

    # ---- Exchange Online role groups ------------------------------------------------------------------------------
    async def _exchange_role_group_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str]]:
        """One target per Exchange role group the account is a member of; notes for groups that cannot be read."""
        try:
            groups = await ctx.exchange.invoke("Get-RoleGroup", {"ResultSize": "Unlimited"})
        except ApiError as exc:
            if not is_exchange_refusal(exc):
                raise
            return [], [f"Exchange role groups could not be read ({exc.short()}): whether the account is a member of "
                        f"one (Exchange admin rights) is unknown; the app needs {ROLE_GROUPS_READ_ROLE}"]
        targets: list[Target] = []
        unread: list[str] = []
        via: list[tuple[str, str, str]] = []  # (role group, group inside it, its Entra id) the account is not in itself
        upn = account.upn.lower()
        for g in sorted(groups, key=lambda x: str(x.get("Name") or "").lower()):
            name = as_str(g.get("Name")) or as_str(g.get("Identity"))
            if name is None:
                continue
            ident = as_str(g.get("Guid")) or as_str(g.get("Identity")) or name
            try:
                members = await ctx.exchange.invoke("Get-RoleGroupMember", {"Identity": ident,
                                                                            "ResultSize": "Unlimited"})
            except ApiError as exc:
                if exc.is_not_found:
                    continue  # deleted since it was listed
                if not is_exchange_refusal(exc):
                    raise
                unread.append(f"'{name}' ({exc.short()})")
                continue
            if not any(_is_account(m, account.id, upn) for m in members):
                for m in members:
                    gid = (as_str(m.get("ExternalDirectoryObjectId")) or "").lower() if isinstance(m, Mapping) else ""
                    if gid and "group" in str(m.get("RecipientTypeDetails") or m.get("RecipientType") or "").lower():
                        via.append((name, as_str(m.get("DisplayName")) or as_str(m.get("Name")) or gid, gid))
                continue
            roles = [r for r in (role_name(x) for x in as_list(g.get("Roles"))) if r]
            shown = ", ".join(roles[:6]) + (f" and {len(roles) - 6} more" if len(roles) > 6 else "")
            targets.append(Target(
                key=f"{EXO_GROUP_PREFIX}{name}",
                label=f"member of Exchange role group '{name}'" + (f" (roles {shown})" if roles else ""),
                before={"exchangeRoleGroup": name, "roleGroupIdentity": ident, "roles": roles,
                        "member": account.upn, "userId": account.id},
                after={"member": False}, data={"exchange_role_group": ident, "member": account.upn}))
        notes = await self._via_group_notes(ctx, account, via)
        if unread:
            notes.append(f"members of {len(unread)} Exchange role group(s) could not be read: {', '.join(unread[:10])}"
                         f"; whether the account is a member of them is unknown (the app needs "
                         f"{ROLE_GROUPS_READ_ROLE})")
        if targets:
            notes.append(f"removing Exchange role-group membership needs {ROLE_GROUPS_WRITE_ROLE}")
        return targets, notes

    async def _exchange_assignment_targets(self, ctx: StepContext, account: Account
                                           ) -> tuple[list[Target], list[str]]:
        """One target per management role assigned to the account directly (New-ManagementRoleAssignment -User):
        ``Get-ManagementRoleAssignment -RoleAssignee <upn> -AssignmentMethod Direct``."""
        try:
            rows = await ctx.exchange.invoke("Get-ManagementRoleAssignment", {
                "RoleAssignee": account.upn, "AssignmentMethod": ["Direct"]})
        except ApiError as exc:
            if exc.is_not_found:
                return [], []  # not an Exchange recipient: no Exchange role can be assigned to it
            if not is_exchange_refusal(exc):
                raise
            return [], [f"Exchange management role assignments could not be read ({exc.short()}): whether a role is "
                        f"assigned to the account directly is unknown; the app needs {ROLE_GROUPS_READ_ROLE}"]
        targets: list[Target] = []
        for r in sorted(rows, key=lambda x: str(x.get("Name") or "").lower()):
            name = as_str(r.get("Name")) or as_str(r.get("Identity"))
            role = role_name(r.get("Role"))
            if name is None or role is None or str(r.get("Enabled")).strip().lower() == "false":
                continue
            if (as_str(r.get("RoleAssigneeType")) or "User").lower() != "user":
                continue  # through a role group (its own target) or a policy: not a direct assignment
            scope = as_str(r.get("CustomRecipientWriteScope"))
            targets.append(Target(
                key=f"{EXO_ASSIGNMENT_PREFIX}{name}",
                label=f"Exchange management role '{role}' assigned directly (assignment '{name}')",
                before={"exchangeRoleAssignment": name, "role": role, "member": account.upn, "userId": account.id,
                        "customRecipientWriteScope": scope},
                after={"assigned": False}, data={"exchange_role_assignment": name}))
        notes = [f"removing a directly assigned Exchange management role needs {ROLE_GROUPS_WRITE_ROLE}"] \
            if targets else []
        return targets, notes

    async def _via_group_notes(self, ctx: StepContext, account: Account, via: list[tuple[str, str, str]]) -> list[str]:
        """A note for each Exchange role group the account holds through a mail-enabled group inside it: named, not
        removed (the step never edits a group other people rely on)."""
        if not via:
            return []
        try:
            groups = await ctx.graph.get_all(f"/users/{seg(account.id)}/transitiveMemberOf/microsoft.graph.group",
                                             params={"$select": "id,displayName"})
        except ApiError as exc:
            if not exc.is_permission:
                raise
            names = sorted({rg for rg, _g, _id in via})
            return [f"Exchange role group(s) {', '.join(repr(n) for n in names)} hold mail-enabled groups and the "
                    f"account's group memberships could not be read ({exc.short()}): whether it holds them through a "
                    "group is unknown; the app needs GroupMember.Read.All"]
        mine = {str(g.get("id") or "").lower() for g in groups}
        return [f"the account holds Exchange role group '{rg}' through mail-enabled group '{gname}': not removed (the "
                f"step never edits a group other people rely on); remove the account from '{gname}' (or the group "
                f"inside it the account is in) by hand: Remove-DistributionGroupMember -Identity '{gname}' -Member "
                f"'{account.upn}' -BypassSecurityGroupManagerCheck"
                for rg, gname, gid in via if gid in mine]

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        if target.data.get("exchange_role_assignment"):
            try:
                await ctx.exchange.invoke("Remove-ManagementRoleAssignment", {
                    "Identity": target.data["exchange_role_assignment"], "Confirm": False})
            except ApiError as exc:
                if exc.is_not_found or "couldn't be found" in (exc.message or ""):
                    return {"assigned": False, "detail": "already gone"}  # removed meanwhile (by an admin)
                raise
            return {"assigned": False}
        if target.data.get("exchange_role_group"):
            try:
                await ctx.exchange.invoke("Remove-RoleGroupMember", {
                    "Identity": target.data["exchange_role_group"], "Member": target.data["member"],
                    "BypassSecurityGroupManagerCheck": True, "Confirm": False})
            except ApiError as exc:
                if _not_a_member(exc):  # removed meanwhile (by an admin): nothing left to remove
                    return {"member": False, "detail": "already not a member"}
                raise
            return {"member": False}
        if target.data.get("group_id"):
            gid = str(target.data["group_id"])
            try:
                await ctx.graph.delete(f"/groups/{seg(gid)}/members/{seg(plan.account.id)}/$ref")
            except ApiError as exc:
                if exc.is_not_found:  # removed meanwhile (by an admin): nothing left to remove
                    return {"member": False, "detail": "already not a member"}
                raise
            return {"member": False}
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
        if before.get("exchangeRoleAssignment"):
            return await self._undo_exchange_assignment(ctx, before)
        if before.get("exchangeRoleGroup"):
            return await self._undo_exchange_role_group(ctx, before)
        if before.get("groupId"):
            return await self._undo_group(ctx, before, entry)
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
        where = _where(scope)
        if new_id and old_id and new_id != old_id:
            return f"role {name} ({where}) restored as assignment {new_id} (was {old_id})"
        return f"role {name} ({where}) restored" + (f" as assignment {new_id}" if new_id else "")

    async def _assigned(self, ctx: StepContext, principal: str, rd: str, scope: str) -> bool:
        return any(str(a.get("roleDefinitionId") or "").lower() == rd.lower()
                   and str(a.get("directoryScopeId") or "/") == scope for a in await self._list(ctx, principal))

    async def _undo_eligible(self, ctx: StepContext, principal: str, rd: str, scope: str, name: str,
                             end: str | None) -> str:
        where = _where(scope)

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

    async def _undo_group(self, ctx: StepContext, before: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
        gid = str(before["groupId"])
        uid = str(before.get("userId") or entry.get("user_id") or "")
        if not uid:
            raise StepError("the journal holds no account to add back to the group")
        name = before.get("groupName") or gid
        body = {"@odata.id": f"{ctx.graph.base_url}/directoryObjects/{uid}"}
        try:
            await ctx.graph.post_json(f"/groups/{seg(gid)}/members/$ref", body)
        except ApiError as exc:
            # 400 "One or more added object references already exist ..." (group-post-members): added meanwhile.
            if exc.status == 400 and ALREADY_MEMBER in (exc.message or "").lower():
                return f"already a member of group '{name}'"
            raise
        roles = ", ".join(before.get("roles") or ())
        return f"membership of group '{name}' restored" + (f" (grants {roles})" if roles else "")

    async def _undo_exchange_role_group(self, ctx: StepContext, before: Mapping[str, Any]) -> str:
        name = str(before["exchangeRoleGroup"])
        member = before.get("member")
        if not member:
            raise StepError("the journal holds no account to add back to the role group")
        try:
            await ctx.exchange.invoke("Add-RoleGroupMember", {
                "Identity": before.get("roleGroupIdentity") or name, "Member": member,
                "BypassSecurityGroupManagerCheck": True, "Confirm": False})
        except ApiError as exc:
            if "already a member" in (exc.message or "").lower() or "MemberAlreadyExists" in (exc.message or ""):
                return f"already a member of Exchange role group '{name}'"
            raise
        return f"membership of Exchange role group '{name}' restored"


    async def _undo_exchange_assignment(self, ctx: StepContext, before: Mapping[str, Any]) -> str:
        name, role, member = str(before["exchangeRoleAssignment"]), before.get("role"), before.get("member")
        if not role or not member:
            raise StepError("the journal holds no role or account to assign again")
        params: dict[str, Any] = {"Name": name, "Role": role, "User": member}
        if before.get("customRecipientWriteScope"):
            params["CustomRecipientWriteScope"] = before["customRecipientWriteScope"]
        try:
            await ctx.exchange.invoke("New-ManagementRoleAssignment", params)
        except ApiError as exc:
            if "already exists" in (exc.message or "").lower():
                return f"Exchange management role '{role}' is already assigned (assignment '{name}')"
            raise
        return f"Exchange management role '{role}' assigned again (assignment '{name}')"


def _not_a_member(exc: ApiError) -> bool:
    text = exc.message or ""
    return "MemberNotFound" in text or "isn't a member" in text or "is not a member" in text


def _is_account(m: Any, user_id: str, upn: str) -> bool:
    if not isinstance(m, Mapping):
        return False
    if (as_str(m.get("ExternalDirectoryObjectId")) or "").lower() == user_id.lower():
        return True
    return any((as_str(m.get(k)) or "").lower() == upn
               for k in ("WindowsLiveID", "PrimarySmtpAddress", "UserPrincipalName"))
