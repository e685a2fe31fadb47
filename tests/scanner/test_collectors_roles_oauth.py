"""OAuth grant collection: the service principals are read once each with a v1.0-only ``$select`` (no 400, no
re-fetch without ``$select``)."""

from __future__ import annotations

import math
from typing import Any

from scanner.collectors.oauth_grants import SP_SELECT, read_grants
from scanner.graph.factory import connect


def test_selected_properties_exist_on_the_v1_service_principal_model() -> None:
    # The SDK's v1.0 model is the authority for v1.0 property names (publisherName is beta-only).
    from msgraph.generated.models.service_principal import ServicePrincipal  # noqa: TID251 - reference model only

    fields = set(ServicePrincipal().get_field_deserializers())
    assert set(SP_SELECT.split(",")) <= fields
    assert "publisherName" not in SP_SELECT


async def test_grants_read_with_one_round_of_service_principal_lookups(sim_env: Any) -> None:
    async with connect(sim_env.cfg, **sim_env.kwargs) as conn:
        by_principal, all_principals, notes = await read_grants(conn.graph)
        requests = conn.stats.http_requests
    assert notes == []
    grants = [g for gs in by_principal.values() for g in gs] + all_principals
    assert grants and all(g["app_display_name"] and g["app_id"] and g["app_owner_organization_id"] for g in grants)
    assert any(g["verified_publisher"] for g in grants) and any(g["verified_publisher"] is None for g in grants)
    sp_ids = {g["client_id"] for g in grants} | set(sim_env.tenant.service_principals) & {
        g["resourceId"] for g in sim_env.tenant.grants.values()}
    # One page of grants + one $batch per 20 service principals: no second round without $select.
    assert requests == 1 + math.ceil(len(sp_ids) / 20)
