"""OAuth consent grants, read tenant-wide once: ``GET /oauth2PermissionGrants`` (paged), then each distinct client
(and resource) service principal once through ``$batch`` for app name, appId, publisher verification and owner tenant.

``Principal`` grants attach to the consenting account. ``AllPrincipals`` grants (admin consent for everyone) are
tenant-level: they are stored once in the scan's tenant data and exposed to detectors as
``TenantInfo.all_principals_grants`` — attaching them to every account would make every account look consented.
"""

from __future__ import annotations

from typing import Any

from scanner.graph.client import BatchItem, GraphApi

# v1.0 servicePrincipal properties only: ``publisherName`` is beta-only (absent from the v1.0 model), and a $select
# naming it is a 400 on v1.0. The publisher shown is verifiedPublisher.displayName (None when unverified).
SP_SELECT = "id,appId,appDisplayName,displayName,verifiedPublisher,appOwnerOrganizationId,servicePrincipalType"


async def read_grants(graph: GraphApi) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], list[str]]:
    """(Principal grants by principal id, AllPrincipals grants, notes) — grant dicts in OAuthGrant's field names."""
    grants: list[dict[str, Any]] = []
    async for page in graph.iter_pages("/oauth2PermissionGrants"):
        grants.extend(g for g in page if isinstance(g.get("id"), str) and isinstance(g.get("clientId"), str))
    sp_ids = sorted({g["clientId"] for g in grants} | {g["resourceId"] for g in grants
                                                        if isinstance(g.get("resourceId"), str)})
    sps: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if sp_ids:
        items = [BatchItem(id=str(i), url=f"/servicePrincipals/{sid}?$select={SP_SELECT}")
                 for i, sid in enumerate(sp_ids)]
        results = await graph.batch(items)
        answers = {sid: results[item.id] for item, sid in zip(items, sp_ids, strict=True)}
        failed = 0
        for sid, res in answers.items():
            if res.ok and isinstance(res.body, dict):
                sps[sid] = res.body
            else:
                failed += 1
        if failed:
            notes.append(f"{failed} service principal(s) could not be read: app names / publishers missing")
    by_principal: dict[str, list[dict[str, Any]]] = {}
    all_principals: list[dict[str, Any]] = []
    for g in grants:
        sp = sps.get(g["clientId"], {})
        res_sp = sps.get(g.get("resourceId") or "", {})
        vp = sp.get("verifiedPublisher") if isinstance(sp.get("verifiedPublisher"), dict) else {}
        consent = "AllPrincipals" if g.get("consentType") == "AllPrincipals" else "Principal"
        row = {
            "id": g["id"], "client_id": g["clientId"], "app_id": sp.get("appId"),
            "app_display_name": sp.get("appDisplayName") or sp.get("displayName"),
            "publisher_name": None,  # beta-only property (see SP_SELECT): not read on v1.0
            "verified_publisher": (vp or {}).get("displayName") or None,
            "app_owner_organization_id": sp.get("appOwnerOrganizationId"),
            "consent_type": consent,
            "resource_display_name": res_sp.get("displayName") or res_sp.get("appDisplayName"),
            "scopes": [s for s in str(g.get("scope") or "").split() if s],  # space-separated, stray spaces
        }
        if consent == "AllPrincipals":
            all_principals.append(row)
        elif isinstance(g.get("principalId"), str):
            by_principal.setdefault(g["principalId"].lower(), []).append(row)
    return by_principal, all_principals, notes
