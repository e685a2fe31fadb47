"""Accepted domains: ``GET /domains`` (Domain.Read.All), falling back to ``/organization?$select=verifiedDomains``.

If neither can be read, the scan falls back to the domains of the users' UPNs and mail addresses (collected while
paging users) and records a coverage gap: a partner domain that no user has would then look internal-less, and an
accepted domain no user uses would look external — detectors see ``TenantInfo.domains`` either way.
"""

from __future__ import annotations

from typing import Any

from scanner.graph.client import ApiError, GraphApi


async def read_domains(graph: GraphApi) -> dict[str, Any]:
    """{"domains": [...], "initial": str|None, "default": str|None, "display_name": str|None, "source": str}."""
    try:
        values = await graph.get_all("/domains", params={"$select": "id,isVerified,isDefault,isInitial"})
        verified = [d for d in values if isinstance(d.get("id"), str) and d.get("isVerified", True) is not False]
        return {
            "domains": sorted({d["id"].lower() for d in verified}),
            "initial": next((d["id"].lower() for d in verified if d.get("isInitial")), None),
            "default": next((d["id"].lower() for d in verified if d.get("isDefault")), None),
            "display_name": None, "source": "domains",
        }
    except ApiError as first:
        try:
            orgs = await graph.get_all("/organization", params={"$select": "id,displayName,verifiedDomains"})
        except ApiError:
            raise first from None
    doms = [d for o in orgs for d in (o.get("verifiedDomains") or []) if isinstance(d, dict)
            and isinstance(d.get("name"), str)]
    return {
        "domains": sorted({d["name"].lower() for d in doms}),
        "initial": next((d["name"].lower() for d in doms if d.get("isInitial")), None),
        "default": next((d["name"].lower() for d in doms if d.get("isDefault")), None),
        "display_name": next((o.get("displayName") for o in orgs if o.get("displayName")), None),
        "source": "organization",
    }
