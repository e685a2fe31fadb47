"""Authentication-method change on a privileged account (detections.md §C4).

Sees: a new method (created within 48 h or first seen since the last scan), a usable TAP, or a removed method on an
account holding an active privileged directory role. An *addition* that is not a same-type replacement and not part of
a tenant-wide roll-out is flagged ``near_certain`` (forces ``compromised``); replacements stay Critical but need a
human.
Misses: eligible (PIM) roles; method changes on accounts whose roles could not be read (privilege unknown).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import (
    is_privileged,
    method_label,
    new_methods,
    privileged_labels,
    real_methods,
    rollout_threshold,
)
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="auth.privileged_method_change",
    title="Authentication method changed on a privileged account",
    severity=Severity.CRITICAL,
    technique="T1556.006",
    rationale="An attacker adding a method to an admin keeps tenant-level access (Sentinel "
              "AuthenticationMethodChangedforPrivilegedAccount, High; Octo Tempest targets privileged identities).",
    remediation=("remove_auth_methods", "revoke_sessions", "reset_password", "remove_admin_roles"),
    requires=("auth_methods", "roles"),
    false_positives=("Admin phone replacement (old method removed, same type added: not forced to compromised).",
                     "Passkey roll-out to admins (tenant-wide burst: not forced)."),
)
ROLLOUT = frozenset({"fido2AuthenticationMethod", "windowsHelloForBusinessAuthenticationMethod",
                     "passkeyAuthenticationMethod"})


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    methods = account.require("auth_methods")
    if not is_privileged(account, ctx):
        return
    added = new_methods(account, ctx)
    removed = []
    if ctx.previous is not None and (prev := ctx.previous.get("auth_methods")) is not None:
        cur = {m.id for m in methods}
        removed = [m for m in real_methods(prev) if m.id not in cur]
    if not added and not removed:
        return
    removed_types = {m.method_type for m in removed}
    n = max(ctx.facts.accounts_scanned, 1)
    genuine_adds = [m for m, _ in added if m.method_type not in removed_types and not (
        m.method_type in ROLLOUT and ctx.facts.new_method_types.get(m.method_type, 0) >= rollout_threshold(n))]
    had_prior = any(m.id not in {a.id for a, _ in added} for m in real_methods(methods))
    near = bool(genuine_adds) and (had_prior or ctx.previous is not None)
    ev = {"roles": privileged_labels(account) or ["(privileged per tenant facts)"],
          "added": [method_label(m) for m, _ in added], "removed": [method_label(m) for m in removed],
          "near_certain": near, "also_technique": "T1098.005"}
    key = ",".join(sorted([f"+{m.id}" for m, _ in added] + [f"-{m.id}" for m in removed]))
    yield make_finding(META, account, evidence=ev, artefact=f"privmethods:{key}", severity=Severity.CRITICAL,
                       score=35 if near else 20)
