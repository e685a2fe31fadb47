"""Shared fixtures: a simulated tenant with the planted scenarios, its ASGI app, and a scanner config that points at it.

The simulator is mounted in-process through ``httpx.ASGITransport`` (the only seam; the real msgraph-sdk pipeline runs
unchanged). Graph and Exchange get different host names (127.0.0.1 vs localhost, same port) so the static-token
credential can tell the two resources apart, exactly as it does against Microsoft's two hosts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SIM_GRAPH_URL = "http://127.0.0.1:8765"
SIM_EXCHANGE_URL = "http://localhost:8765"


@dataclass(frozen=True)
class SimEnv:
    """What a test needs to scan the simulated tenant in-process."""

    cfg: Any  # scanner.config.Config
    credential: Any  # StaticTokenCredential with the simulator's tokens
    transport: Any  # httpx.ASGITransport(app=app)
    tenant: Any
    app: Any

    @property
    def kwargs(self) -> dict[str, Any]:
        """``connect(cfg, **env.kwargs)`` / ``run_scan(cfg, **env.kwargs)``."""
        return {"credential": self.credential, "transport": self.transport}


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        cur = obj
        for part in n.split("."):
            cur = getattr(cur, part, None)
            if cur is None:
                break
        if cur is not None:
            return cur() if callable(cur) else cur
    return None


def sim_tokens(tenant: Any, app: Any = None, roles: list[str] | None = None) -> tuple[str, str]:
    """(graph token, exchange token) accepted by the simulator; ``roles`` narrows the Graph token's permissions."""
    from scanner.simulator import tokens as T

    if roles is None:
        for obj in (app, getattr(app, "state", None), tenant):
            if obj is None:
                continue
            g = _attr(obj, "graph_token")
            e = _attr(obj, "exchange_token")
            if isinstance(g, str) and isinstance(e, str):
                return g, e
        from scanner.simulator.permissions import ALL_PERMISSIONS

        graph_roles = sorted(p for p in ALL_PERMISSIONS if p != "Exchange.ManageAsApp")
    else:
        graph_roles = sorted(roles)
    gen = getattr(tenant, "token_generation", 0)
    graph = T.issue(tenant.token_secret, tenant.tenant_id, T.GRAPH_RESOURCE, graph_roles, generation=gen)
    exchange = T.issue(tenant.token_secret, tenant.tenant_id, T.EXCHANGE_RESOURCE, ["Exchange.ManageAsApp"],
                       generation=gen)
    return graph, exchange


def sim_config_dict(tenant: Any, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": {"tenant_id": tenant.tenant_id},
        "auth": {"method": "access_token"},
        "endpoints": {"graph": SIM_GRAPH_URL, "exchange": SIM_EXCHANGE_URL},
        "storage": {"database": str(tmp_path / "m365sweep.db")},
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return data


def make_sim_config(tmp_path: Path, tenant: Any, app: Any, *, roles: list[str] | None = None,
                    **sections: Any) -> SimEnv:
    """A SimEnv for ``tenant`` served by ``app`` (in-process). Extra keyword sections update the config dict."""
    import httpx

    from scanner.config import parse_config
    from scanner.graph.factory import StaticTokenCredential

    cfg = parse_config(sim_config_dict(tenant, tmp_path, **sections), tmp_path / "m365sweep.toml")
    graph_tok, ex_tok = sim_tokens(tenant, app, roles)
    cred = StaticTokenCredential(graph=graph_tok, exchange=ex_tok)
    return SimEnv(cfg=cfg, credential=cred, transport=httpx.ASGITransport(app=app), tenant=tenant, app=app)


def _create_app(tenant: Any, **options: Any) -> Any:
    from scanner import simulator

    opts_cls = getattr(simulator, "SimOptions", None)
    if opts_cls is not None:
        return simulator.create_app(tenant, opts_cls(**options))
    return simulator.create_app(tenant)


@pytest.fixture
def sim_tenant() -> Any:
    from scanner.simulator import generate_tenant

    return generate_tenant(users=60, seed=7, scenarios=True)


@pytest.fixture
def sim_app(sim_tenant: Any) -> Any:
    return _create_app(sim_tenant)


@pytest.fixture
def sim_env(tmp_path: Path, sim_tenant: Any, sim_app: Any) -> SimEnv:
    return make_sim_config(tmp_path, sim_tenant, sim_app)


@pytest.fixture
def make_sim_env(tmp_path: Path) -> Callable[..., SimEnv]:
    """Factory: ``make_sim_env(users=30, seed=3, scenarios=False, roles=[...], app_options={...})``."""

    def factory(*, users: int = 60, seed: int = 7, scenarios: bool = True, roles: list[str] | None = None,
                app_options: dict[str, Any] | None = None, tenant: Any = None, **sections: Any) -> SimEnv:
        from scanner.simulator import generate_tenant

        t = tenant if tenant is not None else generate_tenant(users=users, seed=seed, scenarios=scenarios)
        app = _create_app(t, **(app_options or {}))
        return make_sim_config(tmp_path, t, app, roles=roles, **sections)

    return factory


def served_sim_toml(srv: Any, db: Any, extra: str = "") -> str:
    """A config for a simulator served on 127.0.0.1 (``SimulatorServer``) with ``auth.method = "access_token"``: the
    tokens come from M365SWEEP_GRAPH_TOKEN / M365SWEEP_EXCHANGE_TOKEN. ``extra`` is appended (more TOML sections)."""
    return (f'[tenant]\ntenant_id = "{srv.tenant_id}"\n[auth]\nmethod = "access_token"\n'
            f'[endpoints]\ngraph = "{srv.graph_url}"\nexchange = "{srv.exchange_url}"\n'
            f'[storage]\ndatabase = "{db}"\n') + textwrap.dedent(extra)
