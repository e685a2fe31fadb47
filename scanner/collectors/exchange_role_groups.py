"""Exchange Online RBAC role groups and their members, read once per tenant (detections.md §D1 "Exchange RBAC ...
new management role assignments").

An attacker holding an admin account can make a taken-over mailbox a member of an Exchange *role group* ("Organization
Management", "Recipient Management", "Discovery Management", a custom group holding "Mailbox Import Export" or
"ApplicationImpersonation" ...): Exchange admin rights that Entra directory roles do not show. Two cmdlets:

- ``Get-RoleGroup`` (``ResultSize Unlimited``): ``Name``, ``Identity``, ``Guid`` / ``ExchangeObjectId``, ``Roles``
  (management role names; a role may be printed as its full identity, ``<org>\\<role>`` or a DN-like path: the last
  segment is kept), ``RoleGroupType`` ("Standard", "Linked" ...), ``Description``, ``WhenChanged``, and ``Members``
  (names only — not used: it cannot tell a user from a group).
- ``Get-RoleGroupMember -Identity <group>`` for each group: ``ReducedRecipient`` objects — ``Name``, ``Identity``,
  ``DisplayName``, ``RecipientType`` ("UserMailbox", "User", "MailUniversalSecurityGroup" ...),
  ``ExternalDirectoryObjectId`` (the Entra object id, when the member is synchronised to Entra), ``PrimarySmtpAddress``,
  ``WindowsLiveID``, ``DistinguishedName``, ``Guid``.

Read liberally (graph-api.md §3.2): a multi-valued property may be an array, a single string or null; a member may
come back as a bare string (its name) instead of an object.

Members are joined to accounts by ``ExternalDirectoryObjectId``, else through the mailbox directory the scan already
has (name, alias, UPN, address, DN, GUID: :class:`scanner.collectors.exchange.DirectoryLookups`), else by the address
/ WindowsLiveID as a UPN. A member matched to none of these is kept as an *unresolved member* of the role group
(``TenantInfo.exchange_role_groups``): named, never dropped.

A member that is a group (a mail-enabled security group: ``RecipientType`` "MailUniversalSecurityGroup") gives every
account in it the role group's roles — the quiet way to hand a taken-over mailbox Exchange admin rights is to add it to
a group that is already in Organization Management. Such a group synchronised to Entra (``ExternalDirectoryObjectId``)
is expanded through Graph, ``GET /groups/{id}/transitiveMembers/microsoft.graph.user?$select=id`` (nested groups
flattened; GroupMember.Read.All, as for role-assignable groups), and each user in it gets the membership with
``via_group`` = the group's name. A group with no Entra id (the ``TenantAdmins_*`` / ``ExchangeServiceAdmins_*``
groups Exchange links to the Global / Exchange Administrator roles, whose holders the Entra roles collector reads), or
one whose members could not be read (a note says why and names the permission), stays an unresolved member.

``Get-ManagementRoleAssignment -RoleAssigneeType User`` adds the management roles assigned to a user directly
(``New-ManagementRoleAssignment -Role "Mailbox Import Export" -User ...``): Exchange admin rights outside any role
group. Each enabled one is kept in the shape of a role group with one member (``role_group_type`` ``DirectAssignment``,
its name the assignment's ``Name``, its assignee resolved like a member from ``RoleAssigneeName`` / ``User`` /
``EffectiveUserName``), so an account's ``exchange_role_groups`` hold both. That cmdlet refused or failing is a partial
gap naming it (the role groups are kept).

Permissions: ``Exchange.ManageAsApp`` plus an Exchange role that holds the three cmdlets — "View-Only Configuration"
(role group View-Only Organization Management; the Entra role Global Reader) or "Role Management" (Organization
Management; Exchange Administrator). The recipient roles the per-mailbox collectors need do not include them. A
refusal (403, or "not recognized as a name of a cmdlet") is a coverage gap naming the cmdlet and that role, never
"no members". A group deleted between the two calls (not found) is skipped with a note.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from scanner.collectors._util import as_list, as_str, exchange_refusal_gap, iso, parse_dt, parse_recipient
from scanner.collectors.roles import GROUP_MEMBERS_PERMISSION, _group_members
from scanner.graph.client import ApiError, ExchangeApi, GraphApi
from scanner.permissions import ROLE_GROUPS_READ_ROLE
from scanner.snapshot import DIRECT_ASSIGNMENT, ExchangeRoleGroup, ExchangeRoleGroupMembership, NotCollected

GROUPS = "Get-RoleGroup"
MEMBERS = "Get-RoleGroupMember"
ASSIGNMENTS = "Get-ManagementRoleAssignment"
DIRECT = DIRECT_ASSIGNMENT  # role_group_type of a management role assigned directly to a user (no role group)
_CONCURRENCY = 4  # Get-RoleGroupMember calls in flight: a tenant has ~15-40 role groups


class RoleGroupReadError(Exception):
    """One of the two cmdlets failed: which one, and the API error."""

    def __init__(self, cmdlet: str, err: ApiError) -> None:
        super().__init__(f"{cmdlet}: {err.short()}")
        self.cmdlet, self.err = cmdlet, err


def role_groups_gap(cmdlet: str, err: ApiError) -> NotCollected:
    """The coverage gap for a failed read: a refusal names the cmdlet and the Exchange role; else what failed."""
    return exchange_refusal_gap(cmdlet, err, ROLE_GROUPS_READ_ROLE,
                                "Exchange role-group memberships (Exchange admin rights) are unknown") or NotCollected(
        reason=f"{cmdlet} failed: {err.short()}", code=err.code or (str(err.status) if err.status else None))


def role_name(value: Any) -> str | None:
    """A management role as Get-RoleGroup prints it (a name, ``org\\Role``, a path ``.../Configuration/Role``, or an
    object with Name) -> its name."""
    if isinstance(value, dict):
        value = value.get("Name") or value.get("Identity")
    text = as_str(value)
    if text is None:
        return None
    return re.split(r"[\\/]", text)[-1].strip() or None


def role_group_row(r: dict[str, Any]) -> dict[str, Any] | None:
    """One Get-RoleGroup object as plain JSON; None for an object without a name."""
    name = as_str(r.get("Name")) or as_str(r.get("DisplayName")) or as_str(r.get("Identity"))
    if name is None:
        return None
    roles: list[str] = []
    for v in as_list(r.get("Roles")):
        n = role_name(v)
        if n and n not in roles:
            roles.append(n)
    guid = as_str(r.get("Guid")) or as_str(r.get("ExchangeObjectId"))
    return {"name": name, "identity": as_str(r.get("Identity")) or guid, "guid": guid, "roles": roles,
            "role_group_type": as_str(r.get("RoleGroupType")), "description": as_str(r.get("Description")),
            "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC")), "members": []}


def member_row(m: Any) -> dict[str, Any] | None:
    """One Get-RoleGroupMember object (or a bare name) as plain JSON."""
    if not isinstance(m, dict):
        name = as_str(m)
        return {"name": name, "identity": name, "recipient_type": None, "id": None, "keys": [name]} if name else None
    name = as_str(m.get("Name")) or as_str(m.get("DisplayName")) or as_str(m.get("Identity"))
    if name is None:
        return None
    keys: list[str] = []
    for k in ("PrimarySmtpAddress", "WindowsLiveID", "MicrosoftOnlineServicesID", "UserPrincipalName", "Identity",
              "Name", "Alias", "DisplayName", "DistinguishedName", "Guid", "ExchangeObjectId"):
        v = as_str(m.get(k))
        if v and v not in keys:
            keys.append(v)
    return {"name": name, "identity": as_str(m.get("Identity")) or name,
            "recipient_type": as_str(m.get("RecipientTypeDetails")) or as_str(m.get("RecipientType")),
            "id": (as_str(m.get("ExternalDirectoryObjectId")) or "").lower() or None, "keys": keys}


def assignment_row(r: dict[str, Any]) -> dict[str, Any] | None:
    """One Get-ManagementRoleAssignment object for a user assignee, in the shape of a role group with one member (its
    ``role_group_type`` is ``DirectAssignment``); None for a disabled one, or one without a name, role or assignee."""
    name = as_str(r.get("Name")) or as_str(r.get("Identity"))
    role = role_name(r.get("Role"))
    if name is None or role is None or str(r.get("Enabled")).strip().lower() == "false":
        return None
    if (as_str(r.get("RoleAssigneeType")) or "User").lower() != "user":
        return None  # role groups (read above), policies, security groups: not an account's own assignment
    keys: list[str] = []
    for k in ("RoleAssigneeName", "User", "EffectiveUserName", "RoleAssignee"):
        v = as_str(r.get(k))
        if v and v not in keys and v.lower() != "all group members":
            keys.append(v)
    if not keys:
        return None
    return {"name": name, "identity": as_str(r.get("Identity")) or name, "guid": as_str(r.get("Guid")),
            "roles": [role], "role_group_type": DIRECT, "description": None,
            "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC")), "assignment": True,
            "scope": as_str(r.get("CustomRecipientWriteScope")),
            "members": [{"name": keys[0], "identity": keys[0], "recipient_type": "User", "id": None, "keys": keys}]}


async def read_role_groups(ex: ExchangeApi, graph: GraphApi | None = None,
                           partial: list[NotCollected] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(every role group with its members, notes). Raises :class:`RoleGroupReadError` naming the failed cmdlet. With
    ``graph``, members that are Entra groups are expanded (``member["expanded"]``: user ids, transitively); groups
    whose members could not be read are appended to ``partial`` (one NotCollected)."""
    groups: list[dict[str, Any]] = []
    try:
        async for page in ex.iter_invoke(GROUPS, {"ResultSize": "Unlimited"}):
            groups.extend(g for g in (role_group_row(r) for r in page) if g is not None)
    except ApiError as err:
        raise RoleGroupReadError(GROUPS, err) from None
    notes: list[str] = []
    sem = asyncio.Semaphore(_CONCURRENCY)

    async def members(g: dict[str, Any]) -> None:
        async with sem:
            try:
                rows = await ex.invoke(MEMBERS, {"Identity": g["identity"] or g["name"], "ResultSize": "Unlimited"})
            except ApiError as err:
                if err.is_not_found or "couldn't be found" in (err.message or ""):
                    notes.append(f"role group {g['name']!r} was listed but is gone ({err.short()}): skipped")
                    g["gone"] = True
                    return
                raise RoleGroupReadError(MEMBERS, err) from None
        g["members"] = [m for m in (member_row(r) for r in rows) if m is not None]

    # Every read finishes before the first failure is raised (no task left running with an unretrieved error).
    results = await asyncio.gather(*(members(g) for g in groups), return_exceptions=True)
    for res in results:
        if isinstance(res, BaseException):
            raise res
    groups = [g for g in groups if not g.pop("gone", False)]
    groups.sort(key=lambda g: g["name"].lower())
    # Management roles assigned to a user directly (New-ManagementRoleAssignment -User), outside any role group.
    try:
        async for page in ex.iter_invoke(ASSIGNMENTS, {"RoleAssigneeType": "User"}):
            groups.extend(a for a in (assignment_row(r) for r in page if isinstance(r, dict)) if a is not None)
    except ApiError as err:
        why = exchange_refusal_gap(ASSIGNMENTS, err, ROLE_GROUPS_READ_ROLE, "management roles assigned directly to "
                                   "users (Exchange admin rights outside role groups) are unknown") or NotCollected(
            reason=f"{ASSIGNMENTS} failed: {err.short()}; management roles assigned directly to users are unknown",
            code=err.code or (str(err.status) if err.status else None))
        notes.append(why.reason)
        if partial is not None:
            partial.append(why)
    if graph is not None:
        await _expand_group_members(graph, groups, notes, partial)
    return groups, notes


async def _expand_group_members(graph: GraphApi, groups: list[dict[str, Any]], notes: list[str],
                                partial: list[NotCollected] | None) -> None:
    """Each group member with an Entra id gets ``expanded`` (its users' ids, transitively), or ``expand_error``."""
    nested = [m for g in groups for m in g.get("members") or () if _is_group(m) and m.get("id")]
    ids = sorted({m["id"] for m in nested})
    if not ids:
        return
    members, failed = await _group_members(graph, ids)
    why = {gid: err for gid, err in failed}
    for m in nested:
        if m["id"] in members:
            m["expanded"] = members[m["id"]]
        else:
            err = why.get(m["id"])
            m["expand_error"] = (f"members not read: {err.short()}" if err is not None else "members not read") + \
                (f"; the app needs {GROUP_MEMBERS_PERMISSION}" if err is not None and err.is_permission else "")
    if failed:
        names = sorted({m["name"] for m in nested if m["id"] in why})
        denied = any(err.is_permission for _gid, err in failed)
        note = (f"members of {len(names)} group(s) inside Exchange role groups could not be read, so accounts "
                f"holding Exchange admin rights only through them are not marked: {', '.join(names[:10])}"
                + (f"; the app needs {GROUP_MEMBERS_PERMISSION}" if denied else ""))
        notes.append(note)
        if partial is not None:
            first = failed[0][1]
            partial.append(NotCollected(reason=note, code=first.code or (str(first.status) if first.status else None),
                                        permission=GROUP_MEMBERS_PERMISSION if denied else None))


def _is_group(m: dict[str, Any]) -> bool:
    return "group" in (m.get("recipient_type") or "").lower()


def index_role_groups(groups: list[dict[str, Any]], directory: Any | None
                      ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """(account key -> memberships in :class:`ExchangeRoleGroupMembership` fields, role group name -> unresolved
    members). Account keys are ``id:<entra object id>`` and ``upn:<lower-case UPN or address>``."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    unresolved: dict[str, list[str]] = {}
    for g in groups:
        base = {"group": g["name"], "group_identity": g.get("identity"), "group_guid": g.get("guid"),
                "roles": list(g.get("roles") or ()), "role_group_type": g.get("role_group_type")}
        for m in g.get("members") or ():
            if _is_group(m):
                if m.get("expanded") is not None:
                    # Every account in the group holds the role group's roles through it.
                    row = {**base, "member": m.get("name"), "via_group": m.get("name")}
                    for uid in m["expanded"]:
                        by_key.setdefault(f"id:{uid.lower()}", []).append(row)
                    continue
                # Not expanded (no Entra id, or its members could not be read): named, never read as "none".
                why = m.get("expand_error") or ("no Entra object id: members not expanded" if not m.get("id")
                                                else "members not expanded")
                unresolved.setdefault(g["name"], []).append(f"{m['name']} ({m.get('recipient_type')}: {why})")
                continue
            keys = _account_keys(m, directory)
            if not keys:
                unresolved.setdefault(g["name"], []).append(
                    m["name"] + (f" ({m['recipient_type']})" if m.get("recipient_type") else ""))
                continue
            row = {**base, "member": m.get("name")}
            for k in keys:
                by_key.setdefault(k, []).append(row)
    return by_key, unresolved


def _account_keys(m: dict[str, Any], directory: Any | None) -> list[str]:
    keys: list[str] = []
    if m.get("id"):
        keys.append(f"id:{m['id']}")
    if directory is not None:
        for k in m.get("keys") or ():
            row = directory.find(k)
            if row is not None:
                if row.get("id"):
                    keys.append(f"id:{row['id']}")
                if row.get("upn"):
                    keys.append(f"upn:{row['upn'].lower()}")
                break
    if not keys:
        # No Entra id and no mailbox: a UPN-like WindowsLiveID / address still names an account (a user without one).
        for k in m.get("keys") or ():
            _name, address = parse_recipient(k)
            if address:
                keys.append(f"upn:{address.lower()}")
                break
    return list(dict.fromkeys(keys))


def memberships_for(by_key: dict[str, list[dict[str, Any]]], user_id: str, upn: str
                    ) -> tuple[ExchangeRoleGroupMembership, ...]:
    """The account's role-group memberships (one per role group), sorted by group name."""
    seen: dict[str, dict[str, Any]] = {}
    rows = [row for key in (f"id:{user_id.lower()}", f"upn:{upn.lower()}") for row in by_key.get(key, ())]
    # A direct membership wins over one through a group; of several groups, the first by name.
    for row in sorted(rows, key=lambda r: (r.get("via_group") is not None, (r.get("via_group") or "").lower())):
        seen.setdefault(row["group"].lower(), row)
    return tuple(ExchangeRoleGroupMembership(**{**r, "roles": tuple(r["roles"])})
                 for _k, r in sorted(seen.items()))


def tenant_role_groups(groups: list[dict[str, Any]], unresolved: dict[str, list[str]]
                       ) -> tuple[ExchangeRoleGroup, ...]:
    """The role groups for TenantInfo; a management role assigned directly to a user is listed as one with
    ``role_group_type`` ``DirectAssignment`` (its assignee among ``members``, or ``unresolved_members``)."""
    return tuple(ExchangeRoleGroup(
        name=g["name"], identity=g.get("identity"), guid=g.get("guid"), roles=tuple(g.get("roles") or ()),
        role_group_type=g.get("role_group_type"), description=g.get("description"),
        when_changed=parse_dt(g.get("when_changed")),
        members=tuple(m["name"] for m in g.get("members") or ()),
        unresolved_members=tuple(unresolved.get(g["name"], ()))) for g in groups)
