"""Non-Microsoft service principal holding a privileged directory role (detections.md §D; issue 4 "service principals in
privileged roles"). A TENANT-LEVEL detector: it runs once per scan over ``TenantInfo.privileged_principals``.

Sees: active role assignments (``roleAssignments?$expand=principal``) whose principal is a service principal (an app or
a managed identity) whose ``appOwnerOrganizationId`` is not one of Microsoft's first-party tenants
(f8cdef31-a31e-4b4a-93e4-5f571e91255a, 72f988bf-86f1-41af-91ab-2d7cd011db47) — including apps registered in the
tenant itself, the usual persistence route (an app secret survives every user password reset). Assigned since the
previous scan → High; standing (first scan, or held in the previous scan) → Medium; scoped to an administrative unit →
one level lower. Score follows severity (High 30, Medium 20, Low 10); it is shown, never added to any account. A sanctioned app is allow-listed through ``[allowlist] apps`` (appId or display name): shown, suppressed.
Misses: PIM-eligible assignments of service principals (not activatable by an app), application permissions
(app role assignments such as ``RoleManagement.ReadWrite.Directory`` on Microsoft Graph), Exchange RBAC
management-role assignments, and everything when the roles source could not be read (a coverage gap, never "clean").

Findings name a PSEUDO-ACCOUNT: ``account`` = ``serviceprincipal:<displayName> (<appId>)``. It is not a user: it has no
row in ``accounts`` / findings.json ``accounts`` and no verdict, so auto-remediation (which acts on ``compromised``
account verdicts) never acts on it; the admin removes the assignment (or disables the app) by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import SP_PREFIX, sp_label, suppressed
from detectors._model import (
    DetectorMeta,
    Finding,
    ScanContext,
    Severity,
    TenantFacts,
    make_tenant_finding,
)
from detectors.oauth._apps import MICROSOFT_TENANTS
from scanner.snapshot import NotCollected, NotCollectedError, PrivilegedPrincipal, TenantInfo

META = DetectorMeta(
    id="roles.service_principal_privileged",
    title="Non-Microsoft app (service principal) holds a privileged directory role",
    severity=Severity.HIGH,
    technique="T1098.003",
    rationale="An app with an admin role acts with that role through its own credentials (client secret or "
              "certificate), which no user password reset or session revocation touches; attackers add credentials "
              "to an app and elevate it for persistence (T1098.003, T1098.001).",
    manual=("Remove the app from the administrator role (Entra admin center > Roles and administrators, or "
           "DELETE /directoryRoles/{role id}/members/{service principal id}/$ref); check who added it in the "
           "audit log and rotate the app's credentials."),
    requires=("roles",),
    false_positives=("Sanctioned automation or third-party management tools given a role on purpose: allow-list "
                     "the appId in [allowlist] apps.",
                     "Managed identities of the tenant's own automation."),
)
PSEUDO_PREFIX = SP_PREFIX  # shared with oauth.tenant_wide_mail_grant (detectors._common.sp_label)


def account_label(p: PrivilegedPrincipal) -> str:
    return sp_label(p.display_name, p.app_id, p.id)


def _key(p: PrivilegedPrincipal) -> tuple[str, str, str]:
    return (p.id.lower(), (p.role_template_id or p.role_definition_id or p.role_name or "").lower(),
            p.directory_scope_id or "/")


def _candidates(principals: tuple[PrivilegedPrincipal, ...]) -> list[PrivilegedPrincipal]:
    return [p for p in principals
            if p.principal_type == "servicePrincipal" and p.kind == "active"
            and (p.app_owner_organization_id or "").lower() not in MICROSOFT_TENANTS]


def detect_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext) -> Iterator[Finding]:
    if tenant.privileged_principals is None:
        raise NotCollectedError("roles", NotCollected(reason="directory roles were not read in this scan"))
    before: set[tuple[str, str, str]] | None = None
    prev = ctx.previous_tenant
    if not ctx.first_scan and prev is not None and prev.privileged_principals is not None:
        before = {_key(p) for p in _candidates(prev.privileged_principals)}
    for p in _candidates(tenant.privileged_principals):
        new = before is not None and _key(p) not in before
        sev = Severity.HIGH if new else Severity.MEDIUM
        scoped = (p.directory_scope_id or "/") != "/"
        if scoped:
            sev = Severity(max(int(sev) - 1, int(Severity.LOW)))
        ev = {"service_principal": p.display_name, "app_id": p.app_id, "service_principal_id": p.id,
              "app_owner_organization_id": p.app_owner_organization_id,
              "service_principal_type": p.service_principal_type, "role": p.role_name or p.role_template_id,
              "role_template_id": p.role_template_id, "scope": p.directory_scope_id,
              "assignment_id": p.assignment_id, "new": new,
              "first_party": False, "home_tenant_app": (p.app_owner_organization_id or "").lower()
              == (tenant.tenant_id or "").lower()}
        f = make_tenant_finding(META, account_label(p), evidence=ev, artefact="sprole:" + ":".join(_key(p)),
                                severity=sev, score=30 if sev >= Severity.HIGH else 20 if sev == Severity.MEDIUM else 10,
                                new_since_last_scan=new)
        entry = None
        for value in (p.app_id, p.display_name):
            if value:
                entry = ctx.allowlist._match(ctx.allowlist.apps, value, ctx.now)
                if entry is not None:
                    break
        if entry is not None:
            f = suppressed(f, f"allowlist: app {entry.value}" + (f" ({entry.reason})" if entry.reason else ""))
        yield f
