"""Tenant-wide (AllPrincipals) consent giving a non-Microsoft app access to every user's mail (detections.md §E2).
A TENANT-LEVEL detector: it runs once per scan over ``TenantInfo.all_principals_grants`` and reports each grant ONCE.

Why tenant-level: an admin consent is one object that covers every mailbox; it belongs to no user. Reporting it on
every account (or every admin) repeated one fact hundreds of times and put a High finding on accounts whose own
verdict was ``clean``.

Sees: ``consentType: AllPrincipals`` delegated grants with Mail.* / MailboxSettings / EWS / IMAP / POP / EAS scopes to
apps not owned by Microsoft's first-party tenants. Unverified publisher → High (score 30, 40 with ``offline_access``,
detections.md §J "mail-scope grant to an unknown app"); verified publisher → Medium (15: the documented false positive
is a sanctioned backup / archiving / e-discovery product, which should be allow-listed). Allow-listed (``[allowlist]
apps``, appId or display name) → Info, shown suppressed.

§E2 "Critical if the granting admin also shows C1": an ``oauth2PermissionGrant`` names neither who consented nor when
(v1.0 has no grantor and no timestamp; only the audit log's "Consent to application" event has the actor). What the
scanner CAN see: whether the grant is new since the previous scan, and which accounts able to grant tenant-wide consent
(Global, Privileged Role, Application or Cloud Application Administrator) registered a genuine new authentication
method in the same window (``TenantFacts.consent_admins_new_method``, filled by the engine from the accounts' own
``auth.new_method`` findings — first registrations, roll-outs and same-type replacements excluded). A grant that is
new since the last scan while such an admin exists → Critical (score 50); the admins are listed in the evidence as
*candidates* (``candidate_granting_admins``), with ``granting_admin: null`` because the grant does not say. On a first
scan the grant's age is unknown: it stays High/Medium and the candidates are still listed for the reviewer. The
per-account signal lives on those admins already (their new-method / privileged-method-change findings); this detector
adds nothing to any account's verdict.

Misses: application permissions (``full_access_as_app``, Mail.Read app role assignments on the service principal),
which are not oauth2PermissionGrants; the consenting admin's identity (audit log only); everything when the grants
source could not be read (a coverage gap, never "clean").

Findings name a PSEUDO-ACCOUNT, the same convention as ``roles.service_principal_privileged``: ``account`` =
``serviceprincipal:<app displayName> (<appId>)`` (the grant's client is a service principal, so one app's role and
consent findings group under one subject). It is not a user: no row in ``accounts`` / findings.json ``accounts``, no
verdict, so auto-remediation never acts on it and ``remediate --user`` never revokes a tenant-wide grant as a side
effect of one admin's findings; the admin revokes the grant by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from detectors._common import sp_label, suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, TenantFacts, make_tenant_finding
from detectors.oauth._apps import app_allowed, grant_evidence, has_offline, is_microsoft_app, mail_scopes
from scanner.snapshot import NotCollected, NotCollectedError, OAuthGrant, TenantInfo

META = DetectorMeta(
    id="oauth.tenant_wide_mail_grant",
    title="App has tenant-wide consent to read or send every user's mail",
    severity=Severity.HIGH,
    technique="T1528",
    rationale="One admin consent gives an app every mailbox; Microsoft: every non-Microsoft app with this permission "
              "should be reviewed carefully.",
    manual=("Revoke the tenant-wide (AllPrincipals) grant (Entra admin center > Enterprise applications > the "
           "app > Permissions > Admin consent, or DELETE /oauth2PermissionGrants/{id}); review who granted "
           "admin consent and when in the audit log."),
    requires=("oauth_grants",),
    false_positives=("Sanctioned backup, archiving or e-discovery products (usually verified publishers: Medium): "
                     "allow-list the app id with a reason.",),
)
UNKNOWN_GRANTOR = ("not recorded on the grant: oauth2PermissionGrant has no grantor or timestamp; the audit log's "
                   "'Consent to application' event names the admin")


def _relevant(grants: tuple[OAuthGrant, ...]) -> list[OAuthGrant]:
    return [g for g in grants
            if g.consent_type == "AllPrincipals" and not is_microsoft_app(g) and mail_scopes(g.scopes)]


def detect_tenant(tenant: TenantInfo, facts: TenantFacts, ctx: ScanContext) -> Iterator[Finding]:
    if facts.accounts_scanned and not facts.oauth_grants_read:
        # Accounts were scanned but none had its grants read: the bulk grants source failed, so an empty
        # all_principals_grants means "unknown", not "none".
        raise NotCollectedError("oauth_grants", NotCollected(reason="OAuth consent grants were not read in this scan"))
    before: set[str] | None = None
    prev = ctx.previous_tenant
    # A previous scan that could not read the grants gives no baseline: nothing is "new" against it (standing).
    no_baseline = not ctx.first_scan and prev is not None and prev.all_principals_grants_read is False
    if not ctx.first_scan and prev is not None and not no_baseline:
        before = {g.id for g in prev.all_principals_grants}
    candidates = {upn: list(roles) for upn, roles in sorted(facts.consent_admins_new_method.items())}
    for g in _relevant(tenant.all_principals_grants):
        label = sp_label(g.app_display_name, g.app_id, g.client_id)
        new = before is not None and g.id not in before
        offline = has_offline(g.scopes)
        ev: dict[str, object] = {**grant_evidence(g), "tenant_wide": True, "new": new,
                                 "granting_admin": None, "granting_admin_note": UNKNOWN_GRANTOR,
                                 "candidate_granting_admins": candidates}
        if g.verified_publisher:
            sev, score = Severity.MEDIUM, 15
        else:
            sev, score = Severity.HIGH, 40 if offline else 30
        if new and candidates:
            sev, score = Severity.CRITICAL, 50
            ev["escalation"] = ("new since the last scan while an admin able to grant tenant-wide consent registered "
                                "a new authentication method in the same window (detections.md §E2 with §C1)")
        f = make_tenant_finding(META, label, evidence=ev, artefact=f"grant:{g.id}", severity=sev, score=score,
                                new_since_last_scan=new if before is not None else (False if no_baseline else None))
        entry = app_allowed(ctx.allowlist, g, ctx.now)
        if entry is not None:
            f = dataclasses.replace(suppressed(f, f"allowlist: app {entry.value}" + (
                f" ({entry.reason})" if entry.reason else "")), severity=Severity.INFO)
        yield f
