"""Directory roles, read tenant-wide once (never per user): role definitions, then active assignments per definition
(the documented list API requires a ``$filter`` on principalId or roleDefinitionId, graph-api.md §5.1) through
``$batch``, then PIM eligibility schedules (Entra ID P2; a tenant without P2 has none, so a licence error reads as
"no eligible assignments" and is noted).

Privileged roles are marked from Microsoft's template-id table (graph-api.md §5.3; ``isPrivileged`` is beta-only).
Assignments to groups are kept with the group's id as principal; expanding role-assignable group members is not done
(needs GroupMember.Read.All) — a documented gap: a user who holds a role only through a group is not marked.
"""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import LICENCE_CODES
from scanner.graph.client import ApiError, BatchItem, GraphApi

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


def _row(a: dict[str, Any], defs: dict[str, dict[str, Any]], kind: str) -> dict[str, Any] | None:
    pid, rdid = a.get("principalId"), a.get("roleDefinitionId")
    if not isinstance(pid, str) or not isinstance(rdid, str):
        return None
    d = defs.get(rdid) or {}
    template = d.get("templateId") or (rdid if rdid in PRIVILEGED_TEMPLATE_IDS else None)
    return {
        "id": str(a.get("id") or f"{kind}:{pid}:{rdid}"),
        "principal_id": pid.lower(),
        "role_definition_id": rdid,
        "role_template_id": template,
        "role_name": d.get("displayName") or PRIVILEGED_TEMPLATE_IDS.get(template or ""),
        "privileged": (template or "") in PRIVILEGED_TEMPLATE_IDS,
        "kind": kind,
        "directory_scope_id": a.get("directoryScopeId") or "/",
    }


async def read_roles(graph: GraphApi) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """(assignments grouped by principal id, notes). Raises ApiError when definitions or assignments fail."""
    defs: dict[str, dict[str, Any]] = {}
    async for page in graph.iter_pages("/roleManagement/directory/roleDefinitions",
                                       params={"$select": "id,displayName,templateId,isBuiltIn"}):
        for d in page:
            if isinstance(d.get("id"), str):
                defs[d["id"]] = d
    items = [BatchItem(id=str(i), url=f"/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq "
                                        f"'{rid}'") for i, rid in enumerate(defs)]
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
        body = res.body if isinstance(res.body, dict) else {}
        values = list(body.get("value") or [])
        nxt = body.get("@odata.nextLink")
        if isinstance(nxt, str) and nxt:
            values.extend(await graph.get_all(nxt))
        for a in values:
            add(_row(a, defs, "active"))
    try:
        async for page in graph.iter_pages("/roleManagement/directory/roleEligibilitySchedules"):
            for a in page:
                add(_row(a, defs, "eligible"))
    except ApiError as err:
        if err.code in LICENCE_CODES or (err.status == 400 and "license" in err.message.lower()):
            notes.append("PIM eligibility not available (no Entra ID P2): no eligible assignments")
        else:
            raise
    return by_principal, notes
