"""Privileged directory role assigned since the last scan (detections.md §D1).

Sees: active (not PIM-eligible) assignments of privileged roles (Global/Privileged Role/Authentication/Exchange/
Application/User/Security Administrator …) whose role was not held in the previous scan; job-title mismatch elevates.
A PIM activation (the account was already eligible for that role and scope in the previous scan and still is) is the
documented false positive: reported suppressed, not as a new role. An eligibility that is itself new does not excuse
the active role (made eligible, then activated, in one night).
Misses: roles on the first scan (no baseline: standing roles are not findings), service principals in roles (not in
per-user snapshots), Exchange RBAC management-role assignments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detectors._common import privileged_roles, role_key, role_label, suppressed
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="roles.privileged_role_new",
    title="Privileged directory role assigned since the last scan",
    severity=Severity.HIGH,
    technique="T1098.003",
    rationale="Adding a taken-over account to an admin role turns a mailbox compromise into tenant compromise "
              "(T1098.003); Microsoft's response step 6 removes admin roles.",
    remediation=("remove_admin_roles",),
    requires=("roles",),
    false_positives=("Role changes with a ticket; time-bound PIM activations (eligible roles are ignored).",),
)
NON_ADMIN_TITLES = re.compile(r"\b(sales|marketing|intern|assistant|receptionist|account(ant| manager)|recruit|"
                              r"designer|student|cashier|driver|nurse|teacher)\b", re.IGNORECASE)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    account.require("roles")
    if ctx.previous is None:
        return
    prev = ctx.previous.get("roles")
    if prev is None:
        return
    before = {role_key(r) for r in prev if r.kind == "active"}
    eligible_before = {(role_key(r), r.directory_scope_id) for r in prev if r.kind == "eligible"}
    eligible_now = {(role_key(r), r.directory_scope_id) for r in account.get("roles") or () if r.kind == "eligible"}
    for r in privileged_roles(account):
        if role_key(r) in before:
            continue
        ev = {"role": role_label(r), "role_template_id": r.role_template_id, "via_group": r.via_group,
              "scope": r.directory_scope_id}
        score = 30
        if account.user.job_title and NON_ADMIN_TITLES.search(account.user.job_title):
            ev["job_title_mismatch"] = account.user.job_title
            score += 10
        pim = (role_key(r), r.directory_scope_id)
        if pim in eligible_before and pim in eligible_now:
            ev["pim_activation"] = True
            f = make_finding(META, account, evidence=ev, artefact=f"role:{role_key(r)}", severity=Severity.INFO,
                             score=0)
            yield suppressed(f, "PIM activation: the account was already eligible for this role in the previous scan")
            continue
        yield make_finding(META, account, evidence=ev, artefact=f"role:{role_key(r)}", score=score)
