"""Tenant-wide sources, read once per scan before any per-account work (bulk endpoints first).

Each source is its data or a NotCollected; all are plain JSON so they are stored in the scan's ``tenant_data`` and a
``--resume``d scan reuses them instead of re-reading (and so compares accounts against the same tenant state).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from scanner.collectors import exchange as exo
from scanner.collectors._util import gap
from scanner.collectors.delegates import index_send_as, read_send_as
from scanner.collectors.domains import read_domains
from scanner.collectors.oauth_grants import read_grants
from scanner.collectors.registration import read_registration
from scanner.collectors.roles import privileged_principals, read_roles
from scanner.graph.client import ApiError
from scanner.graph.factory import Connection
from scanner.snapshot import NotCollected, PrivilegedPrincipal

# source name -> the snapshot collection (or pseudo-collector) it feeds, for gap messages and permission names
SOURCES = {
    "mailboxes": "forwarding", "cas": "protocols", "send_as": "delegates", "blocked": "sending",
    "registration": "registration", "roles": "roles", "grants": "oauth_grants", "domains": "domains",
}


@dataclass
class TenantSources:
    data: dict[str, Any] = field(default_factory=dict)  # name -> JSON data
    gaps: dict[str, NotCollected] = field(default_factory=dict)  # name -> why it failed
    notes: list[str] = field(default_factory=list)
    # derived (not stored)
    directory: exo.MailboxDirectory | None = None
    send_as_by_id: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()

    def ok(self, name: str) -> bool:
        return name in self.data

    def finish(self) -> TenantSources:
        if "mailboxes" in self.data:
            self.directory = exo.MailboxDirectory.from_rows(self.data["mailboxes"])
            if "send_as" in self.data:
                self.send_as_by_id = index_send_as(self.data["send_as"], self.directory)
        self.blocked = frozenset(self.data.get("blocked") or ())
        return self

    def privileged_principals(self) -> tuple[PrivilegedPrincipal, ...] | None:
        """Non-user principals (service principals, groups) in privileged roles; None when roles were not read."""
        if "roles" not in self.data:
            return None
        return tuple(PrivilegedPrincipal(**p) for p in privileged_principals(self.data["roles"]))

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "gaps": {k: v.model_dump() for k, v in self.gaps.items()}, "notes": self.notes}

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> TenantSources:
        return cls(data=dict(blob.get("data") or {}),
                   gaps={k: NotCollected.model_validate(v) for k, v in (blob.get("gaps") or {}).items()},
                   notes=list(blob.get("notes") or [])).finish()


async def read_tenant_sources(conn: Connection, *, need_exchange: bool = True) -> TenantSources:
    src = TenantSources()

    async def run(name: str, coro: Any, service: str) -> None:
        try:
            result = await coro
        except ApiError as err:
            src.gaps[name] = gap(err, SOURCES[name], service=service)
            return
        if name == "roles":
            by_principal, notes = result
            src.data[name] = by_principal
            src.notes.extend(notes)
        elif name == "grants":
            by_principal, all_principals, notes = result
            src.data[name] = {"by_principal": by_principal, "all_principals": all_principals}
            src.notes.extend(notes)
        elif name == "mailboxes":
            src.data[name] = result.rows
        else:
            src.data[name] = result

    g, x = conn.graph, conn.exchange
    jobs = [
        run("domains", read_domains(g), "graph"),
        run("registration", read_registration(g), "graph"),
        run("roles", read_roles(g), "graph"),
        run("grants", read_grants(g), "graph"),
    ]
    if need_exchange:
        jobs += [
            run("mailboxes", exo.read_mailboxes(x), "exchange"),
            run("cas", exo.read_cas(x), "exchange"),
            run("send_as", read_send_as(x), "exchange"),
            run("blocked", exo.read_blocked_senders(x), "exchange"),
        ]
    await asyncio.gather(*jobs)
    return src.finish()
