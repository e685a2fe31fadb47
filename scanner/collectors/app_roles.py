"""Application permissions (app role assignments) on Microsoft Graph and Office 365 Exchange Online, read once per
tenant (graph-api.md §6.2).

1. The two resource service principals, by their well-known appIds (``GET /servicePrincipals?$filter=appId eq '…'``),
   with ``appRoles`` to turn an assignment's ``appRoleId`` into its name (``Mail.ReadWrite``, ``full_access_as_app``).
2. ``GET /servicePrincipals/{resourceSpId}/appRoleAssignedTo`` (paged): every principal holding an application
   permission on that resource — the one listing that shows apps able to read every mailbox without a user.
3. Each distinct client service principal once through ``$batch`` (appId, name, publisher verification, owner
   tenant, type), like the OAuth grants collector.

A resource that does not exist in the tenant (no Exchange Online: an empty list) has no assignments; any failure of steps
1-2 fails the whole source (a coverage gap naming ``Application.Read.All``), never an empty "no apps". Step 3 failing
for some clients only loses names (a note): the assignment itself is still reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scanner.collectors.oauth_grants import SP_SELECT
from scanner.graph.client import BatchItem, GraphApi

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
RESOURCES = (GRAPH_APP_ID, EXCHANGE_APP_ID)

# Well-known application-permission ids, used only when the resource's appRoles[] did not name the id (a trimmed
# $select, a role Microsoft retired from the list). Graph: the permissions reference; Exchange Online: the
# "Office 365 Exchange Online" API's application permissions as the portal lists them.
KNOWN_APP_ROLES: dict[str, dict[str, str]] = {
    GRAPH_APP_ID: {
        "810c84a8-4a9e-49e6-bf7d-12d183f40d01": "Mail.Read",
        "e2a3a72e-5f79-4c64-b1b1-878b674786c9": "Mail.ReadWrite",
        "b633e1c5-b582-4048-a93e-9f11b44c7e96": "Mail.Send",
        "693c5e45-0940-467d-9b8a-1022fb9d42ef": "Mail.ReadBasic.All",
        "6be147d2-ea4f-4b5a-a3fa-3eab6f3c140a": "Mail.ReadBasic",
        "6931bccd-447a-43d1-b442-00a195474933": "MailboxSettings.ReadWrite",
        "40f97065-369a-49f4-947c-6a255697ae91": "MailboxSettings.Read",
    },
    EXCHANGE_APP_ID: {
        "dc890d15-9560-4a4c-9b7f-a736ec74ec40": "full_access_as_app",
        "dc50a0fb-09a3-484d-be87-e023b12c6440": "Exchange.ManageAsApp",
        "5e5addcd-3e8d-4e90-baf5-964efab2b20a": "IMAP.AccessAsApp",
        "cb842b43-da6e-4506-86fe-bb12199c656d": "POP.AccessAsApp",
        "7146a1f0-8703-45b3-9eae-527a64c00995": "SMTP.SendAsApp",
        "810c84a8-4a9e-49e6-bf7d-12d183f40d01": "Mail.Read",
        "e2a3a72e-5f79-4c64-b1b1-878b674786c9": "Mail.ReadWrite",
        "b633e1c5-b582-4048-a93e-9f11b44c7e96": "Mail.Send",
        "f9156939-25cd-4ba8-abfe-7fabcf003749": "MailboxSettings.ReadWrite",
        "d45fa9f8-36e5-4cd2-b601-b063c7cf9ac2": "MailboxSettings.Read",
    },
}
_RESOURCE_SELECT = "id,appId,displayName,appRoles"


async def _resource(graph: GraphApi, app_id: str) -> dict[str, Any] | None:
    # The list with $filter (not the (appId='…') alternate key): an API not provisioned in this tenant (no Exchange
    # Online) is an empty list, not an error that could also mean something else.
    rows = await graph.get_all("/servicePrincipals", params={"$filter": f"appId eq '{app_id}'",
                                                             "$select": _RESOURCE_SELECT})
    return next((r for r in rows if isinstance(r.get("id"), str)), None)


async def _assignments(graph: GraphApi, resource: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # No $select / $top: the default objects carry every field used, and not every implementation takes them here.
    async for page in graph.iter_pages(f"/servicePrincipals/{resource['id']}/appRoleAssignedTo"):
        out.extend(a for a in page if isinstance(a.get("id"), str) and isinstance(a.get("appRoleId"), str)
                   and isinstance(a.get("principalId"), str))
    return out


def _role_names(resource: dict[str, Any]) -> dict[str, str]:
    names = dict(KNOWN_APP_ROLES.get(str(resource.get("appId") or "").lower(), {}))
    for r in resource.get("appRoles") or ():
        if isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("value"), str) and r["value"]:
            names[r["id"].lower()] = r["value"]
    return names


async def read_app_roles(graph: GraphApi) -> tuple[list[dict[str, Any]], list[str]]:
    """(app role assignments in AppRoleGrant's field names, notes)."""
    resources = [r for r in await asyncio.gather(*(_resource(graph, a) for a in RESOURCES)) if r is not None]
    lists = await asyncio.gather(*(_assignments(graph, r) for r in resources))
    notes: list[str] = []
    client_ids = sorted({a["principalId"] for lst in lists for a in lst
                         if str(a.get("principalType") or "ServicePrincipal").lower() == "serviceprincipal"})
    clients: dict[str, dict[str, Any]] = {}
    if client_ids:
        items = [BatchItem(id=str(i), url=f"/servicePrincipals/{cid}?$select={SP_SELECT}")
                 for i, cid in enumerate(client_ids)]
        results = await graph.batch(items)
        failed = 0
        for item, cid in zip(items, client_ids, strict=True):
            res = results[item.id]
            if res.ok and isinstance(res.body, dict):
                clients[cid] = res.body
            else:
                failed += 1
        if failed:
            notes.append(f"{failed} app(s) holding application permissions could not be read: names / publishers "
                         "missing")
    rows: list[dict[str, Any]] = []
    for resource, lst in zip(resources, lists, strict=True):
        names = _role_names(resource)
        for a in lst:
            sp = clients.get(a["principalId"], {})
            vp = sp.get("verifiedPublisher") if isinstance(sp.get("verifiedPublisher"), dict) else {}
            rows.append({
                "id": a["id"], "app_role_id": a["appRoleId"], "app_role": names.get(a["appRoleId"].lower()),
                "resource_id": a.get("resourceId") or resource["id"], "resource_app_id": resource.get("appId"),
                "resource_display_name": a.get("resourceDisplayName") or resource.get("displayName"),
                "principal_id": a["principalId"], "principal_type": a.get("principalType"),
                "principal_display_name": a.get("principalDisplayName"),
                "app_id": sp.get("appId"),
                "app_display_name": sp.get("appDisplayName") or sp.get("displayName") or a.get("principalDisplayName"),
                "verified_publisher": (vp or {}).get("displayName") or None,
                "app_owner_organization_id": sp.get("appOwnerOrganizationId"),
                "service_principal_type": sp.get("servicePrincipalType"),
                "created_date_time": a.get("createdDateTime"),
            })
    rows.sort(key=lambda r: (str(r["principal_id"]), str(r["resource_app_id"]), str(r["app_role"]), r["id"]))
    return rows, notes


def scanner_app_id(claims: dict[str, Any], configured: str | None) -> str | None:
    """The appId the scan runs as: the token's ``appid`` (v1 tokens) / ``azp`` (v2), else the configured client id."""
    for key in ("appid", "azp"):
        v = claims.get(key)
        if isinstance(v, str) and v:
            return v.lower()
    return configured.lower() if configured else None
