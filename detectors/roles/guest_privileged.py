"""Guest (B2B) account holding a privileged directory role (detections.md §D).

Sees: ``userType`` Guest (or ``#EXT#`` UPN) with an active privileged role assignment.
Misses: service principals in privileged roles (not part of the per-user snapshot; a tenant-level check).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import privileged_roles, role_key, role_label
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="roles.guest_privileged",
    title="Guest account holds a privileged directory role",
    severity=Severity.HIGH,
    technique="T1098.003",
    rationale="An external identity with an admin role is governed by another organisation's security; attackers "
              "invite their own guest and elevate it for persistence.",
    remediation=("remove_admin_roles",),
    requires=("roles",),
    false_positives=("A managed-service provider's named guest admins (prefer GDAP; allow-list the account).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    account.require("roles")
    if not account.user.is_guest:
        return
    for r in privileged_roles(account):
        yield make_finding(META, account, evidence={"role": role_label(r), "user_type": account.user.user_type},
                           artefact=f"role:{role_key(r)}", score=30)
