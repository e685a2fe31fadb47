"""Tenant generator: fixed accounts and planted scenarios from data files, plus lazily derived background users."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from . import ids
from .model import PHONE_IDS, Mailbox, Tenant, User
from .tokens import SIM_APP_ID

_REL = re.compile(r"^-(\d+(?:\.\d+)?)([mhd])$")


def _load(name: str) -> list[dict]:
    return json.loads(resources.files("scanner.simulator").joinpath("scenarios", name).read_text("utf-8"))


def scenario_files() -> list[str]:
    return sorted(p.name for p in resources.files("scanner.simulator").joinpath("scenarios").iterdir()
                  if p.name.endswith(".json") and p.name != "apps.json")


def _subst(t: Tenant, v: Any) -> Any:
    if isinstance(v, str):
        return v.replace("{primary}", t.primary_domain).replace("{sub}", t.domains[1]).replace(
            "{onms}", t.onmicrosoft_domain).replace("{tenant}", t.tenant_id).replace("{brand}", t.name)
    if isinstance(v, list):
        return [_subst(t, x) for x in v]
    if isinstance(v, dict):
        return {k: _subst(t, x) for k, x in v.items()}
    return v


def _when(t: Tenant, v: str | None) -> datetime | None:
    """'-3h' / '-2d' / '-30m' relative to generation time, or an ISO timestamp."""
    if v is None:
        return None
    m = _REL.match(v)
    if m:
        n, unit = float(m.group(1)), m.group(2)
        return t.generated_at - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})
    return datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC)


def _add_apps(t: Tenant) -> None:
    for i, a in enumerate(_load("apps.json")):
        sp_id = ids.guid_for(t.seed, 300, i)
        app_id = a.get("appId") or ids.guid_for(t.seed, 301, i)
        verified = a.get("verifiedPublisher")
        sp = {
            "id": sp_id, "appId": app_id, "displayName": a["displayName"], "accountEnabled": True,
            "appOwnerOrganizationId": a.get("appOwnerOrganizationId") or ids.guid_for(t.seed, 302, i),
            "appDisplayName": a["displayName"], "publisherName": a.get("publisherName"),
            "servicePrincipalType": "Application", "signInAudience": a.get("signInAudience", "AzureADMultipleOrgs"),
            "tags": a.get("tags", ["WindowsAzureActiveDirectoryIntegratedApp"]),
            "homepage": a.get("homepage"), "replyUrls": a.get("replyUrls", []),
            "verifiedPublisher": {"displayName": verified, "verifiedPublisherId": str(1000000 + i * 7919),
                                  "addedDateTime": "2021-03-01T00:00:00Z"} if verified else
                                 {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
            "appRoles": a.get("appRoles", []), "oauth2PermissionScopes": a.get("oauth2PermissionScopes", []),
            "createdDateTime": a.get("createdDateTime", "2022-01-10T09:00:00Z"),
            "_benign_user_app": bool(a.get("benign_user_app")), "_user_scope": a.get("user_scope"),
        }
        t.service_principals[sp_id] = sp
        t.sp_by_name[a["displayName"]] = sp_id


APP_ROLES = ("tenant", "app_roles.json")  # resource app roles, the scanning app's permissions, apps.json apps' roles


def _load_app_roles() -> dict:
    return json.loads(resources.files("scanner.simulator").joinpath("scenarios", *APP_ROLES).read_text("utf-8"))


def _add_app_roles(t: Tenant) -> None:
    """appRoles[] of Microsoft Graph / Exchange Online, and the scanning app itself (appId ``tokens.SIM_APP_ID``,
    registered in this tenant) holding its read permissions + Exchange.ManageAsApp — in every tenant, as in a real
    one where m365sweep runs."""
    data = _load_app_roles()
    for name, roles in data["resource_app_roles"].items():
        t.service_principals[t.sp_by_name[name]]["appRoles"] = roles
    me = data["scanner_app"]
    sp_id = ids.guid_for(t.seed, 320, 0)
    t.service_principals[sp_id] = {
        "id": sp_id, "appId": SIM_APP_ID, "displayName": me["displayName"], "accountEnabled": True,
        "appOwnerOrganizationId": t.tenant_id, "appDisplayName": me["displayName"], "publisherName": None,
        "servicePrincipalType": "Application", "signInAudience": "AzureADMyOrg", "tags": [], "homepage": None,
        "replyUrls": [], "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
        "appRoles": [], "oauth2PermissionScopes": [], "createdDateTime": _iso(_when(t, me["createdDateTime"])),
        "_benign_user_app": False, "_user_scope": None}
    t.sp_by_name[me["displayName"]] = sp_id
    for resource, role in me["roles"]:
        t.add_app_role_assignment(sp_id, resource, role, created=_when(t, me["createdDateTime"]), log=False)


def _add_app_role_scenarios(t: Tenant) -> None:
    """App role assignments of apps from apps.json (a verified backup product's Mail.ReadWrite + full_access_as_app),
    ground truth in ``t.tenant_labels`` (added after the planted service principals' labels)."""
    for e in _load_app_roles()["assignments"]:
        for resource, role in e["roles"]:
            t.add_app_role_assignment(e["app"], resource, role, created=_when(t, e.get("assigned", "-400d")), log=False)
        if e.get("label"):
            sp = t.service_principals[t.sp_by_name[e["app"]]]
            t.tenant_labels[f"serviceprincipal:{sp['displayName']} ({sp['appId']})"] = {
                "kind": "service_principal", "techniques": [], "service_principal_id": sp["id"], **e["label"]}


TENANT_SCENARIOS = ("tenant", "service_principals.json")  # tenant-level scenarios: objects that are not accounts


def _add_tenant_scenarios(t: Tenant) -> None:
    """Planted service principals holding directory roles; ground truth in ``t.tenant_labels`` keyed by the
    detectors' pseudo-account label (``serviceprincipal:<displayName> (<appId>)``), not in the UPN-keyed ``labels``."""
    raw = resources.files("scanner.simulator").joinpath("scenarios", *TENANT_SCENARIOS).read_text("utf-8")
    for i, e in enumerate(_subst(t, json.loads(raw))):
        a = e["service_principal"]
        sp_id = ids.guid_for(t.seed, 310, i)
        app_id = a.get("appId") or ids.guid_for(t.seed, 311, i)
        sp = {"id": sp_id, "appId": app_id, "displayName": a["displayName"], "accountEnabled": True,
              "appOwnerOrganizationId": a["appOwnerOrganizationId"], "appDisplayName": a["displayName"],
              "publisherName": a.get("publisherName"), "servicePrincipalType": a.get("servicePrincipalType", "Application"),
              "signInAudience": a.get("signInAudience", "AzureADMultipleOrgs"), "tags": a.get("tags", []),
              "homepage": a.get("homepage"), "replyUrls": a.get("replyUrls", []),
              "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
              "appRoles": [], "oauth2PermissionScopes": [], "createdDateTime": _iso(_when(t, a.get("createdDateTime", "2024-01-10T09:00:00Z"))),
              "_benign_user_app": False, "_user_scope": None}
        t.service_principals[sp_id] = sp
        t.sp_by_name[a["displayName"]] = sp_id
        for r in e.get("roles", []):
            t.add_principal_role(sp_id, r["role"], created=_when(t, r.get("assigned", "-400d")))
        for r in e.get("app_roles", []):  # application permissions (appRoleAssignedTo on the resource)
            t.add_app_role_assignment(sp_id, r["resource"], r["role"], created=_when(t, r.get("assigned", "-400d")),
                                      log=False)
        t.tenant_labels[f"serviceprincipal:{a['displayName']} ({app_id})"] = {
            "kind": "service_principal", "label": e["label"], "classes": e.get("classes", []),
            "techniques": e.get("techniques", []), "scenario": e.get("scenario"), "notes": e.get("notes", ""),
            "source": e.get("source"), "detector": e.get("detector"), "service_principal_id": sp_id,
            **({"expected_severity": e["expected_severity"]} if e.get("expected_severity") else {})}


TRANSPORT_RULES = ("tenant", "transport_rules.json")  # the organisation's mail-flow rules: planted and benign


def _add_transport_rules(t: Tenant) -> None:
    """Mail-flow (transport) rules from the data file, in priority order; ground truth in ``t.tenant_labels`` keyed by
    the detectors' pseudo-account label ``transportrule:<rule name>``."""
    raw = resources.files("scanner.simulator").joinpath("scenarios", *TRANSPORT_RULES).read_text("utf-8")
    for e in _subst(t, json.loads(raw))["rules"]:
        props = dict(e["rule"])
        name = props.pop("Name")
        t.add_transport_rule(name, changed=_when(t, e.get("changed", "-300d")), log=False, **props)
        if e.get("label"):
            t.tenant_labels[f"transportrule:{name}"] = {"kind": "transport_rule", "techniques": [], **e["label"]}


GROUPS = ("tenant", "groups.json")  # Entra groups: role-assignable ones holding directory roles, and ordinary ones


def _add_groups(t: Tenant) -> None:
    """Groups from the data file, their role assignments and their direct members (UPNs that exist; others skipped,
    as a scenario file that is not loaded plants no account)."""
    raw = resources.files("scanner.simulator").joinpath("scenarios", *GROUPS).read_text("utf-8")
    for e in _subst(t, json.loads(raw))["groups"]:
        spec = e["group"]
        g = t.add_group(spec["displayName"], assignable=spec.get("isAssignableToRole", False),
                        security=spec.get("securityEnabled", True), mail=spec.get("mailEnabled", False),
                        group_types=spec.get("groupTypes", []), description=spec.get("description"),
                        created=_when(t, e.get("created", "-1000d")))
        for r in e.get("roles", []):
            t.add_group_role(g, r["role"], created=_when(t, r.get("assigned", "-400d")))
        for upn in e.get("members", []):
            if t.find_user(upn) is not None:
                t.add_group_member(g, upn, log=False)


def _make_user(t: Tenant, spec: dict) -> User:
    upn = spec["upn"]
    local = upn.split("@")[0]
    kind = spec.get("mailbox", "user")
    first = spec.get("givenName")
    last = spec.get("surname")
    guest = spec.get("userType") == "Guest"
    mb = None if kind in (None, "none") else Mailbox(kind=kind, sent_per_day=spec.get("sent_per_day", 12))
    created = _when(t, spec.get("createdDateTime", "-900d"))
    u = User(index=len(t.explicit), id=t.user_id_for(len(t.explicit)), userPrincipalName=upn,
             displayName=spec.get("displayName") or f"{first} {last}", givenName=first, surname=last,
             mail=spec.get("mail", upn if mb or guest else None), mailNickname=spec.get("mailNickname", local.split("_")[0]),
             jobTitle=spec.get("jobTitle"), department=spec.get("department"), officeLocation=spec.get("officeLocation", "Seattle"),
             businessPhones=spec.get("businessPhones", []), mobilePhone=spec.get("mobilePhone"),
             accountEnabled=spec.get("accountEnabled", kind not in ("shared", "room")),
             userType=spec.get("userType", "Member"), createdDateTime=created,
             lastPasswordChangeDateTime=_when(t, spec.get("lastPasswordChangeDateTime", "-60d")),
             onPremisesSyncEnabled=spec.get("onPremisesSyncEnabled"), otherMails=spec.get("otherMails", []),
             usageLocation=spec.get("usageLocation", "US"), preferredLanguage="en-US",
             companyName=None if guest else t.org_name, employeeType=None if guest else "Employee",
             creationType="Invitation" if guest else None, externalUserState="Accepted" if guest else None,
             licensed=bool(mb) and kind == "user", mailbox=mb, manager_upn=spec.get("manager"),
             last_sign_in=_when(t, spec.get("lastSignIn", "-5h")), explicit=True)
    return u


def _apply_details(t: Tenant, u: User, e: dict) -> None:
    mbx = e.get("mailbox_state", {})
    if u.mailbox is not None:
        u.mailbox.forwarding_smtp = mbx.get("ForwardingSmtpAddress")
        u.mailbox.forwarding_address = mbx.get("ForwardingAddress")
        u.mailbox.deliver_and_forward = mbx.get("DeliverToMailboxAndForward", False)
        u.mailbox.grant_send_on_behalf = list(mbx.get("GrantSendOnBehalfTo", []))
        u.mailbox.cas.update(mbx.get("cas", {}))
        if "sent_last_24h" in mbx:
            u.mailbox.sent_last_24h = mbx["sent_last_24h"]
        if mbx.get("blocked"):
            u.mailbox.blocked = {"Reason": mbx["blocked"], "CreatedDatetime": _iso(_when(t, mbx.get("blocked_at", "-2h")))}
        u._rules = []
        t.folders(u)
        for f in e.get("folders", []):
            folder = t.folder_by_name(u, f["path"])
            folder.isHidden = f.get("hidden", False)
        for r in e.get("rules", []):
            t.add_rule(u, displayName=r["displayName"], conditions=r.get("conditions"), actions=r.get("actions"),
                       exceptions=r.get("exceptions"), isEnabled=r.get("isEnabled", True), hidden=r.get("hidden", False),
                       isReadOnly=r.get("isReadOnly", False), hasError=r.get("hasError", False),
                       exchange_extra=r.get("exchange_extra"), log=False)
        t.ensure_system_rules(u)
        for d in e.get("delegates", []):
            t.add_delegate(u, d["trustee"], d.get("rights", "FullAccess"), log=False)
    u._methods = []
    t._generate_background_methods(u)  # password method only for explicit users
    for m in e.get("methods", []):
        m = dict(m)
        coll = m.pop("type")
        created = _when(t, m.pop("createdDateTime", None))
        default = m.pop("default", False)
        if coll == "temporaryAccessPassMethods" and "startDateTime" in m:
            m["startDateTime"] = _iso(_when(t, m["startDateTime"]))
        t.add_method(u, coll, m, created=created, default=default, log=False)
    for r in e.get("roles", []):
        t.add_role(u, r["role"], created=_when(t, r.get("assigned", "-400d")), log=False)
    for r in e.get("eligible_roles", []):
        t.add_eligible_role(u, r["role"], start=_when(t, r.get("start", "-200d")), log=False)
    for g in e.get("grants", []):
        t.add_grant(u if g.get("consentType", "Principal") == "Principal" else None, g["app"], g["scope"],
                    consent_type=g.get("consentType", "Principal"), resource=g.get("resource", "Microsoft Graph"), log=False)


def _iso(d: datetime | None) -> str | None:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ") if d else None


def generate_tenant(users: int = 200, seed: int = 7, scenarios: bool = True, now: datetime | None = None,
                    name: str = "contoso", license: str = "P2") -> Tenant:
    """Build a tenant with ``users`` accounts in total (planted ones included) from ``seed``.

    ``scenarios=False`` plants nothing but the tenant's own admin accounts; ``now`` freezes the clock.
    """
    t = Tenant(users=users, seed=seed, now=now, name=name, license=license)
    _add_apps(t)
    _add_app_roles(t)
    files = scenario_files() if scenarios else ["fixtures.json"]
    entries: list[dict] = []
    for f in files:
        entries.extend(_subst(t, _load(f)))
    for e in entries:
        u = _make_user(t, e["user"])
        t.add_explicit_user(u)
        e["_user"] = u
        t.labels[u.userPrincipalName.lower()] = {
            "label": e.get("label", "plain"), "classes": e.get("classes", []), "techniques": e.get("techniques", []),
            "scenario": e.get("scenario"), "notes": e.get("notes", ""), "source": e.get("source")}
    t.n_background = max(0, users - len(t.explicit))
    for e in entries:
        _apply_details(t, e["_user"], e)
    # background admins: a few helpdesk/user admins spread through the directory
    E = len(t.explicit)
    for k, i in enumerate(range(E + 5, E + t.n_background, 97)):
        if t._bg_kind(i) != "member":
            continue
        role = ("Helpdesk Administrator", "User Administrator", "Reports Reader", "Exchange Recipient Administrator")[k % 4]
        bu = t.user_at(i)
        t.add_role(bu, role, created=t.generated_at - timedelta(days=200 + k % 500), log=False)
    if scenarios:
        _add_groups(t)
        _add_tenant_scenarios(t)
        _add_app_role_scenarios(t)
        _add_transport_rules(t)
    t.mutations.clear()
    t.stats["users_built"] = 0
    return t


__all__ = ["generate_tenant", "PHONE_IDS"]
