"""Exchange Online RBAC role groups: ``Get-RoleGroup``, ``Get-RoleGroupMember``, ``Add-RoleGroupMember`` and
``Remove-RoleGroupMember``, in the shapes and with the errors Microsoft documents (or that the service is seen to
give, marked [field]).

The state is data (``scenarios/tenant/role_groups.json``): the built-in role groups with their management roles
(``base``), and scenario blocks of members, each added only when every account it names exists (the scenario files
are loaded). A block marked ``"overnight": true`` is what an attacker did *after* the last scan: it is not in the
tenant until :func:`apply_overnight` is called (tests: scan, apply, rescan). It lives on the tenant as
``t.role_groups`` (built on first use): a list of group dicts in the cmdlet's names plus ``_members`` (entries
``{"user": <id>}``, ``{"group": <name>, "RecipientType": ...}`` for a nested Exchange-only group, or
``{"graph_group": <Entra group id>}`` for a mail-enabled security group of ``t.groups``, printed as a
MailUniversalSecurityGroup with its ExternalDirectoryObjectId) that tests may change. ``Add-RoleGroupMember -Member``
takes a user or such a group (by name, address or id; Exchange accepts only mail-enabled security groups).

Shapes:
- ``Get-RoleGroup``: ``Name``, ``Identity``, ``Guid``, ``ExchangeObjectId``, ``DisplayName``, ``Description``,
  ``RoleGroupType`` ("Standard"), ``Roles`` / ``RoleAssignments`` / ``Members`` / ``ManagedBy`` (collections),
  ``WhenChanged`` ...
- ``Get-RoleGroupMember``: ``ReducedRecipient`` objects (``Name``, ``Identity``, ``Alias``, ``DisplayName``,
  ``RecipientType`` / ``RecipientTypeDetails``, ``PrimarySmtpAddress``, ``WindowsLiveID``,
  ``ExternalDirectoryObjectId``, ``Guid``). A role group it cannot find: ManagementObjectNotFoundException (404).
- ``Add-RoleGroupMember`` / ``Remove-RoleGroupMember`` ``-Identity -Member [-BypassSecurityGroupManagerCheck]
  [-Confirm]``: 200 with an empty body. Adding a member already there: MemberAlreadyExistsException; removing one that
  is not: MemberNotFoundException (400, the texts Exchange prints for group membership) [field].
Writes apply at once here (the read-after-write lag of :class:`scanner.simulator.exchange.ReadLag` is per mailbox).
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

from .model import Tenant, User, iso

DATA = ("tenant", "role_groups.json")
COLL = "#Collection(String)"
CMDLETS = ("Get-RoleGroup", "Get-RoleGroupMember", "Add-RoleGroupMember", "Remove-RoleGroupMember")  # KNOWN_PARAMS:
# scanner.simulator.exchange


def state(t: Tenant) -> list[dict[str, Any]]:
    """The tenant's role groups (built from the data file on first use)."""
    cur = getattr(t, "role_groups", None)
    if cur is None:
        cur = _load(t)
        t.role_groups = cur  # type: ignore[attr-defined]
    return cur


def _raw(t: Tenant) -> dict[str, Any]:
    from .generate import _subst

    return _subst(t, json.loads(resources.files("scanner.simulator").joinpath("scenarios", *DATA).read_text("utf-8")))


def _load(t: Tenant) -> list[dict[str, Any]]:
    from .generate import _when

    raw = _raw(t)
    groups: list[dict[str, Any]] = []
    for e in raw["base"]:
        g = {k: v for k, v in e.items() if k != "changed"}
        g["_changed"] = _when(t, e.get("changed", "-1400d"))
        g["_guid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/rolegroup/{e['Name']}"))
        g["_members"] = [{"group": n, "RecipientType": "Group"} for n in e.get("nested_groups", [])]
        g.pop("nested_groups", None)
        groups.append(g)
    for block in raw.get("scenarios", []):
        if block.get("overnight"):
            continue
        _apply_block(t, groups, block)
    return groups


def _apply_block(t: Tenant, groups: list[dict[str, Any]], block: dict[str, Any]) -> bool:
    users = [t.find_user(a) for a in block.get("accounts", [])]
    if any(u is None for u in users):
        return False
    for name, members in block.get("members", {}).items():
        g = _group(groups, name)
        if g is None:
            continue
        for m in members:
            u = t.find_user(m)
            if u is not None and {"user": u.id} not in g["_members"]:
                g["_members"].append({"user": u.id})
    return True


def apply_overnight(t: Tenant) -> list[str]:
    """Apply the ``overnight`` scenario blocks (what the attacker did since the last scan); returns their names.
    The accounts they name get the block's classes / techniques added to their ground-truth label."""
    groups = state(t)
    done = []
    for block in _raw(t).get("scenarios", []):
        if block.get("overnight") and _apply_block(t, groups, block):
            done.append(block["scenario"])
            for a in block.get("accounts", []):
                lab = t.labels.get(a.lower())
                if lab is not None:
                    lab["classes"] = sorted({*lab.get("classes", []), *block.get("classes", [])})
                    lab["techniques"] = sorted({*lab.get("techniques", []), *block.get("techniques", [])})
            for name in block.get("members", {}):
                g = _group(groups, name)
                if g is not None:
                    g["_changed"] = t.now()
    return done


def _group(groups: list[dict[str, Any]], ident: Any) -> dict[str, Any] | None:
    key = str(ident or "").strip().lower()
    return next((g for g in groups if key in (g["Name"].lower(), g["_guid"].lower())), None)


def add_member(t: Tenant, group: str, upn: str) -> None:
    """Tests: make an account a member of a role group (as Add-RoleGroupMember would)."""
    run(t, "Add-RoleGroupMember", {"Identity": group, "Member": upn})


def members_of(t: Tenant, group: str) -> list[str]:
    """UPNs of the user members of a role group (tests)."""
    g = _group(state(t), group)
    assert g is not None, group
    out = []
    for m in g["_members"]:
        if "user" in m:
            u = t.find_user(m["user"])
            if u is not None:
                out.append(u.userPrincipalName)
    return out


def _multi(d: dict[str, Any], key: str, values: list[Any] | None) -> None:
    d[f"{key}@odata.type"] = COLL
    d[key] = list(values) if values else []


def _member_name(t: Tenant, m: dict[str, Any]) -> str | None:
    if "group" in m:
        return m["group"]
    if "graph_group" in m:
        g = t.groups.get(m["graph_group"])
        return g["mailNickname"] if g is not None else None
    u = t.find_user(m["user"])
    return u.mailNickname if u is not None else None


def role_group_row(t: Tenant, g: dict[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "Identity": g["Name"], "Name": g["Name"], "DisplayName": g["Name"], "Guid": g["_guid"],
        "ExchangeObjectId": g["_guid"], "Description": g.get("Description", ""),
        "RoleGroupType": g.get("RoleGroupType", "Standard"), "LinkedGroup": None, "LinkedPartnerGroupId": None,
        "LinkedPartnerOrganizationId": None, "Capabilities": [], "IsValid": True, "ObjectState": "Unchanged",
        "DistinguishedName": f"CN={g['Name']},OU={t.onmicrosoft_domain},OU=Microsoft Exchange Hosted Organizations,"
                             f"DC=NAMPR11A001,DC=PROD,DC=OUTLOOK,DC=COM",
        "WhenChanged": iso(g["_changed"]), "WhenChangedUTC": iso(g["_changed"]),
        "WhenCreated": iso(g["_changed"]), "WhenCreatedUTC": iso(g["_changed"]),
    }
    roles = list(g.get("Roles", []))
    _multi(d, "Roles", roles)
    _multi(d, "RoleAssignments", [f"{r}-{g['Name']}"[:64] for r in roles])
    _multi(d, "ManagedBy", [])
    _multi(d, "Members", [n for n in (_member_name(t, m) for m in g["_members"]) if n])
    return d


def member_row(t: Tenant, m: dict[str, Any]) -> dict[str, Any] | None:
    if "group" in m:
        gid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/group/{m['group']}"))
        return {"Name": m["group"], "Identity": m["group"], "Alias": None, "DisplayName": m["group"],
                "RecipientType": m.get("RecipientType", "Group"),
                "RecipientTypeDetails": m.get("RecipientTypeDetails", "RoleGroup"),
                "PrimarySmtpAddress": None, "WindowsLiveID": None, "ExternalDirectoryObjectId": None,
                "Guid": gid, "ExchangeObjectId": gid}
    if "graph_group" in m:
        g = t.groups.get(m["graph_group"])
        if g is None:
            return None
        return {"Name": g["mailNickname"], "Identity": g["mailNickname"], "Alias": g["mailNickname"],
                "DisplayName": g["displayName"], "RecipientType": "MailUniversalSecurityGroup",
                "RecipientTypeDetails": "MailUniversalSecurityGroup", "PrimarySmtpAddress": g.get("mail"),
                "WindowsLiveID": None, "ExternalDirectoryObjectId": g["id"],
                "Guid": g["id"][::-1][:8] + g["id"][8:], "ExchangeObjectId": g["id"][::-1][:8] + g["id"][8:]}
    u = t.find_user(m["user"])
    if u is None:
        return None
    mailbox = u.mailbox is not None
    return {"Name": u.mailNickname, "Identity": u.mailNickname, "Alias": u.mailNickname if mailbox else None,
            "DisplayName": u.displayName, "RecipientType": "UserMailbox" if mailbox else "User",
            "RecipientTypeDetails": ("SharedMailbox" if mailbox and u.mailbox.kind == "shared" else "UserMailbox")
            if mailbox else "User",
            "PrimarySmtpAddress": u.mail if mailbox else None, "WindowsLiveID": u.userPrincipalName,
            "ExternalDirectoryObjectId": u.id, "Guid": u.id[::-1][:8] + u.id[8:], "ExchangeObjectId": u.id}


def _member_group(t: Tenant, ident: Any) -> dict[str, Any] | None:
    """A mail-enabled security group of ``t.groups`` by id, name, alias or address (what -Member takes)."""
    k = str(ident or "").strip().lower()
    for g in t.groups.values():
        if g.get("mailEnabled") and g.get("securityEnabled") and k in (
                g["id"].lower(), g["displayName"].lower(), g["mailNickname"].lower(), (g.get("mail") or "").lower()):
            return g
    return None


def _member_user(t: Tenant, ident: Any) -> User | None:
    key = str(ident or "").strip()
    u = t.find_user(key)
    if u is not None:
        return u
    k = key.lower()
    for x in t.explicit:  # Name / alias / display name, as Exchange accepts them
        if k in (x.mailNickname.lower(), (x.displayName or "").lower()):
            return x
    return None


def run(t: Tenant, cmdlet: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from .exchange import CmdletError, _required, not_found

    groups = state(t)
    if cmdlet == "Get-RoleGroup":
        rows = [role_group_row(t, g) for g in groups]
        if params.get("Identity") is not None:
            g = _group(groups, params["Identity"])
            if g is None:
                raise not_found(t, str(params["Identity"]))
            rows = [role_group_row(t, g)]
        return rows
    g = _group(groups, _required(params, "Identity"))
    if g is None:
        raise not_found(t, str(params["Identity"]))
    if cmdlet == "Get-RoleGroupMember":
        return [r for r in (member_row(t, m) for m in g["_members"]) if r is not None]
    ident = _required(params, "Member")
    u = _member_user(t, ident)
    grp = _member_group(t, ident) if u is None else None
    if u is None and grp is None:
        raise not_found(t, str(ident))
    entry = {"user": u.id} if u is not None else {"graph_group": grp["id"]}
    nick = u.mailNickname if u is not None else grp["mailNickname"]
    if cmdlet == "Add-RoleGroupMember":
        if entry in g["_members"]:
            raise CmdletError(400, "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
                              f"The recipient \"{nick}\" is already a member of the group "
                              f"\"{g['Name']}\".", "Ex8B0E7F")
        g["_members"].append(entry)
    else:
        if entry not in g["_members"]:
            raise CmdletError(400, "Microsoft.Exchange.Management.Tasks.MemberNotFoundException",
                              f"The recipient \"{nick}\" isn't a member of the group \"{g['Name']}\".",
                              "Ex9D4C21")
        g["_members"].remove(entry)
    g["_changed"] = t.now()
    t.log(cmdlet, cmdlet, u if u is not None else grp["displayName"], detail={"RoleGroup": g["Name"]})
    return []
