"""Registration details: ``GET /reports/authenticationMethods/userRegistrationDetails``, one paged bulk read
(graph-api.md §4.2). Needs AuditLog.Read.All and an Entra ID P1/P2 tenant; without the licence the collection is a
NotCollected with the licence error, never fatal. The reports API allows 5 requests / 10 s: scope "reports"."""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import as_list, parse_dt
from scanner.graph.client import GraphApi
from scanner.snapshot import Registration


async def read_registration(graph: GraphApi) -> dict[str, dict[str, Any]]:
    """Compact rows keyed by user id (lower case)."""
    out: dict[str, dict[str, Any]] = {}
    async for page in graph.iter_pages("/reports/authenticationMethods/userRegistrationDetails", scope="reports"):
        out.update(compact_registration(page))
    return out


def compact_registration(page: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One report page's rows, compact, keyed by user id (lower case)."""
    out: dict[str, dict[str, Any]] = {}
    for r in page:
        uid = r.get("id")
        if isinstance(uid, str):
            out[uid.lower()] = {"isAdmin": r.get("isAdmin"), "isMfaRegistered": r.get("isMfaRegistered"),
                                "methodsRegistered": [str(m) for m in as_list(r.get("methodsRegistered"))],
                                "lastUpdatedDateTime": r.get("lastUpdatedDateTime")}
    return out


def registration_from_row(row: dict[str, Any]) -> Registration:
    return Registration(
        is_admin=row.get("isAdmin") if isinstance(row.get("isAdmin"), bool) else None,
        is_mfa_registered=row.get("isMfaRegistered") if isinstance(row.get("isMfaRegistered"), bool) else None,
        methods_registered=tuple(row.get("methodsRegistered") or ()),
        last_updated_date_time=parse_dt(row.get("lastUpdatedDateTime")),
    )
