"""Tenant-wide (AllPrincipals) consent giving a non-Microsoft app access to every mailbox (detections.md §E2).

Sees: ``consentType: AllPrincipals`` grants with mail scopes in the account's grant list, and the tenant's
AllPrincipals grants (``TenantInfo.all_principals_grants``, reported on accounts holding a privileged role — the people
who can consent for the tenant — rather than on every account). The finding is tenant-level: it is reported (High)
but scores 0 for the account, whose own verdict it must not raise.
Misses: application permissions (``full_access_as_app``, Mail.Read app roles) — those are app role assignments on the
service principal, outside the per-user snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import privileged_roles, suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors.oauth._apps import app_allowed, grant_evidence, is_microsoft_app, mail_scopes
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="oauth.tenant_wide_mail_grant",
    title="App has tenant-wide consent to read or send every user's mail",
    severity=Severity.HIGH,
    technique="T1528",
    rationale="One admin consent gives an app every mailbox; Microsoft: every non-Microsoft app with this permission "
              "should be reviewed carefully.",
    remediation=("revoke_oauth_grants",),
    requires=("oauth_grants",),
    false_positives=("Sanctioned backup, archiving or e-discovery products: allow-list the app id.",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    grants = list(account.require("oauth_grants"))
    if privileged_roles(account):
        seen = {g.id for g in grants}
        grants += [g for g in getattr(ctx.tenant, "all_principals_grants", ()) or () if g.id not in seen]
    for g in grants:
        if g.consent_type != "AllPrincipals" or is_microsoft_app(g) or not mail_scopes(g.scopes):
            continue
        ev = {**grant_evidence(g), "tenant_wide": True}
        f = make_finding(META, account, evidence=ev, artefact=f"grant:{g.id}", score=0)
        entry = app_allowed(ctx.allowlist, g, ctx.now)
        if entry is not None:
            f = suppressed(f, f"allowlist: app {entry.value}")
        yield f
