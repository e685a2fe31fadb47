"""Tenant-wide sources, read once per scan, concurrently with each other and with the per-account work (which waits
only for what it needs: the mailbox directory first, its own users' registration rows, the rest at assembly).

Each source is its data or a NotCollected. The small ones are plain JSON stored in the scan's ``tenant_data``; the
large ones (Get-Mailbox, Get-CASMailbox, the registration report) are streamed into the scan database page by page
(:mod:`scanner.collectors.tenant_rows`) and the blob only says so. A ``--resume``d scan reuses both instead of
re-reading (and so compares accounts against the same tenant state).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from scanner.collectors import exchange as exo
from scanner.collectors._util import gap
from scanner.collectors.app_roles import read_app_roles, scanner_app_id
from scanner.collectors.delegates import index_send_as, read_send_as
from scanner.collectors.domains import read_domains
from scanner.collectors.exchange_role_groups import (
    RoleGroupReadError,
    index_role_groups,
    memberships_for,
    read_role_groups,
    role_groups_gap,
    tenant_role_groups,
)
from scanner.collectors.oauth_grants import read_grants
from scanner.collectors.outbound_policy import OutboundReadError, outbound_policy_gap, read_outbound_policy
from scanner.collectors.registration import compact_registration, read_registration
from scanner.collectors.roles import privileged_principals, read_roles
from scanner.collectors.tenant_rows import RowIndex, RowMap, RowStore, StoredMailboxDirectory
from scanner.collectors.transport_rules import read_transport_rules, transport_rules_gap
from scanner.graph.client import ApiError, ExchangeApi, GraphApi
from scanner.graph.factory import Connection, token_claims
from scanner.snapshot import (
    AppRoleGrant,
    ExchangeRoleGroup,
    ExchangeRoleGroupMembership,
    NotCollected,
    OutboundPolicy,
    PrivilegedPrincipal,
    TransportRule,
)

# source name -> the snapshot collection (or pseudo-collector) it feeds, for gap messages and permission names
SOURCES = {
    "mailboxes": "forwarding", "cas": "protocols", "send_as": "delegates", "blocked": "sending",
    "registration": "registration", "roles": "roles", "grants": "oauth_grants", "domains": "domains",
    "app_roles": "app_roles",  # application permissions on Graph / Exchange Online (tenant-level only)
    "transport_rules": "transport_rules",  # Get-TransportRule: the organisation's mail-flow rules (tenant-level only)
    # Get-RemoteDomain + Get-HostedOutboundSpamFilterPolicy / -Rule: the auto-forwarding exceptions (TenantInfo)
    "outbound_policy": "outbound_policy",
    # Get-RoleGroup + Get-RoleGroupMember: Exchange RBAC role groups; each member account's snapshot gets its
    # memberships (joined through the mailbox directory at assembly), unresolved members stay on TenantInfo
    "exchange_role_groups": "exchange_role_groups",
}
# Sources that only feed TenantInfo (built once every source is read): per-account assembly never waits for them.
TENANT_ONLY = ("app_roles", "transport_rules", "outbound_policy")


STREAMED = ("mailboxes", "cas", "registration")  # large: rows in the scan database (tenant_rows), not in the blob
_KINDS = {"mailboxes": ("mbx", "mbn"), "cas": ("casr", "casn"), "registration": ("reg",)}


@dataclass
class TenantSources:
    data: dict[str, Any] = field(default_factory=dict)  # name -> JSON data (a Mapping over rows when streamed)
    gaps: dict[str, NotCollected] = field(default_factory=dict)  # name -> why it failed
    # name -> why it was read only in part (kept, and recorded as a tenant-wide coverage gap): e.g. roles whose
    # role-assignable groups' members could not be read
    partial: dict[str, NotCollected] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: RowStore | None = None  # where streamed sources live; None: everything in memory (from_json of an old blob)
    # derived (not stored)
    directory: exo.MailboxDirectory | StoredMailboxDirectory | None = None
    send_as_by_id: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()
    # progress while the sources are still being read (the per-account phase overlaps them)
    _done: dict[str, asyncio.Event] = field(default_factory=dict)
    _pulse: dict[str, asyncio.Event] = field(default_factory=dict)
    _finished: bool = False
    _send_as_indexed: bool = False
    # account key -> Exchange role-group memberships, and role group -> unresolved members (built once, lazily: the
    # join needs the mailbox directory)
    _rg_index: tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]] | None = None

    def ok(self, name: str) -> bool:
        return name in self.data

    def finish(self) -> TenantSources:
        if "mailboxes" in self.data:
            if isinstance(self.data["mailboxes"], list):
                self.directory = exo.MailboxDirectory.from_rows(self.data["mailboxes"])
            elif self.rows is not None:
                self.directory = StoredMailboxDirectory(self.rows)
            if "send_as" in self.data and not self._send_as_indexed:
                self.send_as_by_id = index_send_as(self.data["send_as"], self.directory)
                self._send_as_indexed = True
        self.blocked = frozenset(self.data.get("blocked") or ())
        self._finished = True
        for ev in self._done.values():
            ev.set()
        return self

    # ---- waiting for sources that are still being read
    def _event(self, name: str) -> asyncio.Event:
        ev = self._done.get(name)
        if ev is None:
            ev = self._done[name] = asyncio.Event()
            if self._finished:
                ev.set()
        return ev

    def is_done(self, name: str) -> bool:
        return self._finished or self._event(name).is_set()

    async def wait(self, *names: str) -> None:
        """Until each named source is read (data or gap)."""
        for n in names:
            await self._event(n).wait()

    async def wait_all(self) -> None:
        await self.wait(*SOURCES)

    async def wait_for_assembly(self) -> None:
        """Everything a snapshot is assembled from except the registration report (see :meth:`wait_rows`)."""
        await self.wait(*(n for n in SOURCES if n != "registration" and n not in TENANT_ONLY))
        if not self._finished:
            if self.directory is not None and "send_as" in self.data and not self._send_as_indexed:
                self.send_as_by_id = index_send_as(self.data["send_as"], self.directory)
                self._send_as_indexed = True
            self.blocked = frozenset(self.data.get("blocked") or ())

    async def wait_rows(self, name: str, keys: list[str]) -> None:
        """Until every key has its row in a streamed source, or the source is finished (a user the report does not
        list waits for the end). The per-account phase awaits only its own users' registration rows: the report's
        5 requests / 10 s budget serves 500 rows/s, ahead of the sweep when its order follows the directory."""
        kind = _KINDS[name][0]
        while not self.is_done(name):
            pulse = self._pulse.setdefault(name, asyncio.Event())
            if self.rows is not None and all(self.rows.has(kind, k) for k in keys):
                return
            await pulse.wait()

    def _progress(self, name: str) -> None:
        ev = self._pulse.pop(name, None)
        if ev is not None:
            ev.set()

    def privileged_principals(self) -> tuple[PrivilegedPrincipal, ...] | None:
        """Non-user principals (service principals, groups) in privileged roles; None when roles were not read."""
        if "roles" not in self.data:
            return None
        return tuple(PrivilegedPrincipal(**p) for p in privileged_principals(self.data["roles"]))

    def app_role_grants(self) -> tuple[AppRoleGrant, ...] | None:
        """Application permissions on Graph / Exchange Online; None when the source was not read ("unknown")."""
        if "app_roles" not in self.data:
            return None
        return tuple(AppRoleGrant(**r) for r in self.data["app_roles"].get("assignments") or ())

    def transport_rules(self) -> tuple[TransportRule, ...] | None:
        """The organisation's mail-flow rules; None when Get-TransportRule was not read ("unknown", never "none")."""
        if "transport_rules" not in self.data:
            return None
        return tuple(TransportRule(**r) for r in self.data["transport_rules"])

    def outbound_policy(self) -> OutboundPolicy | None:
        """Remote domains and outbound spam policies / rules; None when they were not read ("unknown", never "none")."""
        if "outbound_policy" not in self.data:
            return None
        return OutboundPolicy.model_validate(self.data["outbound_policy"])

    def _role_group_index(self) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        if self._rg_index is None:
            self._rg_index = index_role_groups(self.data.get("exchange_role_groups") or [], self.directory)
        return self._rg_index

    def role_group_memberships(self, user_id: str, upn: str
                               ) -> tuple[ExchangeRoleGroupMembership, ...] | NotCollected | None:
        """The account's Exchange role-group memberships; the source's gap when it could not be read (None: the
        source was not read at all in this scan, e.g. Exchange off)."""
        if "exchange_role_groups" not in self.data:
            return self.gaps.get("exchange_role_groups")
        return memberships_for(self._role_group_index()[0], user_id, upn)

    def exchange_role_groups(self) -> tuple[ExchangeRoleGroup, ...] | None:
        """Every role group with its roles, members and unresolved members; None when not read ("unknown")."""
        if "exchange_role_groups" not in self.data:
            return None
        return tenant_role_groups(self.data["exchange_role_groups"], self._role_group_index()[1])

    def scanner_app_id(self) -> str | None:
        return (self.data.get("app_roles") or {}).get("scanner_app_id")

    def to_json(self) -> dict[str, Any]:
        data = {k: ({"$rows": k} if k in STREAMED and not isinstance(v, list | dict) else v)
                for k, v in self.data.items()}
        return {"data": data, "gaps": {k: v.model_dump() for k, v in self.gaps.items()}, "notes": self.notes,
                "partial": {k: v.model_dump() for k, v in self.partial.items()}}

    @classmethod
    def from_json(cls, blob: dict[str, Any], rows: RowStore | None = None) -> TenantSources:
        data = dict(blob.get("data") or {})
        for k, v in list(data.items()):
            if isinstance(v, dict) and set(v) == {"$rows"}:
                if rows is None:
                    raise ValueError("streamed tenant rows without a row store")
                data[k] = _view(rows, k)
        return cls(data=data, rows=rows,
                   gaps={k: NotCollected.model_validate(v) for k, v in (blob.get("gaps") or {}).items()},
                   partial={k: NotCollected.model_validate(v) for k, v in (blob.get("partial") or {}).items()},
                   notes=list(blob.get("notes") or [])).finish()


def _view(rows: RowStore, name: str) -> Any:
    if name == "mailboxes":
        return MAILBOXES_STREAMED
    if name == "cas":
        return RowIndex(rows, "casn", "casr")
    return RowMap(rows, "reg")


MAILBOXES_STREAMED = "streamed"  # data["mailboxes"] marker: the directory is a StoredMailboxDirectory


# Rows of a bulk page parsed and stored per slice, yielding to the event loop in between: a 1,000-row page stored at
# once holds the loop for ~0.1-0.2 s, while answers to the sweep's in-flight requests wait to be handled.
SLICE = 200


async def _slices(page: list[Any]) -> AsyncIterator[list[Any]]:
    for i in range(0, len(page), SLICE):
        yield page[i:i + SLICE]
        await asyncio.sleep(0)


async def _stream_mailboxes(ex: ExchangeApi, rows: RowStore, forward_targets: list[str]) -> str:
    seq = 0
    async for page in ex.iter_invoke("Get-Mailbox", exo.UNLIMITED):
        async for part in _slices(page):
            mapped = [exo._mailbox_row(r) for r in part]
            StoredMailboxDirectory.add_page(rows, mapped, seq)
            forward_targets.extend(exo.forward_targets(mapped))
            seq += 1
    return MAILBOXES_STREAMED


async def _stream_cas(ex: ExchangeApi, rows: RowStore) -> RowIndex:
    seq = 0
    async for page in ex.iter_invoke("Get-CASMailbox", exo.UNLIMITED):
        async for part in _slices(page):
            recs, names = [], []
            for i, r in enumerate(part):
                row = exo._cas_row(r)
                key = f"{seq}.{i}"
                recs.append((key, row))
                names.extend((k, key) for k in ([row["id"]] if row["id"] else []) + row["keys"])
            rows.put("casr", recs)
            rows.put("casn", names)
            seq += 1
    return RowIndex(rows, "casn", "casr")


async def _stream_registration(g: GraphApi, rows: RowStore, src: TenantSources) -> RowMap:
    async for page in g.iter_pages("/reports/authenticationMethods/userRegistrationDetails", scope="reports"):
        async for part in _slices(page):
            rows.put("reg", compact_registration(part).items())
        src._progress("registration")
    return RowMap(rows, "reg")


async def _scanner_app(conn: Connection, configured: str | None) -> str | None:
    # Only the token's claims are read (appid / azp), never logged; a credential that cannot say falls back to the
    # configured client id.
    try:
        claims = token_claims(await conn.graph_token())
    except Exception:  # noqa: BLE001 - any credential failure here only loses the self-recognition
        claims = {}
    return scanner_app_id(claims, configured)


async def _read_app_roles(conn: Connection, configured: str | None) -> tuple[dict[str, Any], list[str]]:
    rows, notes = await read_app_roles(conn.graph)
    return {"assignments": rows, "scanner_app_id": await _scanner_app(conn, configured)}, notes


async def read_tenant_sources(conn: Connection, *, need_exchange: bool = True, rows: RowStore | None = None,
                              src: TenantSources | None = None, client_id: str | None = None) -> TenantSources:
    """Read every tenant-wide source concurrently. With ``rows`` the large ones are streamed into the scan database;
    pass ``src`` to watch progress (``src.wait``/``wait_rows``) while this runs in a task. ``client_id``: the
    configured app id, to recognise the scanner's own application permissions when the token does not say."""
    src = src if src is not None else TenantSources(rows=rows)
    src.rows = rows
    if rows is not None:
        rows.clear(k for name in STREAMED for k in _KINDS[name])
    roles_partial: list[NotCollected] = []  # role-holding groups whose members could not be read (read_roles)
    rg_partial: list[NotCollected] = []  # groups inside Exchange role groups whose members could not be read

    async def run(name: str, coro: Any, service: str) -> None:
        try:
            result = await coro
        except OutboundReadError as err:  # names the one of its three cmdlets that failed, and the Exchange role
            src.gaps[name] = outbound_policy_gap(err.cmdlet, err.err)
        except RoleGroupReadError as err:  # Get-RoleGroup or Get-RoleGroupMember, and the Exchange role
            src.gaps[name] = role_groups_gap(err.cmdlet, err.err)
        except ApiError as err:
            # Get-TransportRule needs an Exchange configuration role the mailbox cmdlets do not: name it.
            special = transport_rules_gap(err) if name == "transport_rules" else None
            src.gaps[name] = special or gap(err, SOURCES[name], service=service)
        else:
            if name == "roles":
                by_principal, notes = result
                src.data[name] = by_principal
                src.notes.extend(notes)
                if roles_partial:
                    first = roles_partial[0]
                    src.partial[name] = first if len(roles_partial) == 1 else first.model_copy(
                        update={"reason": "; ".join(p.reason for p in roles_partial)})
            elif name == "app_roles":
                data, notes = result
                src.data[name] = data
                src.notes.extend(notes)
            elif name == "grants":
                by_principal, all_principals, notes = result
                src.data[name] = {"by_principal": by_principal, "all_principals": all_principals}
                src.notes.extend(notes)
            elif name == "mailboxes":
                src.data[name] = result if isinstance(result, str) else result.rows
            elif name == "exchange_role_groups":
                groups, notes = result
                src.data[name] = groups
                src.notes.extend(notes)
                if rg_partial:
                    first = rg_partial[0]
                    src.partial[name] = first if len(rg_partial) == 1 else first.model_copy(
                        update={"reason": "; ".join(p.reason for p in rg_partial)})
            else:
                src.data[name] = result
        finally:
            if name != "mailboxes":  # set by mailboxes_then_directory once the directory is built
                src._event(name).set()
                src._progress(name)

    forward_targets: list[str] = []

    async def mailboxes_then_directory(coro: Any) -> None:
        # The directory (and the SendAs index, which needs it) is what per-account work waits for first.
        try:
            await run("mailboxes", coro, "exchange")
            if "mailboxes" in src.data:
                m = src.data["mailboxes"]
                src.directory = exo.MailboxDirectory.from_rows(m) if isinstance(m, list) else \
                    StoredMailboxDirectory(rows)  # type: ignore[arg-type]
                if isinstance(m, list):
                    forward_targets.extend(exo.forward_targets(m))
                # ForwardingAddress targets no mailbox carries (mail contacts, mail users): usually none, so no call.
                resolved, notes = await exo.resolve_recipients(x, forward_targets, src.directory)
                src.data["recipients"] = resolved
                src.notes.extend(notes)
        finally:
            src._event("mailboxes").set()

    g, x = conn.graph, conn.exchange
    streamed = rows is not None
    jobs = [
        run("domains", read_domains(g), "graph"),
        run("registration", _stream_registration(g, rows, src) if streamed else read_registration(g), "graph"),
        run("roles", read_roles(g, partial=roles_partial), "graph"),
        run("grants", read_grants(g), "graph"),
        run("app_roles", _read_app_roles(conn, client_id), "graph"),
    ]
    if need_exchange:
        jobs += [
            mailboxes_then_directory(_stream_mailboxes(x, rows, forward_targets) if streamed
                                     else exo.read_mailboxes(x)),
            run("cas", _stream_cas(x, rows) if streamed else exo.read_cas(x), "exchange"),
            run("send_as", read_send_as(x), "exchange"),
            run("blocked", exo.read_blocked_senders(x), "exchange"),
            run("transport_rules", read_transport_rules(x), "exchange"),
            run("outbound_policy", read_outbound_policy(x), "exchange"),
            run("exchange_role_groups", read_role_groups(x, g, rg_partial), "exchange"),
        ]
    else:
        for name in ("mailboxes", "cas", "send_as", "blocked", "transport_rules", "outbound_policy",
                     "exchange_role_groups"):
            src._event(name).set()
    await asyncio.gather(*jobs)
    return src.finish()
