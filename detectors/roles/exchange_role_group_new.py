"""Member of a privileged Exchange Online role group since the last scan (detections.md §D1 "Exchange RBAC ... new
management role assignments"; Elastic ``persistence_exchange_management_role_assignment``, Splunk
``o365_applicationimpersonation_role_assigned``).

Sees: the account's memberships of Exchange role groups (``Get-RoleGroupMember``) — Organization Management, Recipient
Management, Discovery Management, Compliance Management, Security Administrator, Hygiene Management, Records / Server
Management, or a custom role group holding a powerful role (Role Management, Mail Recipients, Transport Rules, Mailbox
Import Export, Mailbox Search, ApplicationImpersonation ...) — that the previous scan did not show. Exchange admin
rights an attacker can grant a taken-over mailbox without any Entra directory role. The same membership through a
mail-enabled group the previous scan already showed is not new; a job-title mismatch raises the score.
A mailbox added to a mail-enabled security group that is itself a member of a privileged role group (or to a group
nested in it) is seen: ``via_group`` names the group, read through Graph's transitive members. So is a powerful
management role assigned to the account directly (``New-ManagementRoleAssignment -Role "Mailbox Import Export" -User
...``, Splunk ``o365_applicationimpersonation_role_assigned``): ``role_group`` is then the assignment's name,
``role_group_type`` ``DirectAssignment`` and ``direct_assignment`` true.
Misses: memberships on the first scan, or after a scan that could not read role groups (no baseline: standing
memberships are not findings); members of groups inside a role group that Entra does not know (no
ExternalDirectoryObjectId) or whose members could not be read (named on the tenant as unresolved members); roles
assigned directly to a security group, and management scopes; Defender / Purview (Security & Compliance) role groups.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._common import exchange_group_is_privileged
from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors.roles.privileged_role_new import NON_ADMIN_TITLES
from scanner.snapshot import DIRECT_ASSIGNMENT, AccountSnapshot

META = DetectorMeta(
    id="roles.exchange_role_group_new",
    title="Member of a privileged Exchange role group since the last scan",
    severity=Severity.HIGH,
    technique="T1098.003",
    rationale="Adding a taken-over mailbox to an Exchange role group (Organization Management, Discovery Management, "
              "a group holding Mailbox Import Export or ApplicationImpersonation) gives it Exchange admin rights over "
              "every mailbox that Entra directory roles do not show (T1098.003); Microsoft's response step 6 removes "
              "admin roles.",
    remediation=("remove_admin_roles",),
    requires=("exchange_role_groups",),
    false_positives=("A new Exchange administrator added with a ticket; role-group changes during an RBAC "
                     "reorganisation (memberships standing since the previous scan are never reported).",),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    memberships = account.require("exchange_role_groups")
    if ctx.previous is None:
        return
    prev = ctx.previous.get("exchange_role_groups")
    if prev is None:  # not read last time (or a scan stored before this collection): no baseline
        return
    before = {(m.group.strip().lower(), (m.via_group or "").lower()) for m in prev}
    for m in memberships:
        if not exchange_group_is_privileged(m):
            continue
        if (m.group.strip().lower(), (m.via_group or "").lower()) in before:
            continue
        direct = m.role_group_type == DIRECT_ASSIGNMENT
        if direct:
            removal = (f"Remove-ManagementRoleAssignment -Identity '{m.group_identity or m.group}' -Confirm:$false "
                       "(step remove_admin_roles)")
        elif m.via_group:
            # Held through a mail-enabled group inside the role group: the account leaves that group (or the group
            # inside it it is in); remove_admin_roles names this, it never edits a group others rely on.
            removal = (f"Remove-DistributionGroupMember -Identity '{m.via_group}' -Member '{account.upn}' "
                       "-BypassSecurityGroupManagerCheck -Confirm:$false (or from the group nested inside it the "
                       "account is in; by hand: remove_admin_roles names it and does not remove it)")
        else:
            removal = (f"Remove-RoleGroupMember -Identity '{m.group_identity or m.group}' -Member "
                       f"'{account.upn}' -BypassSecurityGroupManagerCheck -Confirm:$false (step remove_admin_roles)")
        ev = {"role_group": m.group, "roles": list(m.roles), "role_group_type": m.role_group_type,
              "member": m.member, "via_group": m.via_group, "first_seen": ctx.now.isoformat(), "removal": removal}
        if direct:
            ev["direct_assignment"] = True
        score = 30
        if account.user.job_title and NON_ADMIN_TITLES.search(account.user.job_title):
            ev["job_title_mismatch"] = account.user.job_title
            score += 10
        yield make_finding(META, account, evidence=ev, artefact=f"exorolegroup:{m.group.strip().lower()}",
                           score=score)
