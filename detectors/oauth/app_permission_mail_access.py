"""An app holding an APPLICATION permission that reaches every mailbox (detections.md §E2, second half). A
TENANT-LEVEL detector: it runs once per scan over ``TenantInfo.app_role_grants`` and reports each app ONCE.

Why: an application permission (an app role assignment on the Microsoft Graph or Office 365 Exchange Online service
principal) lets the app act with its own secret or certificate, without any user: ``full_access_as_app`` (EWS) or
Graph ``Mail.ReadWrite`` reads and changes every mailbox, ``Mail.Send`` sends as anyone, ``Exchange.ManageAsApp``
administers Exchange. No password reset, MFA change or session revocation touches it. Attackers grant these to an app
they control for persistence (Midnight Blizzard 2024; Sentinel ``ExchangeFullAccessGrantedToApp``, Splunk
``o365_fullaccessasapp_permission_assigned``). They are not ``oauth2PermissionGrants``, so
``oauth.tenant_wide_mail_grant`` cannot see them.

Sees: ``GET /servicePrincipals/{resource}/appRoleAssignedTo`` on Microsoft Graph (Mail.Read, Mail.ReadWrite,
Mail.Send, MailboxSettings.ReadWrite; Mail.ReadBasic(.All) = message metadata, one level lower) and Exchange Online
(full_access_as_app, IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp, Exchange.ManageAsApp, and its legacy
Mail.* / MailboxSettings.ReadWrite roles), grouped per client app. Severity: unverified / unknown publisher → High
(30; metadata only → Medium); verified publisher → Medium (15, the documented false positive is a sanctioned backup /
archiving product: allow-list it; metadata only → Low); the tenant's own managed identity → Low (5, review: its
credentials never leave Azure). New since the previous scan while an admin able to grant consent registered a genuine
new authentication method in the same window (``TenantFacts.consent_admins_new_method``, as the grants detector) →
Critical (50), those admins listed as *candidates* (an assignment does not name who granted it). Allow-listed
(``[allowlist] apps``: appId, service principal id or display name) → Info, shown suppressed.
Not flagged: Microsoft first-party apps (owner tenant f8cdef31-…/72f988bf-…) and the scanning app itself (its appId
from the token / ``[tenant] client_id``) for the least-privileged permissions m365sweep documents
(``Mail.ReadBasic.All``, ``MailboxSettings.Read``/``ReadWrite``, ``Exchange.ManageAsApp``); anything beyond those on
the scanning app is reported Medium (someone widened the scanner's own permissions).

Misses: who granted the permission and when it was consented (the audit log's "Add app role assignment to service
principal" event); Exchange RBAC for Applications (``New-ManagementRoleAssignment -App``) and application access
policies that narrow an app to some mailboxes; apps' own credentials (a new secret on an existing app); everything
when the source could not be read (a coverage gap naming Application.Read.All, never "clean").

Findings name a PSEUDO-ACCOUNT, the same convention as ``oauth.tenant_wide_mail_grant``: ``account`` =
``serviceprincipal:<app displayName> (<appId>)``. It has no verdict row, so auto-remediation never acts on it; the
admin removes the assignment by hand (the evidence's ``what_to_do`` names the assignment ids and the call).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from detectors._common import sp_label, suppressed
from detectors._domains import allow_match
from detectors._model import AllowEntry, DetectorMeta, Finding, ScanContext, Severity, TenantFacts, make_tenant_finding
from detectors.oauth._apps import MICROSOFT_TENANTS
from scanner.snapshot import AppRoleGrant, NotCollected, NotCollectedError, TenantInfo

META = DetectorMeta(
    id="oauth.app_permission_mail_access",
    title="App holds an application permission to read, send or manage every mailbox",
    severity=Severity.HIGH,
    technique="T1528",
    rationale="An application permission (full_access_as_app, Mail.ReadWrite, Mail.Send …) lets the app reach every "
              "mailbox with its own secret or certificate, without any user; no password reset or sign-out revokes "
              "it. Microsoft: every non-Microsoft application with this permission should be reviewed carefully.",
    manual=("Remove the app's mail application permission (Entra admin center > Enterprise applications > the "
           "app > Permissions, or DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignment id}); disable "
           "or delete the service principal if nobody owns it; review its sign-ins and what it read."),
    requires=("app_roles",),
    false_positives=("Sanctioned backup, archiving, e-discovery or mail-security products (usually verified "
                     "publishers: Medium): allow-list the appId in [allowlist] apps with a reason.",
                     "The tenant's own automation (a managed identity sending notifications: Low)."),
)

GRAPH = "00000003-0000-0000-c000-000000000000"
EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"
_RESOURCE_NAMES = {GRAPH: "Microsoft Graph", EXCHANGE: "Office 365 Exchange Online"}
# (resource appId, role value lower case) -> True when it reaches message content / sending / administration,
# False when it only reads message metadata (Mail.ReadBasic*: no body, preview or attachments).
MAIL_APP_ROLES: dict[tuple[str, str], bool] = {
    **{(GRAPH, r.lower()): True for r in ("Mail.Read", "Mail.ReadWrite", "Mail.Send", "MailboxSettings.ReadWrite")},
    **{(GRAPH, r.lower()): False for r in ("Mail.ReadBasic.All", "Mail.ReadBasic")},
    **{(EXCHANGE, r.lower()): True for r in (
        "full_access_as_app", "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "Exchange.ManageAsApp",
        "Mail.Read", "Mail.ReadWrite", "Mail.Send", "MailboxSettings.ReadWrite")},
}
# What m365sweep itself asks for (docs/permissions.md, least privilege): not a finding on the scanning app.
SCANNER_EXPECTED = frozenset({(GRAPH, "mail.readbasic.all"), (GRAPH, "mailboxsettings.readwrite"),
                              (EXCHANGE, "exchange.manageasapp")})
UNKNOWN_GRANTOR = ("not recorded on the assignment: appRoleAssignment has no grantor; the audit log's 'Add app role "
                   "assignment to service principal' event names the admin")


def _resource(a: AppRoleGrant) -> str | None:
    rid = (a.resource_app_id or "").lower()
    if rid in _RESOURCE_NAMES:
        return rid
    name = (a.resource_display_name or "").strip().lower()
    return next((k for k, v in _RESOURCE_NAMES.items() if v.lower() == name), None) if not rid else None


def _mail_role(a: AppRoleGrant) -> tuple[str, str] | None:
    if (a.principal_type or "ServicePrincipal").lower() != "serviceprincipal" or not a.app_role:
        return None
    res = _resource(a)
    if res is None:
        return None
    key = (res, a.app_role.lower())
    return key if key in MAIL_APP_ROLES else None


def _iso(d: datetime | None) -> str | None:
    return d.isoformat().replace("+00:00", "Z") if d else None


def _allowed(ctx: ScanContext, first: AppRoleGrant) -> AllowEntry | None:
    for v in (first.app_id, first.principal_id, first.app_display_name):
        if v:
            e = allow_match(ctx.allowlist.apps, v, ctx.now)
            if e is not None:
                return e
    return None


def _by_app(grants: tuple[AppRoleGrant, ...]) -> dict[str, list[AppRoleGrant]]:
    out: dict[str, list[AppRoleGrant]] = defaultdict(list)
    for a in grants:
        if _mail_role(a) is not None:
            out[a.principal_id.lower()].append(a)
    return out


def detect_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext) -> Iterator[Finding]:
    if tenant.app_role_grants is None:
        raise NotCollectedError("app_roles", NotCollected(
            reason="application permissions (app role assignments) were not read in this scan"))
    prev = ctx.previous_tenant
    before: set[str] | None = None
    # A previous scan that could not read the source gives no baseline: nothing is "new" against it (standing).
    no_baseline = not ctx.first_scan and (prev is None or prev.app_role_grants is None)
    if not ctx.first_scan and prev is not None and prev.app_role_grants is not None:
        before = {a.id for a in prev.app_role_grants}
    candidates = {upn: list(roles) for upn, roles in sorted(facts.consent_admins_new_method.items())}
    me = (tenant.scanner_app_id or "").lower()
    for pid, assignments in sorted(_by_app(tenant.app_role_grants).items()):
        assignments.sort(key=lambda a: (_resource(a) or "", (a.app_role or "").lower(), a.id))
        first = assignments[0]
        owner = (first.app_owner_organization_id or "").lower()
        managed = (first.service_principal_type or "").lower() == "managedidentity"
        scanner_app = bool(me) and (first.app_id or "").lower() == me
        if scanner_app:
            assignments = [a for a in assignments if _mail_role(a) not in SCANNER_EXPECTED]
            if not assignments:
                continue  # m365sweep's own documented permissions
        elif owner in MICROSOFT_TENANTS and not managed:
            continue  # Microsoft's first-party services
        keys = [_mail_role(a) for a in assignments]
        content = any(MAIL_APP_ROLES[k] for k in keys if k is not None)
        new = before is not None and any(a.id not in before for a in assignments)
        if scanner_app:
            sev, score = Severity.MEDIUM, 15
        elif managed:
            sev, score = Severity.LOW, 5
        elif first.verified_publisher:
            sev, score = (Severity.MEDIUM, 15) if content else (Severity.LOW, 5)
        else:
            sev, score = (Severity.HIGH, 30) if content else (Severity.MEDIUM, 15)
        name = first.app_display_name or first.principal_display_name
        roles = [{"role": a.app_role, "resource": _RESOURCE_NAMES.get(_resource(a) or "", a.resource_display_name),
                  "resource_app_id": a.resource_app_id, "resource_id": a.resource_id, "assignment_id": a.id,
                  "created": _iso(a.created_date_time)} for a in assignments]
        created = [a.created_date_time for a in assignments if a.created_date_time]
        ev: dict[str, object] = {
            "app": name, "app_id": first.app_id, "service_principal_id": first.principal_id,
            "publisher": first.verified_publisher, "verified_publisher": first.verified_publisher,
            "app_owner_organization_id": first.app_owner_organization_id,
            "service_principal_type": first.service_principal_type,
            "home_tenant_app": bool(owner) and owner == (tenant.tenant_id or "").lower(),
            "application_permissions": True, "tenant_wide": True,
            "mail_roles": sorted({str(a.app_role) for a in assignments}), "roles": roles,
            "resources": sorted({str(r["resource"]) for r in roles}),
            "created_date_time": _iso(min(created)) if created else None,
            "message_content": content, "scanner_app": scanner_app, "new": new,
            "techniques": ["T1528", "T1098.003"] if new else ["T1528"],
            "granting_admin": None, "granting_admin_note": UNKNOWN_GRANTOR,
            "candidate_granting_admins": candidates,
        }
        if new and candidates and not scanner_app:
            sev, score = Severity.CRITICAL, 50
            ev["escalation"] = ("new since the last scan while an admin able to grant consent registered a new "
                                "authentication method in the same window (detections.md §E2 with §C1)")
        ev["summary"] = _summary(ev, roles)
        ev["what_to_do"] = _what_to_do(roles)
        artefact = "approles:" + pid + ":" + ",".join(sorted(f"{r['resource_app_id']}/{r['role']}".lower()
                                                             for r in roles))
        f = make_tenant_finding(META, sp_label(name, first.app_id, first.principal_id), evidence=ev,
                                artefact=artefact, severity=sev, score=score,
                                new_since_last_scan=new if before is not None else (False if no_baseline else None))
        entry = _allowed(ctx, first)
        if entry is not None:
            f = dataclasses.replace(suppressed(f, f"allowlist: app {entry.value}" + (
                f" ({entry.reason})" if entry.reason else "")), severity=Severity.INFO)
        yield f


def _summary(ev: dict[str, object], roles: list[dict[str, object]]) -> str:
    held = "; ".join(f"{r['role']} on {r['resource']}" for r in roles)
    who = f"The app '{ev['app'] or ev['service_principal_id']}'"
    if ev.get("app_id"):
        who += f" (appId {ev['app_id']})"
    if ev.get("scanner_app"):
        who = f"The scanning app itself{' (appId ' + str(ev['app_id']) + ')' if ev.get('app_id') else ''}"
        return (f"{who} holds application permissions beyond what m365sweep needs: {held}. Remove the extra "
                "permissions (docs/permissions.md lists the read-only set).")
    if (str(ev.get("service_principal_type") or "")).lower() == "managedidentity":
        pub = ", a managed identity of this tenant's Azure resources,"
    elif ev.get("verified_publisher"):
        pub = f", verified publisher {ev['verified_publisher']},"
    else:
        pub = ", unverified publisher,"
    since = f" (granted {str(ev['created_date_time'])[:10]})" if ev.get("created_date_time") else ""
    reach = "it can " + ", ".join(_abilities({str(r["role"]).lower() for r in roles})) + \
        " in every mailbox without any user signing in"
    new = " It was granted since the last scan." if ev.get("new") else ""
    return (f"{who}{pub} holds the application permission(s) {held}{since}: {reach}, and no password reset or "
            f"sign-out revokes it.{new}")


_READ = {"mail.read", "mail.readwrite", "full_access_as_app", "imap.accessasapp", "pop.accessasapp"}
_SEND = {"mail.send", "smtp.sendasapp", "full_access_as_app"}
_MANAGE = {"exchange.manageasapp", "mailboxsettings.readwrite", "mail.readwrite"}


def _abilities(roles: set[str]) -> list[str]:
    out = []
    if roles & _READ:
        out.append("read all mail")
    elif roles & {"mail.readbasic.all", "mail.readbasic"}:
        out.append("read message metadata (senders, recipients, subjects)")
    if roles & _SEND:
        out.append("send as any user")
    if roles & _MANAGE:
        out.append("change mail, rules and mailbox settings" if "exchange.manageasapp" not in roles
                   else "administer Exchange (forwarding, rules, permissions)")
    return out or ["access mail"]


def _what_to_do(roles: list[dict[str, object]]) -> str:
    calls = "; ".join(f"DELETE /servicePrincipals/{r['resource_id']}/appRoleAssignedTo/{r['assignment_id']}"
                      for r in roles)
    return ("If the app is not sanctioned: remove its application permissions by hand (Entra admin center > "
            "Enterprise applications > the app > Permissions > Review permissions / Revoke; or " + calls +
            ", which needs AppRoleAssignment.ReadWrite.All), disable the service principal (accountEnabled false), "
            "review its credentials and sign-in logs, and search the mailboxes it could read. If it is sanctioned: "
            "allow-list its appId in [allowlist] apps with a reason.")
