"""One factory for every Graph and Exchange client: honours the cloud preset, ``[endpoints]`` and the auth method.

``connect(cfg)`` returns a :class:`Connection` holding a :class:`GraphApi` (msgraph-sdk request adapter, raw JSON) and
an :class:`ExchangeApi` (separate httpx client: a Graph token must never be sent to Exchange, sdk-notes.md). Tests pass
``transport=httpx.ASGITransport(app=simulator_app)`` to mount the simulator in-process; that is the only seam.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from scanner.config import Config, ConfigError
from scanner.graph.client import ExchangeApi, GraphApi, ScopeGate, Stats
from scanner.graph.lean_transport import LeanTransport

GRAPH_TOKEN_ENV = "M365SWEEP_GRAPH_TOKEN"  # noqa: S105 - env var names, not secrets
EXCHANGE_TOKEN_ENV = "M365SWEEP_EXCHANGE_TOKEN"  # noqa: S105
CLIENT_SECRET_ENV = "M365SWEEP_CLIENT_SECRET"  # noqa: S105


class StaticTokenCredential:
    """A TokenCredential that hands out fixed tokens per resource (auth.method = "access_token", tests)."""

    def __init__(self, tokens: dict[str, str] | Callable[[str], str] | None = None, expires_in: int = 3600, *,
                 graph: str | None = None, exchange: str | None = None) -> None:
        # graph= / exchange=: one token per service, for when both services share one URL (the simulator, a proxy)
        # and a scope cannot tell them apart. The kiota provider only ever asks for the Graph scope; the Exchange
        # client asks through exchange_token().
        self._tokens = tokens if tokens is not None else {}
        self._expires_in = expires_in
        self.graph = graph
        self.exchange = exchange

    def exchange_token(self) -> str | None:
        return self.exchange

    def _for_scope(self, scope: str) -> str:
        if self.graph is not None:
            return self.graph
        resource = scope.removesuffix("/.default").rstrip("/")
        if callable(self._tokens):
            return self._tokens(resource)
        host = urlsplit(resource).netloc or resource
        for key, tok in self._tokens.items():
            if key.rstrip("/") == resource or urlsplit(key).netloc == host:
                return tok
        raise ConfigError(f"no access token configured for {resource}")

    def get_token(self, *scopes: str, **_: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._for_scope(scopes[0]), int(time.time()) + self._expires_in)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:  # never show the tokens
        return "StaticTokenCredential(<redacted>)"


def build_credential(cfg: Config) -> Any:
    """A synchronous azure-identity credential for the configured method (kiota closes async ones, sdk-notes.md)."""
    method = cfg.auth.method
    if method == "access_token":
        graph_tok = os.environ.get(GRAPH_TOKEN_ENV)
        if not graph_tok:
            raise ConfigError(f"auth.method = \"access_token\" needs the Graph token in env {GRAPH_TOKEN_ENV}")
        ex_tok = os.environ.get(EXCHANGE_TOKEN_ENV)
        # Exchange calls without a token fail as a coverage gap (401), never as a Graph token sent to Exchange.
        return StaticTokenCredential(graph=graph_tok.strip(), exchange=(ex_tok or "").strip() or "missing-token")
    from azure.identity import (
        AzureCliCredential,
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    authority = cfg.authority
    if method == "client_secret":
        secret = os.environ.get(CLIENT_SECRET_ENV)
        if not secret:
            raise ConfigError(f"auth.method = \"client_secret\" needs the secret in env {CLIENT_SECRET_ENV}")
        return ClientSecretCredential(cfg.tenant.tenant_id, cfg.tenant.client_id or "", secret, authority=authority)
    if method == "certificate":
        path = cfg.resolve(cfg.auth.certificate_path or "")
        if not path.is_file():
            raise ConfigError(f"auth.certificate_path: certificate file not found: {path}")
        password = None
        if cfg.auth.certificate_password_env:
            password = os.environ.get(cfg.auth.certificate_password_env)
            if password is None:
                raise ConfigError(f"auth.certificate_password_env: env {cfg.auth.certificate_password_env} is not set")
        return CertificateCredential(cfg.tenant.tenant_id, cfg.tenant.client_id or "", certificate_path=str(path),
                                     password=password, authority=authority)
    if method == "azure_cli":
        return AzureCliCredential(tenant_id=cfg.tenant.tenant_id)
    if method == "managed_identity":
        return ManagedIdentityCredential(client_id=cfg.auth.managed_identity_client_id)
    raise ConfigError(f"auth.method: unsupported method {method!r}")


def token_claims(token: str) -> dict[str, Any]:
    """Decode (not verify) a JWT's payload, to list the roles the token carries. {} when it is not a JWT."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload))
        return data if isinstance(data, dict) else {}
    except (IndexError, ValueError):
        return {}


class TokenSource:
    """Async access to tokens from a sync credential, cached until 5 minutes before expiry."""

    def __init__(self, credential: Any, resource: str) -> None:
        self.credential = credential
        self.scope = f"{resource.rstrip('/')}/.default"
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self, force: bool = False) -> str:
        async with self._lock:
            if force or self._token is None or time.time() > self._expires - 300:
                tok = await asyncio.to_thread(self.credential.get_token, self.scope)
                self._token, self._expires = tok.token, float(tok.expires_on)
            return self._token

    def invalidate(self) -> None:
        self._token = None


@dataclass
class Connection:
    graph: GraphApi
    exchange: ExchangeApi
    credential: Any
    stats: Stats
    tenant_id: str
    graph_url: str
    exchange_url: str
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def graph_token(self) -> str:
        return await TokenSource(self.credential, self.graph_url)()

    async def exchange_token(self) -> str:
        return await self.exchange.token_provider()

    async def aclose(self) -> None:
        for c in self._closers:
            try:
                await c()
            except Exception:  # noqa: BLE001, S110 - best-effort cleanup
                pass

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _ExchangeTokens(TokenSource):
    async def __call__(self, force: bool = False) -> str:
        if isinstance(self.credential, StaticTokenCredential) and self.credential.exchange is not None:
            return self.credential.exchange
        return await super().__call__(force)


def _proxy_configured() -> bool:
    # The lean transport speaks to hosts directly; behind a proxy keep httpx, which honours HTTP(S)_PROXY.
    return any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                            "all_proxy"))


def _is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (the simulator of ``demo`` / ``simulate``)."""
    import ipaddress

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(
    cfg: Config,
    *,
    credential: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int | None = None,
) -> Connection:
    """Build the Graph and Exchange clients for ``cfg``. Must be called inside a running event loop."""
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph import GraphRequestAdapter  # noqa: TID251 - this is the one place the SDK is built
    from msgraph_core import GraphClientFactory

    cred = credential if credential is not None else build_credential(cfg)
    graph_url = cfg.graph_url
    host = urlsplit(graph_url).hostname or ""
    in_flight = concurrency or cfg.scan.concurrency
    limits = httpx.Limits(max_connections=max(in_flight, 8), max_keepalive_connections=max(in_flight, 8))
    # [scan] request_timeout: a hung request is abandoned, retried, then a coverage gap (never a hung scan).
    req_timeout = cfg.scan.request_timeout
    timeout = httpx.Timeout(req_timeout or 100.0, connect=min(30.0, req_timeout or 30.0))
    # A loopback endpoint is never reached through HTTP(S)_PROXY: a proxy cannot see this machine's 127.0.0.1, and
    # `demo` must work on a host whose proxy settings do not list it in NO_PROXY.
    http = httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout,
                             base_url=f"{graph_url}/v1.0", trust_env=not _is_loopback(graph_url))
    # Retries are ours (scanner.graph.client): the SDK's RetryHandler crashes on fractional Retry-After values.
    http = GraphClientFactory.create_with_default_middleware(
        client=http, options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False)}
    )
    auth = AzureIdentityAuthenticationProvider(cred, scopes=[f"{graph_url}/.default"], allowed_hosts=[host])
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = f"{graph_url}/v1.0"
    stats = Stats()
    gate = ScopeGate()
    graph = GraphApi(adapter, f"{graph_url}/v1.0", max_in_flight=in_flight, max_retries=cfg.scan.max_retries,
                     stats=stats, gate=gate)
    # Exchange carries two cmdlets per mailbox, the most requests of the sweep: its own clients (a Graph token must
    # never reach Exchange), as many in flight as Graph, spread over pools of 4 connections (ExchangeApi docstring).
    ex_timeout = httpx.Timeout(req_timeout or 300.0, connect=min(30.0, req_timeout or 30.0))
    lean = None
    if transport is None and cfg.scan.fast_exchange_transport and not _proxy_configured():
        # Over the network, when asked for ([scan] fast_exchange_transport): the lean keep-alive transport
        # (lean_transport docstring: httpcore's per-request work and httpx's client layer were most of the sweep's
        # client CPU for these two-per-mailbox requests).
        lean = LeanTransport(max_connections=in_flight)
        ex_https = [httpx.AsyncClient(transport=lean, timeout=ex_timeout)]  # closes the transport's connections
    else:
        ex_pools = max(1, math.ceil(in_flight / 4))
        ex_limits = httpx.Limits(max_connections=math.ceil(in_flight / ex_pools),
                                 max_keepalive_connections=math.ceil(in_flight / ex_pools))
        ex_https = [httpx.AsyncClient(transport=transport, limits=ex_limits, timeout=ex_timeout,
                                      trust_env=not _is_loopback(cfg.exchange_url))
                    for _ in range(ex_pools)]
    ex_tokens = _ExchangeTokens(cred, cfg.exchange_url)
    exchange = ExchangeApi(ex_https, cfg.exchange_url, cfg.tenant.tenant_id, ex_tokens,
                           max_in_flight=in_flight, max_retries=cfg.scan.max_retries, stats=stats,
                           gate=gate, lean=lean, timeout=ex_timeout.read, connect_timeout=ex_timeout.connect,
                           batch=cfg.scan.exchange_batch)
    conn = Connection(graph=graph, exchange=exchange, credential=cred, stats=stats, tenant_id=cfg.tenant.tenant_id,
                      graph_url=graph_url, exchange_url=cfg.exchange_url)
    conn._closers.extend([http.aclose, *(c.aclose for c in ex_https)])
    return conn
