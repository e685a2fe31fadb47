"""Per-account collection for a chunk of users: one set of ``$batch`` calls per chunk (rules, folders, methods, sent
items for up to 20 users per POST) plus the per-mailbox Exchange cmdlets (Get-InboxRule -IncludeHidden,
Get-MailboxPermission), run concurrently within the clients' in-flight limits. Outlook sub-requests carry the throttle
scope ``mailbox:<user id>``, so one mailbox's 429 (and its Retry-After) delays only that mailbox.

Every collection ends up as data or a NotCollected; an account without an Exchange Online mailbox gets
``NotCollected(not_applicable=True)`` for the mailbox collections (not an error).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scanner.collectors._util import gap, legacy_dn, no_mailbox, parse_dt
from scanner.collectors.auth_methods import parse_methods
from scanner.collectors.delegates import delegates_for, full_access_cmdlet
from scanner.collectors.exchange import cas_for, resolve_recipients
from scanner.collectors.folders import (
    FOLDER_LIST_PARAMS,
    FOLDER_SELECT,
    WELL_KNOWN,
    FolderSet,
    parse_folder,
    rule_folder_ids,
)
from scanner.collectors.forwarding import forwarding_from_mailbox
from scanner.collectors.inbox_rules import (
    exchange_folder_path,
    hidden_rules_cmdlet,
    merge_rules,
    translate_exchange_rule,
    unresolved_destinations,
)
from scanner.collectors.protocols import protocols_from_cas
from scanner.collectors.registration import registration_from_row
from scanner.collectors.tenant import TenantSources
from scanner.collectors.tenant_rows import RowMap
from scanner.collectors.users import parse_user
from scanner.config import Config
from scanner.graph.client import ApiError, BatchItem, BatchResult, GraphApi
from scanner.graph.factory import Connection
from scanner.snapshot import (
    AccountSnapshot,
    NotCollected,
    OAuthGrant,
    Registration,
    RoleAssignment,
    SendingStatus,
    User,
)

log = logging.getLogger("m365sweep.collect")


@dataclass(frozen=True)
class Gap:
    upn: str | None
    collector: str
    why: NotCollected


def _sent_filter(since: datetime) -> str:
    # Outlook datetimes in $filter are unquoted (graph-api.md §8.1); spaces percent-encoded for the batch URL.
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"$filter=sentDateTime%20ge%20{stamp}&$count=true&$top=1&$select=id"


async def _values(graph: GraphApi, res: BatchResult, path: str, scope: str) -> list[dict[str, Any]]:
    if not res.ok:
        raise res.error(path)
    body = res.body if isinstance(res.body, dict) else None
    if body is None or not isinstance(body.get("value", []), list):
        raise ApiError("unexpected response shape", status=res.status, code="malformed_response", path=path)
    values = [v for v in body.get("value") or [] if isinstance(v, dict)]
    nxt = body.get("@odata.nextLink")
    if isinstance(nxt, str) and nxt:
        values.extend(await graph.get_all(nxt, scope=scope))
    return values


async def _count(graph: GraphApi, res: BatchResult, path: str, scope: str) -> int:
    if not res.ok:
        raise res.error(path)
    body = res.body if isinstance(res.body, dict) else {}
    n = body.get("@odata.count")
    if isinstance(n, str) and n.isdigit():  # OData JSON: a count may be a string (IEEE754Compatible=true)
        n = int(n)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    # No count (a service that ignores $count): count the pages instead.
    return len(await _values(graph, res, path, scope))


def _methods_item(uid: str) -> BatchItem:
    return BatchItem(id=f"m|{uid}", url=f"/users/{uid}/authentication/methods")


async def _methods(graph: GraphApi, res: BatchResult) -> Any:
    """One user's authentication methods from its ``$batch`` answer, or the gap saying why not."""
    try:
        return parse_methods(await _values(graph, res, "/authentication/methods", "directory"))
    except ApiError as err:
        return gap(err, "auth_methods")


PreviousLookup = Callable[[list[dict[str, Any]]], dict[str, AccountSnapshot]]
# What an incremental scan reads from last scan's snapshot (besides ``user``): methods_unchanged, known_well_known.
REUSED_COLLECTIONS = ("auth_methods", "registration", "folders")


def methods_unchanged(prev: AccountSnapshot, row: dict[str, Any] | None) -> bool:
    """Incremental scans: last scan's authentication methods still hold when the registration report's record for the
    user is the same as then (same ``methodsRegistered``, same ``lastUpdatedDateTime``, graph-api.md §4.2).

    Only when both records carry a timestamp and last scan read the methods for real; anything missing → read again.
    """
    if row is None or not isinstance(prev.auth_methods, tuple) or not isinstance(prev.registration, Registration):
        return False
    now_dt = parse_dt(row.get("lastUpdatedDateTime"))
    then_dt = prev.registration.last_updated_date_time
    if now_dt is None or then_dt is None or now_dt != then_dt:
        return False
    return sorted(str(m) for m in row.get("methodsRegistered") or []) == sorted(prev.registration.methods_registered)


def known_well_known(prev: AccountSnapshot) -> dict[str, str]:
    """Well-known folder ids from last scan's folders (a default folder keeps its id for the mailbox's lifetime)."""
    if not isinstance(prev.folders, tuple):
        return {}
    return {f.well_known_name: f.id for f in prev.folders
            if f.well_known_name in WELL_KNOWN and not f.id.startswith("exo-path:")}


class AccountCollector:
    def __init__(self, conn: Connection, cfg: Config, sources: TenantSources, now: datetime,
                 domains: set[str], previous: PreviousLookup | None = None) -> None:
        self.conn = conn
        self.cfg = cfg
        self.src = sources
        self.now = now
        self.domains = domains  # accepted domains (lower case); may grow while users are paged (fallback)
        self._fallback_domains = domains
        # incremental scans: users of a chunk -> last scan's snapshots (by lower-case user id)
        self.previous = previous
        # Hidden-rule destinations named by legacyExchangeDN that no mailbox carries, looked up once per scan with
        # Get-Recipient: lower-case DN -> delivery address (None: looked up, not resolvable).
        self._rule_recipients: dict[str, str | None] = {}

    # -------------------------------------------------------------------------------------------------- helpers
    def _is_internal(self, address: str) -> bool:
        a = address.lower()
        if self.src.directory is not None and a in self.src.directory.by_name:
            return True
        return a.rsplit("@", 1)[-1] in self.domains

    def _rule_recipient_resolver(self) -> Callable[[str], str | None]:
        directory = self.src.directory

        def resolve(identity: str) -> str | None:
            found = directory.resolve(identity) if directory is not None else None
            if found is None:
                dn = legacy_dn(identity)
                found = self._rule_recipients.get(dn.lower()) if dn else None
            return found

        return resolve

    async def _resolve_rule_recipients(self, ex: Any, exo_by: Mapping[tuple[str, str], Any]) -> None:
        """Get-Recipient for the chunk's hidden-rule destinations no mailbox carries (mail contacts and mail users
        pointing outside), so the detectors see where the mail goes, not a DN. Each is asked once per scan; one that
        cannot be resolved keeps its DN (the rule is still reported: hidden, forwarding to an unknown recipient)."""
        if self.src.directory is None or ex is None:
            return
        resolve = self._rule_recipient_resolver()
        rows = [r for (kind, _uid), v in exo_by.items() if kind == "rules" and isinstance(v, list) for r in v]
        wanted = [dn for dn in unresolved_destinations(rows, resolve) if dn.lower() not in self._rule_recipients]
        if not wanted:
            return
        found, notes = await resolve_recipients(ex, wanted, self.src.directory)
        for dn in wanted:
            self._rule_recipients[dn.lower()] = found.get(dn.lower())
        for note in notes:  # the tenant's notes are already stored by now: say it in the log, once per DN
            log.warning("hidden inbox rules: %s", note)

    # ---------------------------------------------------------------------------------------------- the chunk
    def _registration(self) -> Mapping[str, Any] | None:
        """The registration report's rows: the finished source, or the rows streamed so far while it is read."""
        src = self.src
        reg = src.data.get("registration")
        if reg is None and src.rows is not None and not src.is_done("registration"):
            reg = RowMap(src.rows, "reg")
        return reg if isinstance(reg, Mapping) else None

    async def collect(self, users: list[dict[str, Any]],
                      io_done: Callable[[], None] | None = None) -> tuple[list[AccountSnapshot], list[Gap]]:
        """Collect one chunk. ``io_done`` is called once its requests are answered, before it waits for tenant-wide
        sources still being read (so the caller can start the next chunk meanwhile)."""
        graph, ex, cfg = self.conn.graph, self.conn.exchange, self.cfg
        await self.src.wait("mailboxes")  # who has a mailbox, and its identity for the cmdlets
        directory = self.src.directory
        reg_keys = [u["id"].lower() for u in users]
        mailbox_rows: dict[str, dict[str, Any] | None] = {}
        try_mailbox: dict[str, bool] = {}
        for u in users:
            row = directory.for_user(u["id"], u["userPrincipalName"]) if directory is not None else None
            mailbox_rows[u["id"]] = row
            # Without Get-Mailbox we cannot know who has a mailbox: ask Graph and let 404s say "none".
            try_mailbox[u["id"]] = row is not None or directory is None

        since = self.now - timedelta(hours=24)
        prev = self.previous(users) if self.previous is not None else {}
        # Incremental: tonight's registration record decides whether last night's methods still hold. The report
        # may not have reached this chunk's users yet (it can list them in another order than the directory), so the
        # decision is taken at assembly, which waits for those rows anyway — never before the chunk's requests,
        # holding its slot; the changed users' methods are read then.
        deferred = [u["id"] for u in users if u["id"].lower() in prev]
        items: list[BatchItem] = []
        for u in users:
            uid = u["id"]
            if uid.lower() not in prev:
                items.append(_methods_item(uid))
            if try_mailbox[uid]:
                scope = f"mailbox:{uid}"
                items.append(BatchItem(id=f"r|{uid}", url=f"/users/{uid}/mailFolders/inbox/messageRules",
                                       scope=scope))
                items.append(BatchItem(id=f"f|{uid}", url=f"/users/{uid}/mailFolders?{FOLDER_LIST_PARAMS}",
                                       scope=scope))
                if cfg.scan.sent_items:
                    items.append(BatchItem(id=f"s|{uid}", scope=scope,
                                           url=f"/users/{uid}/mailFolders/sentitems/messages?{_sent_filter(since)}"))

        # The two Exchange reads per mailbox, batched 10 to a request where the service takes it (ExchangeApi.invoke_many)
        exo_keys: list[tuple[str, str]] = []
        exo_calls: list[tuple[str, dict[str, Any]]] = []
        for u in users:
            row = mailbox_rows[u["id"]]
            if row is None:
                continue
            ident = row.get("primary") or row.get("upn") or u["userPrincipalName"]
            if cfg.scan.hidden_rules:
                exo_keys.append(("rules", u["id"]))
                exo_calls.append(hidden_rules_cmdlet(ident))
            exo_keys.append(("perm", u["id"]))
            exo_calls.append(full_access_cmdlet(ident))

        batch_task = graph.batch(items) if items else _empty()
        results, exo_results = await asyncio.gather(batch_task, ex.invoke_many(exo_calls, scope="exchange"))
        exo_by: dict[tuple[str, str], Any] = dict(zip(exo_keys, exo_results, strict=True))
        await self._resolve_rule_recipients(ex, exo_by)

        snapshots: list[AccountSnapshot] = []
        gaps: list[Gap] = []
        per_user: dict[str, dict[str, Any]] = {}
        # --- phase 1: parse Graph results
        for u in users:
            uid, upn = u["id"], u["userPrincipalName"]
            st: dict[str, Any] = {"mailbox": mailbox_rows[uid] is not None}
            per_user[uid] = st
            if f"m|{uid}" in results:  # the others: _reuse_or_read_methods
                st["methods"] = await _methods(graph, results[f"m|{uid}"])
            if not try_mailbox[uid]:
                continue
            scope = f"mailbox:{uid}"
            for key, name in (("r", "rules"), ("f", "folders")):
                try:
                    st[name] = await _values(graph, results[f"{key}|{uid}"], f"/{name}", scope)
                    st["mailbox"] = True
                except ApiError as err:
                    if err.is_no_mailbox:
                        st["no_mailbox"] = True
                    st[name] = gap(err, "inbox_rules" if name == "rules" else "folders")
            if cfg.scan.sent_items and f"s|{uid}" in results:
                try:
                    st["sent"] = await _count(graph, results[f"s|{uid}"], "/sentitems/messages", scope)
                except ApiError as err:
                    st["sent"] = gap(err, "sending")
            await asyncio.sleep(0)

        # --- phase 2: folders that rules point at (deeper than the top level, and their ancestors) and well-known
        # names. English default names of top-level folders name them for free; ids are fetched only when the list
        # lacks them and well-known names are looked up only for targets that could be localised default folders.
        targets: dict[str, set[str]] = {}
        wk: dict[str, dict[str, str]] = {}
        roots: dict[str, str | None] = {}
        for u in users:
            uid = u["id"]
            st = per_user[uid]
            if not isinstance(st.get("folders"), list) or not isinstance(st.get("rules"), list):
                continue
            try:
                fs = FolderSet([f for f in (parse_folder(x) for x in st["folders"]) if f])
                ex_rules = exo_by.get(("rules", uid))
                moves = rule_folder_ids(st["rules"])
                ex_moves = isinstance(ex_rules, list) and any(r.get("MoveToFolder") or r.get("CopyToFolder")
                                                              for r in ex_rules)
            except DATA_ERRORS as exc:
                # Wrongly typed JSON from the service for this mailbox: its rules are not read, the chunk goes on.
                st["rules"] = st["folders"] = _malformed(exc)
                continue
            st["folderset"] = fs
            roots[uid] = root = fs.top_level_parent()
            names = fs.derive_well_known(root)
            if moves or ex_moves:
                p = prev.get(uid.lower())
                known = known_well_known(p) if p is not None else {}
                if known:
                    self.conn.stats.skipped["well_known_folders"] += len(set(known) - set(names))
                names = {**known, **names}
            wk[uid] = names
            if moves:
                targets[uid] = moves
        fetched: set[tuple[str, str]] = set()
        for _round in range(3):  # target, parent, grand-parent: deeper chains are rare and stay partly unknown
            items2 = []
            for uid, moves in targets.items():
                fs = per_user[uid]["folderset"]
                for fid in sorted(fs.missing_ancestors(moves, roots[uid])):
                    if (uid, fid) in fetched:
                        continue
                    fetched.add((uid, fid))
                    items2.append(BatchItem(id=f"t|{uid}|{fid}", scope=f"mailbox:{uid}",
                                            url=f"/users/{uid}/mailFolders/{fid}?$select={FOLDER_SELECT}"))
            if not items2:
                break
            for key, res in (await graph.batch(items2)).items():
                _kind, uid, _fid = key.split("|", 2)
                if not res.ok or not isinstance(res.body, dict):
                    continue  # a deleted target stays unresolved (the rule keeps pointing at its id)
                try:
                    f = parse_folder(res.body)
                except DATA_ERRORS:
                    f = None
                if f is not None:
                    per_user[uid]["folderset"].add(f)
        items3: list[BatchItem] = []
        for uid, moves in targets.items():
            fs = per_user[uid]["folderset"]
            for name in sorted(fs.wanted_lookups(moves, roots[uid], wk[uid])):
                items3.append(BatchItem(id=f"w|{uid}|{name}", scope=f"mailbox:{uid}",
                                        url=f"/users/{uid}/mailFolders/{name}?$select=id"))
        for key, res in (await graph.batch(items3) if items3 else {}).items():
            _kind, uid, name = key.split("|", 2)
            if res.ok and isinstance(res.body, dict) and isinstance(res.body.get("id"), str):
                wk[uid].setdefault(name, res.body["id"])  # absent: a well-known folder this mailbox lacks
        for uid, names in wk.items():
            per_user[uid]["folderset"].apply_well_known(names)

        # --- assemble snapshots (the tenant-wide sources they join may still be arriving)
        if io_done is not None:
            io_done()
        await self.src.wait_rows("registration", reg_keys)
        if deferred:
            await self._reuse_or_read_methods(deferred, prev, per_user)
        await self.src.wait_for_assembly()
        dom = self.src.data.get("domains")
        accepted = set(dom.get("domains") or []) if isinstance(dom, dict) else set()
        self.domains = accepted or self._fallback_domains
        for u in users:
            uid, upn = u["id"], u["userPrincipalName"]
            st = per_user[uid]
            row = mailbox_rows[uid]
            if row is not None:
                has_mailbox = True
            elif directory is not None:
                has_mailbox = False  # Get-Mailbox is authoritative (graph-api.md §1.3)
            else:
                # Get-Mailbox failed: unknown unless Graph said "no mailbox"; unknown reads as gaps, never clean.
                has_mailbox = not st.get("no_mailbox")
            mailbox_type = row.get("type") if row is not None else ("UserMailbox" if st.get("mailbox") else None)
            s = self._assemble(u, row, st, exo_by, gaps, has_mailbox, mailbox_type)
            for name, why in s.gaps().items():
                gaps.append(Gap(upn, name, why))
            snapshots.append(s)
            await asyncio.sleep(0)  # let answers waiting in the event loop go on (keeps request slots busy)
        return snapshots, gaps

    async def _reuse_or_read_methods(self, uids: list[str], prev: dict[str, AccountSnapshot],
                                     per_user: dict[str, dict[str, Any]]) -> None:
        """Incremental, once tonight's registration rows are in: reuse last night's methods where the record is
        unchanged, read the others now."""
        registration, stats = self._registration(), self.conn.stats
        items = []
        for uid in uids:
            if registration is not None and methods_unchanged(prev[uid.lower()], registration.get(uid.lower())):
                per_user[uid]["methods"] = prev[uid.lower()].auth_methods
                stats.skipped["auth_methods"] += 1
            else:
                items.append(_methods_item(uid))
        if items:
            for key, res in (await self.conn.graph.batch(items)).items():
                per_user[key.split("|", 1)[1]]["methods"] = await _methods(self.conn.graph, res)

    def _assemble(self, u: dict[str, Any], row: dict[str, Any] | None, st: dict[str, Any],
                  exo_by: dict[tuple[str, str], Any], gaps: list[Gap], has_mailbox: bool,
                  mailbox_type: str | None) -> AccountSnapshot:
        """One account's snapshot. Wrongly typed JSON from the service (a number for a name, a list for an object)
        makes the collections it touches NotCollected for this account only — never an error for its whole chunk."""
        uid, upn = u["id"], u["userPrincipalName"]
        try:
            user = parse_user(u, mailbox_type)
        except DATA_ERRORS as exc:
            user = User(id=uid, user_principal_name=upn, mailbox_type=mailbox_type)
            gaps.append(Gap(upn, "user", _malformed(exc, "user properties")))
        base: dict[str, Any] = {"user": user, "auth_methods": st["methods"], **self._tenant_level(uid, upn)}
        if not has_mailbox:
            return AccountSnapshot(**base, **{c: no_mailbox() for c in MAILBOX_COLLECTIONS})
        for attempt in range(3):
            mine: list[Gap] = []
            try:
                if attempt == 2:
                    mailbox = {c: _malformed(ValueError("unreadable mailbox data")) for c in MAILBOX_COLLECTIONS}
                else:
                    mailbox = self._mailbox_collections(u, row, st, exo_by, mine)
                snap = AccountSnapshot(**base, **mailbox)
            except DATA_ERRORS as exc:
                # 1st retry: without the rule data (the usual culprit); 2nd: every mailbox collection is a gap.
                st["rules"] = st["folders"] = _malformed(exc)
                st.pop("folderset", None)
                exo_by.pop(("rules", uid), None)
                continue
            gaps.extend(mine)
            return snap
        raise AssertionError("unreachable")  # pragma: no cover

    def _tenant_level(self, uid: str, upn: str) -> dict[str, Any]:
        src, key = self.src, uid.lower()
        out: dict[str, Any] = {}
        reg = self._registration()
        if reg is not None:
            r = reg.get(key)
            out["registration"] = registration_from_row(r) if r else registration_from_row({})
        else:
            out["registration"] = src.gaps.get("registration")
        if "roles" in src.data:
            out["roles"] = tuple(RoleAssignment(**{k: v for k, v in r.items() if k != "principal_id"})
                                 for r in src.data["roles"].get(key, []))
        else:
            out["roles"] = src.gaps.get("roles")
        if "grants" in src.data:
            out["oauth_grants"] = tuple(OAuthGrant(**g) for g in src.data["grants"]["by_principal"].get(key, []))
        else:
            out["oauth_grants"] = src.gaps.get("grants")
        # Exchange role groups: joined by Entra id / mailbox names / UPN (a member needs no mailbox of its own)
        out["exchange_role_groups"] = src.role_group_memberships(uid, upn)
        return out

    def _mailbox_collections(self, u: dict[str, Any], row: dict[str, Any] | None, st: dict[str, Any],
                             exo_by: dict[tuple[str, str], Any], gaps: list[Gap]) -> dict[str, Any]:
        uid, upn = u["id"], u["userPrincipalName"]
        src, directory = self.src, self.src.directory
        out: dict[str, Any] = {}
        # forwarding / protocols / delegates come from Exchange
        if row is not None and directory is not None:
            out["forwarding"] = forwarding_from_mailbox(row, directory, src.data.get("recipients"))
            if "cas" in src.data:
                cas = cas_for(src.data["cas"], uid, row)
                out["protocols"] = protocols_from_cas(cas) if cas is not None else NotCollected(
                    reason="mailbox missing from Get-CASMailbox", code="not_found")
            else:
                out["protocols"] = src.gaps.get("cas")
            perm = exo_by.get(("perm", uid))
            if isinstance(perm, ApiError):
                out["delegates"] = gap(perm, "delegates", service="exchange")
            elif "send_as" not in src.data:
                out["delegates"] = src.gaps.get("send_as")
            else:
                out["delegates"] = delegates_for(row, directory, perm or [], src.send_as_by_id.get(uid.lower(), []))
        else:
            why = src.gaps.get("mailboxes") or NotCollected(reason="Exchange mailbox data unavailable")
            out["forwarding"] = out["delegates"] = why
            out["protocols"] = src.gaps.get("cas") or why

        # inbox rules: Graph merged with Exchange's hidden ones
        fs: FolderSet | None = st.get("folderset")
        if fs is None:
            fs = FolderSet([])
        ex_raw = exo_by.get(("rules", uid))
        ex_rules: list[dict[str, Any]] | None = None
        if isinstance(ex_raw, list):
            resolve_recipient = self._rule_recipient_resolver()
            ex_rules = [translate_exchange_rule(r, resolve_recipient=resolve_recipient,
                                                resolve_folder=lambda p: fs.resolve_path(exchange_folder_path(p)))
                        for r in ex_raw]
        elif isinstance(ex_raw, ApiError):
            why = gap(ex_raw, "inbox_rules", service="exchange")
            gaps.append(Gap(upn, "inbox_rules", why.model_copy(
                update={"reason": f"hidden rules (Get-InboxRule -IncludeHidden) not read: {why.reason}"})))
        if isinstance(st.get("rules"), list):
            out["inbox_rules"] = merge_rules(st["rules"], ex_rules, self._is_internal)
        else:
            out["inbox_rules"] = st.get("rules") or NotCollected(reason="inbox rules not read")
        if isinstance(st.get("folders"), list):
            out["folders"] = fs.folders()
        else:
            out["folders"] = st.get("folders") or NotCollected(reason="folders not read")

        # sending: restricted senders (bulk) + sent items in the last 24 h (per mailbox)
        if "blocked" in src.data:
            addrs = {a.lower() for a in (upn, u.get("mail"), (row or {}).get("primary"), *(row or {}).get(
                "addresses", [])) if a}
            sent = st.get("sent")
            if isinstance(sent, NotCollected):
                gaps.append(Gap(upn, "sending", sent.model_copy(
                    update={"reason": f"sent items not counted: {sent.reason}"})))
                sent = None
            out["sending"] = SendingStatus(blocked_from_sending=bool(addrs & src.blocked), sent_last_24h=sent)
        else:
            out["sending"] = src.gaps.get("blocked")
        return out


MAILBOX_COLLECTIONS = ("forwarding", "inbox_rules", "folders", "delegates", "sending", "protocols")
# What a parser or a pydantic model raises on JSON of the wrong type (ValidationError is a ValueError).
DATA_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def _malformed(exc: BaseException, what: str = "data") -> NotCollected:
    return NotCollected(reason=f"unexpected {what} from the service ({type(exc).__name__})", code="malformed_response")


async def _empty() -> dict[str, BatchResult]:
    return {}
