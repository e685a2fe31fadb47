"""Authentication method registered recently or first seen since the last scan (detections.md §C1).

Sees: methods whose ``createdDateTime`` is within 48 h of the scan, or (because phone methods often have no
timestamp) whose id was not in the previous scan; elevators: several new at once, the account already had a method.
Down-weights: first registration with no prior method; a tenant-wide burst of the same method type (roll-out).
Misses: methods added and removed between two scans (see transient findings); per-user MFA / app passwords (not in the
Graph methods list). Temporary Access Passes are handled by ``auth.temporary_access_pass``.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import method_label, new_methods, real_methods, rollout_threshold
from detectors._domains import is_freemail
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.new_method",
    title="New authentication method registered",
    severity=Severity.MEDIUM,
    technique="T1098.005",
    rationale="Registering their own phone, authenticator or OATH token gives attackers MFA that survives a password "
              "reset (MITRE T1098.005 / T1556.006; Storm-1167 added SMS after AiTM session replay).",
    remediation=("remove_auth_methods", "revoke_sessions"),
    requires=("auth_methods",),
    false_positives=("New hires and re-onboarding (first registration: Low).",
                     "Phone replacement; passkey/FIDO2 roll-outs (many users the same day: Low)."),
)

TAP = "temporaryAccessPassAuthenticationMethod"
ROLLOUT_TYPES = frozenset({"fido2AuthenticationMethod", "windowsHelloForBusinessAuthenticationMethod",
                           "passkeyAuthenticationMethod", "platformCredentialAuthenticationMethod"})


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    new = [(m, why) for m, why in new_methods(account, ctx) if m.method_type != TAP]
    if not new:
        return
    all_methods = [m for m in real_methods(account.require("auth_methods")) if m.method_type != TAP]
    new_ids = {m.id for m, _ in new}
    had_prior = any(m.id not in new_ids for m in all_methods)
    n_accounts = max(ctx.facts.accounts_scanned, 1)
    for i, (m, why) in enumerate(sorted(new, key=lambda x: x[0].id)):
        ev: dict[str, object] = {"method_id": m.id, "method_type": m.method_type, "method": method_label(m),
                                 "why_new": why, "new_count": len(new), "had_prior_methods": had_prior,
                                 "also_technique": "T1556.006"}
        if m.created_date_time is not None:
            ev["created"] = m.created_date_time.isoformat()
        burst = ctx.facts.new_method_types.get(m.method_type, 0)
        sev, score = Severity.MEDIUM, 15
        if m.method_type in ROLLOUT_TYPES and burst >= rollout_threshold(n_accounts):
            ev["rollout"] = f"{burst} accounts registered this method type in the same window"
            sev, score = Severity.LOW, 3
        elif not had_prior and len(new) == 1:
            ev["first_registration"] = True
            sev, score = Severity.LOW, 5
        else:
            if len(new) >= 2 and i == 0:
                score += 10
            if m.email_address and is_freemail(m.email_address.rsplit("@", 1)[-1]):
                ev["freemail_email_method"] = True
                score += 5
        yield make_finding(META, account, evidence=ev, artefact=f"method:{m.id}", severity=sev, score=score)
