"""Shared fixtures for simulator tests: a frozen-clock tenant, the ASGI app, raw httpx clients and an SDK client."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from scanner.simulator import SimOptions, create_app, generate_tenant

BASE = "http://127.0.0.1:8765"
NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def tenant():
    return generate_tenant(users=300, seed=7, scenarios=True, now=NOW)


@pytest.fixture
def app(tenant):
    return create_app(tenant, SimOptions())


def graph_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                             headers={"Authorization": f"Bearer {app.graph_token}"})


@pytest.fixture
async def client(app):
    async with graph_client(app) as c:
        yield c


class Exo:
    def __init__(self, app, client: httpx.AsyncClient) -> None:
        self.app, self.c = app, client
        self.url = f"/adminapi/beta/{app.tenant.tenant_id}/InvokeCommand"

    async def post(self, cmdlet: str, headers: dict | None = None, url: str | None = None, **params) -> httpx.Response:
        return await self.c.post(url or self.url, json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}},
                                 headers={"Authorization": f"Bearer {self.app.exchange_token}", **(headers or {})})

    async def all(self, cmdlet: str, headers: dict | None = None, **params) -> list[dict]:
        out, url = [], None
        while True:
            r = await self.post(cmdlet, headers=headers, url=url, **params)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["value"]
            url = page.get("@odata.nextLink")
            if not url:
                return out


@pytest.fixture
async def exo(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield Exo(app, c)


class StaticCredential:
    """Sync TokenCredential handing out fresh simulator tokens (kiota's provider accepts sync credentials)."""

    def __init__(self, app) -> None:
        self.app = app
        self.calls = 0

    def get_token(self, *scopes, claims=None, enable_cae=False, **kw):
        from azure.core.credentials import AccessToken
        self.calls += 1
        return AccessToken(self.app.issue_token("https://graph.microsoft.com"), int(time.time()) + 3600)

    def close(self) -> None:
        pass


def make_sdk(app):
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: TID251 - tests drive the real SDK
    from msgraph_core import GraphClientFactory

    hc = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{BASE}/v1.0")
    http = GraphClientFactory.create_with_default_middleware(client=hc)
    auth = AzureIdentityAuthenticationProvider(StaticCredential(app), scopes=["https://graph.microsoft.com/.default"])
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = f"{BASE}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


@pytest.fixture
def sdk(app):
    return make_sdk(app)


@pytest.fixture
def sdk_factory():
    return make_sdk


@pytest.fixture
def exo_factory():
    def factory(app):
        return Exo(app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE))
    return factory
