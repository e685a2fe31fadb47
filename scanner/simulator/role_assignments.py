"""Exchange Online management role assignments: ``Get-ManagementRoleAssignment``, ``New-ManagementRoleAssignment`` and
``Remove-ManagementRoleAssignment``, in the shapes Exchange prints.

A *direct* assignment (``New-ManagementRoleAssignment -Role "Mailbox Import Export" -User adele``) gives one account a
management role without any role group: Exchange admin rights that neither Entra roles nor Get-RoleGroupMember show
(detections.md §D1 "Exchange RBAC ... new management role assignments"). The tenant starts with none; tests add them
with :func:`assign` (or the cmdlet). The role groups' own assignments (``<Role>-<Role group>``, RoleAssigneeType
RoleGroup) are printed too, from ``t.role_groups`` (role_groups.py), so a client that does not filter sees them.

Shapes (``Get-ManagementRoleAssignment | Format-List``): ``Name`` / ``Identity`` (``<Role>-<Assignee>`` unless -Name
was given), ``Role``, ``RoleAssigneeType`` ("User", "RoleGroup", "SecurityGroup", ...), ``RoleAssigneeName``,
``RoleAssignee``, ``User`` and ``EffectiveUserName`` (the assignee's name), ``AssignmentMethod`` ("Direct"),
``RoleAssignmentDelegationType`` ("Regular"), ``RecipientWriteScope`` / ``ConfigWriteScope``,
``CustomRecipientWriteScope``, ``Enabled``, ``Guid``, ``WhenCreated`` / ``WhenChanged`` (+ UTC).
Parameters: ``-Identity``, ``-RoleAssigneeType``, ``-Role``, ``-Enabled``, and ``-RoleAssignee <user> -AssignmentMethod
Direct`` (what AssignmentMethod needs). ``New-`` with an existing name: "already exists" (400); ``Remove-`` / ``Get-
-Identity`` of an unknown one: ManagementObjectNotFoundException (404).
"""

from __future__ import annotations

import uuid
from typing import Any

from .model import Tenant, User, iso

CMDLETS = ("Get-ManagementRoleAssignment", "New-ManagementRoleAssignment", "Remove-ManagementRoleAssignment")


def state(t: Tenant) -> list[dict[str, Any]]:
    cur = getattr(t, "exo_role_assignments", None)  # (t.role_assignments are Entra's directory role assignments)
    if cur is None:
        cur = []
        t.exo_role_assignments = cur  # type: ignore[attr-defined]
    return cur


def assign(t: Tenant, role: str, upn: str, *, name: str | None = None) -> dict[str, Any]:
    """Tests: a direct assignment of ``role`` to the account (as New-ManagementRoleAssignment -User would)."""
    rows = run(t, "New-ManagementRoleAssignment", {"Role": role, "User": upn, **({"Name": name} if name else {})})
    return rows[0]


def assignments_of(t: Tenant, upn: str) -> list[str]:
    """Roles directly assigned to the account (tests)."""
    u = t.find_user(upn)
    return sorted(a["Role"] for a in state(t) if u is not None and a["user"] == u.id)


def _roles(t: Tenant) -> set[str]:
    from . import role_groups

    known = {r.lower() for g in role_groups.state(t) for r in g.get("Roles", [])}
    return known | {"mailbox import export", "mailbox search", "applicationimpersonation", "role management",
                    "mail recipients", "transport rules", "view-only configuration", "user options"}


def _row(t: Tenant, a: dict[str, Any]) -> dict[str, Any] | None:
    u = t.find_user(a["user"])
    if u is None:
        return None
    return {
        "Name": a["Name"], "Identity": a["Name"], "Role": a["Role"], "RoleAssigneeType": "User",
        "RoleAssigneeName": u.mailNickname, "RoleAssignee": u.mailNickname, "User": u.mailNickname,
        "EffectiveUserName": u.mailNickname, "AssignmentMethod": "Direct", "AssignmentChain": None,
        "RoleAssignmentDelegationType": "Regular", "RecipientWriteScope": "Organization",
        "ConfigWriteScope": "OrganizationConfig", "CustomRecipientWriteScope": a.get("CustomRecipientWriteScope"),
        "CustomConfigWriteScope": None, "RecipientReadScope": "Organization", "ConfigReadScope": "OrganizationConfig",
        "Enabled": a.get("Enabled", True), "IsValid": True, "Guid": a["_guid"],
        "WhenCreated": iso(a["_created"]), "WhenCreatedUTC": iso(a["_created"]),
        "WhenChanged": iso(a["_created"]), "WhenChangedUTC": iso(a["_created"]), "ObjectState": "Unchanged",
    }


def _group_rows(t: Tenant) -> list[dict[str, Any]]:
    from . import role_groups

    out = []
    for g in role_groups.state(t):
        for r in g.get("Roles", []):
            name = f"{r}-{g['Name']}"[:64]
            out.append({"Name": name, "Identity": name, "Role": r, "RoleAssigneeType": "RoleGroup",
                        "RoleAssigneeName": g["Name"], "RoleAssignee": g["Name"], "User": g["Name"],
                        "EffectiveUserName": "All Group Members", "AssignmentMethod": "Direct",
                        "RoleAssignmentDelegationType": "Regular", "RecipientWriteScope": "Organization",
                        "ConfigWriteScope": "OrganizationConfig", "CustomRecipientWriteScope": None,
                        "Enabled": True, "IsValid": True,
                        "Guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/assignment/{name}")),
                        "WhenCreated": iso(g["_changed"]), "WhenChanged": iso(g["_changed"])})
    return out


def _find(t: Tenant, ident: Any) -> dict[str, Any] | None:
    key = str(ident or "").strip().lower()
    return next((a for a in state(t) if key in (a["Name"].lower(), a["_guid"].lower())), None)


def run(t: Tenant, cmdlet: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from .exchange import CmdletError, _required, not_found
    from .role_groups import _member_user

    rows_state = state(t)
    if cmdlet == "Get-ManagementRoleAssignment":
        if params.get("AssignmentMethod") is not None and params.get("RoleAssignee") is None:
            raise CmdletError(400, "System.ArgumentException", "The AssignmentMethod parameter can only be used with "
                              "the RoleAssignee parameter.", "Ex2A4B61")
        if params.get("Identity") is not None:
            a = _find(t, params["Identity"])
            if a is None:
                raise not_found(t, str(params["Identity"]))
            rows = [r for r in [_row(t, a)] if r is not None]
        else:
            rows = [r for r in (_row(t, a) for a in rows_state) if r is not None] + _group_rows(t)
        if params.get("RoleAssignee") is not None:
            u = _member_user(t, params["RoleAssignee"])
            if u is None:
                raise not_found(t, str(params["RoleAssignee"]))
            methods = params.get("AssignmentMethod")
            methods = {str(m).lower() for m in (methods if isinstance(methods, list) else [methods])} \
                if methods is not None else None
            # Only the direct ones are modelled per user; role-group and policy assignments are not expanded here.
            rows = [r for r in rows if r["RoleAssigneeType"] == "User" and r["RoleAssigneeName"] == u.mailNickname
                    and (methods is None or "direct" in methods)]
        if params.get("RoleAssigneeType") is not None:
            want = str(params["RoleAssigneeType"]).lower()
            rows = [r for r in rows if r["RoleAssigneeType"].lower() == want]
        if params.get("Role") is not None:
            rows = [r for r in rows if r["Role"].lower() == str(params["Role"]).lower()]
        if params.get("Enabled") is not None:
            rows = [r for r in rows if bool(r["Enabled"]) == bool(params["Enabled"])]
        return rows
    if cmdlet == "New-ManagementRoleAssignment":
        role = str(_required(params, "Role"))
        if role.lower() not in _roles(t):
            raise not_found(t, role)
        ident = _required(params, "User")
        u: User | None = _member_user(t, ident)
        if u is None:
            raise not_found(t, str(ident))
        name = str(params.get("Name") or f"{role}-{u.mailNickname}")[:64]
        if _find(t, name) is not None:
            raise CmdletError(400, "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException",
                              f"The role assignment \"{name}\" already exists.", "Ex3E1B27")
        a = {"Name": name, "Role": role,
             "user": u.id, "_guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/assignment/{name}")),
             "_created": t.now(), "CustomRecipientWriteScope": params.get("CustomRecipientWriteScope")}
        rows_state.append(a)
        t.log(cmdlet, cmdlet, u, detail={"Role": role, "Name": name})
        row = _row(t, a)
        return [row] if row is not None else []
    # Remove-ManagementRoleAssignment
    a = _find(t, _required(params, "Identity"))
    if a is None:
        raise not_found(t, str(params["Identity"]))
    rows_state.remove(a)
    u = t.find_user(a["user"])
    t.log(cmdlet, cmdlet, u, detail={"Role": a["Role"], "Name": a["Name"]})
    return []
