"""Directory roles, read tenant-wide once (never per user): role definitions, then active assignments per definition
(the documented list API requires a ``$filter`` on principalId or roleDefinitionId, graph-api.md §5.1) through
``$batch``, then PIM eligibility schedules (Entra ID P2; a tenant without P2 has none, so a licence error reads as
"no eligible assignments" and is noted).

Both lists are read with ``$expand=principal`` (documented: ``?$filter=roleDefinitionId eq '…'&$expand=principal``), so
each row knows whether its principal is a user, a role-assignable group or a service principal (``@odata.type``), and
for service principals their appId, owner tenant (``appOwnerOrganizationId``) and ``servicePrincipalType``. Rows are
grouped by principal id; non-user principals in privileged roles surface as ``TenantInfo.privileged_principals`` (see
:func:`privileged_principals`).

Roles assigned to a GROUP are expanded to the group's users (``GET /groups/{id}/transitiveMembers/microsoft.graph.user
?$select=id``, needs GroupMember.Read.All or Directory.Read.All): each member gets the role with ``via_group=True``.
When the members cannot be read the group row is kept as it is, a note says so, and ``partial`` (when given) gets a
NotCollected naming the permission: the scan records it as a tenant-wide coverage gap (exit 3), because those members
are then not marked — a gap, never "no role". A principal that did not expand (deleted, or a service that ignores
``$expand``) keeps ``principal_type`` None and is joined by id like a user.

Privileged roles are marked from Microsoft's template-id table (graph-api.md §5.3; ``isPrivileged`` is beta-only).
"""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import LICENCE_CODES
from scanner.graph.client import ApiError, BatchItem, GraphApi
from scanner.snapshot import NotCollected

GROUP_MEMBERS_PERMISSION = "GroupMember.Read.All"

# templateId -> role name, for roles Microsoft labels privileged (graph-api.md §5.3, "P").
PRIVILEGED_TEMPLATE_IDS: dict[str, str] = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "8329153b-31d0-4727-b945-745eb3bc5f31": "Domain Name Administrator",
    "be2f45a1-457d-42af-a067-6ec1fa63bc45": "External Identity Provider Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f": "Security Operator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8": "Partner Tier2 Support",
}


EXPAND = "$expand=principal"


def principal_info(a: dict[str, Any]) -> dict[str, Any]:
    """The expanded ``principal`` of an assignment: type ("user" / "group" / "servicePrincipal" / None) and names."""
    p = a.get("principal")
    if not isinstance(p, dict):
        return {"principal_type": None}
    raw = str(p.get("@odata.type") or "")
    # "#microsoft.graph.servicePrincipal" -> "servicePrincipal"
    ptype = raw.lstrip("#").rsplit(".", 1)[-1] or None
    if ptype is None and (p.get("appId") or p.get("servicePrincipalType")):
        ptype = "servicePrincipal"  # a service that omits @odata.type: only service principals carry these
    out: dict[str, Any] = {"principal_type": ptype, "principal_display_name": _s(p.get("displayName"))}
    if ptype == "servicePrincipal":
        out.update({"app_id": _s(p.get("appId")), "app_owner_organization_id": _s(p.get("appOwnerOrganizationId")),
                    "service_principal_type": _s(p.get("servicePrincipalType"))})
    return out


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _row(a: dict[str, Any], defs: dict[str, dict[str, Any]], kind: str) -> dict[str, Any] | None:
    pid, rdid = a.get("principalId"), a.get("roleDefinitionId")
    if not isinstance(pid, str) or not isinstance(rdid, str):
        return None
    d = defs.get(rdid) or {}
    template = d.get("templateId") or (rdid if rdid in PRIVILEGED_TEMPLATE_IDS else None)
    return {**principal_info(a),
        "id": str(a.get("id") or f"{kind}:{pid}:{rdid}"),
        "principal_id": pid.lower(),
        "role_definition_id": rdid,
        "role_template_id": template,
        "role_name": d.get("displayName") or PRIVILEGED_TEMPLATE_IDS.get(template or ""),
        "privileged": (template or "") in PRIVILEGED_TEMPLATE_IDS,
        "kind": kind,
        "directory_scope_id": a.get("directoryScopeId") or "/",
        "via_group": False,
    }


def privileged_principals(by_principal: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Non-user principals holding a privileged role, in :class:`scanner.snapshot.PrivilegedPrincipal` field names."""
    out: list[dict[str, Any]] = []
    for pid, rows in sorted(by_principal.items()):
        for r in rows:
            ptype = r.get("principal_type")
            if not r.get("privileged") or r.get("via_group") or ptype in (None, "user"):
                continue
            out.append({
                "id": pid, "principal_type": ptype, "display_name": r.get("principal_display_name"),
                "app_id": r.get("app_id"), "app_owner_organization_id": r.get("app_owner_organization_id"),
                "service_principal_type": r.get("service_principal_type"), "assignment_id": r.get("id"),
                "role_definition_id": r.get("role_definition_id"), "role_template_id": r.get("role_template_id"),
                "role_name": r.get("role_name"), "kind": r.get("kind") or "active",
                "directory_scope_id": r.get("directory_scope_id") or "/",
            })
    return out


def _page(res: Any, path: str) -> dict[str, Any]:
    # A 200 whose body is not a JSON page (truncated, malformed) is a failed read, never "no assignments".
    body = res.body
    if not isinstance(body, dict) or not isinstance(body.get("value", []), list):
        raise ApiError("unexpected response shape (no 'value' list)", status=res.status, code="malformed_response",
                       path=path)
    return body


async def _group_members(graph: GraphApi, group_ids: list[str]
                         ) -> tuple[dict[str, list[str]], list[tuple[str, ApiError]]]:
    """User ids per group (transitive), and the groups whose members could not be read (with why)."""
    members: dict[str, list[str]] = {}
    failed: list[tuple[str, ApiError]] = []
    if not group_ids:
        return members, failed
    items = [BatchItem(id=str(i), url=f"/groups/{gid}/transitiveMembers/microsoft.graph.user?$select=id")
             for i, gid in enumerate(group_ids)]
    results = await graph.batch(items)
    for item, gid in zip(items, group_ids, strict=True):
        res = results[item.id]
        try:
            if not res.ok:
                raise res.error("/groups/{id}/transitiveMembers")
            body = _page(res, "/groups/{id}/transitiveMembers")
            values = list(body.get("value") or [])
            nxt = body.get("@odata.nextLink")
            if isinstance(nxt, str) and nxt:
                values.extend(await graph.get_all(nxt))
        except ApiError as err:
            failed.append((gid, err))
            continue
        members[gid] = [v["id"].lower() for v in values if isinstance(v, dict) and isinstance(v.get("id"), str)]
    return members, failed


async def read_roles(graph: GraphApi, partial: list[NotCollected] | None = None
                     ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """(assignments grouped by principal id, notes). Raises ApiError when definitions or assignments fail; role-holding
    groups whose members could not be read are appended to ``partial`` (one NotCollected)."""
    defs: dict[str, dict[str, Any]] = {}
    async for page in graph.iter_pages("/roleManagement/directory/roleDefinitions",
                                       params={"$select": "id,displayName,templateId,isBuiltIn"}):
        for d in page:
            if isinstance(d.get("id"), str):
                defs[d["id"]] = d
    items = [BatchItem(id=str(i), url=f"/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq "
                                        f"'{rid}'&{EXPAND}") for i, rid in enumerate(defs)]
    by_principal: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []

    def add(row: dict[str, Any] | None) -> None:
        if row is not None:
            by_principal.setdefault(row["principal_id"], []).append(row)

    results = await graph.batch(items) if items else {}
    for item in items:
        res = results[item.id]
        if not res.ok:
            raise res.error("/roleManagement/directory/roleAssignments")
        body = _page(res, "/roleManagement/directory/roleAssignments")
        values = list(body.get("value") or [])
        nxt = body.get("@odata.nextLink")
        if isinstance(nxt, str) and nxt:
            values.extend(await graph.get_all(nxt))
        for a in values:
            add(_row(a, defs, "active"))
    try:
        async for page in graph.iter_pages("/roleManagement/directory/roleEligibilitySchedules",
                                           params={"$expand": "principal"}):
            for a in page:
                add(_row(a, defs, "eligible"))
    except ApiError as err:
        if err.code in LICENCE_CODES or (err.status == 400 and "license" in err.message.lower()):
            notes.append("PIM eligibility not available (no Entra ID P2): no eligible assignments")
        else:
            # The active assignments are read and kept (they are what detection uses); only "eligible" is unknown:
            # a partial gap that says so, not the loss of every account's roles.
            note = f"PIM-eligible role assignments could not be read ({err.short()}): eligible roles are not shown"
            notes.append(note)
            if partial is not None:
                partial.append(NotCollected(reason=note, code=err.code or (str(err.status) if err.status else None),
                                            permission="RoleManagement.Read.Directory" if err.is_permission else None))
    await _expand_groups(graph, by_principal, notes, partial)
    return by_principal, notes


async def _expand_groups(graph: GraphApi, by_principal: dict[str, list[dict[str, Any]]], notes: list[str],
                         partial: list[NotCollected] | None = None) -> None:
    """Give each user in a role-holding group the group's roles (``via_group=True``)."""
    groups = sorted(pid for pid, rows in by_principal.items() if any(r.get("principal_type") == "group" for r in rows))
    members, failed = await _group_members(graph, groups)
    if failed:
        which = ", ".join(f"{gid} ({err.short()})" for gid, err in failed[:5])
        note = (f"members of {len(failed)} role-holding group(s) could not be read, so users holding a role only "
                f"through them are not marked: {which}")
        notes.append(note)
        if partial is not None:
            denied = any(err.is_permission for _gid, err in failed)
            partial.append(NotCollected(
                reason=note + (f"; the app needs {GROUP_MEMBERS_PERMISSION}" if denied else ""),
                code=failed[0][1].code or (str(failed[0][1].status) if failed[0][1].status else None),
                permission=GROUP_MEMBERS_PERMISSION if denied else None))
    for gid, users in members.items():
        group_rows = [r for r in by_principal[gid] if r.get("principal_type") == "group"]
        for uid in users:
            have = {(r["role_definition_id"], r["kind"], r["directory_scope_id"], r.get("via_group"))
                    for r in by_principal.get(uid, [])}
            for r in group_rows:
                if (r["role_definition_id"], r["kind"], r["directory_scope_id"], True) in have:
                    continue  # the same role through two nested groups: once is enough
                by_principal.setdefault(uid, []).append({
                    **r, "id": f"{r['id']}|member:{uid}", "principal_id": uid, "principal_type": "user",
                    "principal_display_name": None, "via_group": True, "group_id": gid,
                    "group_display_name": r.get("principal_display_name"),
                })
