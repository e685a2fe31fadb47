"""Permission matrix: which application permission each collector and remediation step needs (least privilege).

Scanning is read-only: every collector names the least-privileged *read* permission Microsoft documents for it
(graph-api.md §1-§8). ``accepted`` lists the broader permissions that also work, so ``m365sweep check`` can say a
collector is available when the app holds, say, ``Directory.Read.All`` instead of ``User.Read.All``.

Exchange (``Exchange.ManageAsApp`` on "Office 365 Exchange Online") additionally needs an Exchange RBAC role for the
service principal (Exchange Recipient Administrator / Exchange Administrator, or a custom role group); a token cannot
show that, so ``check`` reports it as a note. Global Reader cannot run ``Get-InboxRule`` (graph-api.md §2.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Service = Literal["graph", "exchange"]

DIRECTORY_READ = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
EXCHANGE = ("Exchange.ManageAsApp",)
# Get-TransportRule is not in the recipient roles the per-mailbox cmdlets need (Exchange Recipient Administrator):
# it needs a configuration role (Microsoft365DSC EXOTransportRule: read = "View-Only Configuration").
TRANSPORT_RULES_ROLE = ("an Exchange RBAC role holding Get-TransportRule: \"View-Only Configuration\" (role group "
                        "View-Only Organization Management, or the Entra role Global Reader) or \"Transport Rules\" "
                        "(Exchange Administrator)")

# Get-RemoteDomain and Get-HostedOutboundSpamFilterPolicy / -Rule are organisation configuration too: the recipient
# roles do not hold them.
OUTBOUND_POLICY_ROLE = ("an Exchange RBAC role holding Get-RemoteDomain and Get-HostedOutboundSpamFilterPolicy / "
                        "-Rule: \"View-Only Configuration\" (role group View-Only Organization Management, or the Entra "
                        "role Global Reader), or Organization Management (Exchange Administrator)")

# Get-RoleGroup / Get-RoleGroupMember read RBAC configuration (Microsoft365DSC EXORoleGroup: read = "View-Only
# Configuration"); Add-/Remove-RoleGroupMember change it (update = "Role Management", only in Organization Management).
ROLE_GROUPS_READ_ROLE = ("an Exchange RBAC role holding Get-RoleGroup, Get-RoleGroupMember and "
                         "Get-ManagementRoleAssignment: \"View-Only "
                         "Configuration\" (role group View-Only Organization Management, or the Entra role Global "
                         "Reader) or \"Role Management\" (Organization Management; Exchange Administrator)")
ROLE_GROUPS_WRITE_ROLE = ("the Exchange RBAC role \"Role Management\" (role group Organization Management; the Entra "
                          "role Exchange Administrator)")


@dataclass(frozen=True)
class Need:
    """One permission requirement: the least-privileged name plus every permission that also satisfies it."""

    service: Service
    permission: str
    accepted: tuple[str, ...]
    why: str = ""

    def satisfied_by(self, roles: Iterable[str]) -> bool:
        have = set(roles)
        return self.permission in have or any(a in have for a in self.accepted)


def _g(permission: str, *also: str, why: str = "") -> Need:
    return Need("graph", permission, (permission, *also), why)


def _x(why: str = "") -> Need:
    return Need("exchange", "Exchange.ManageAsApp", EXCHANGE, why)


# collector name -> the permissions it needs (all of them). Collector names are the snapshot collection names plus
# the tenant-wide sources ("users", "domains").
COLLECTORS: dict[str, tuple[Need, ...]] = {
    "users": (_g("User.Read.All", *DIRECTORY_READ[1:], why="GET /users (required: the scan cannot start without it)"),
              _x("Get-Mailbox: mailbox type of each user")),
    "domains": (_g("Domain.Read.All", "Directory.Read.All", "Domain.ReadWrite.All", "Directory.ReadWrite.All",
                   why="GET /domains: accepted domains decide internal vs external"),),
    "forwarding": (_x("Get-Mailbox: ForwardingSmtpAddress / ForwardingAddress; Get-Recipient: a ForwardingAddress "
                      "naming a mail contact or mail user"),),
    "inbox_rules": (_g("MailboxSettings.Read", "MailboxSettings.ReadWrite", why="GET messageRules"),
                    _x("Get-InboxRule -IncludeHidden: rules Graph cannot see")),
    "folders": (_g("Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite",
                   why="GET mailFolders: names of moveToFolder / copyToFolder targets"),),
    "auth_methods": (_g("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All",
                        why="GET /users/{id}/authentication/methods"),),
    "registration": (_g("AuditLog.Read.All", why="reports/authenticationMethods/userRegistrationDetails (Entra P1/P2)"),),
    "roles": (_g("RoleManagement.Read.Directory", "RoleManagement.Read.All", "Directory.Read.All",
                 "RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All",
                 why="roleDefinitions, roleAssignments, roleEligibilitySchedules"),
              _g("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All",
                 "Group.ReadWrite.All", "Directory.ReadWrite.All",
                 why="GET /groups/{id}/transitiveMembers: the users who hold a role through a role-assignable group "
                     "(without it they are not marked: a tenant-wide coverage gap, exit 3)")),
    "oauth_grants": (_g("DelegatedPermissionGrant.Read.All", "Directory.Read.All",
                        "DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All",
                        why="GET /oauth2PermissionGrants"),
                     _g("Application.Read.All", "Directory.Read.All", "Application.ReadWrite.All",
                        "Directory.ReadWrite.All", why="client app names and publisher verification")),
    "app_roles": (_g("Application.Read.All", "Directory.Read.All", "Application.ReadWrite.All",
                     "Directory.ReadWrite.All",
                     why="GET /servicePrincipals/{id}/appRoleAssignedTo on Microsoft Graph and Exchange Online: "
                         "apps with application permissions to every mailbox"),),
    "delegates": (_x("Get-MailboxPermission, Get-RecipientPermission, GrantSendOnBehalfTo"),),
    "sending": (_g("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite", why="sent items in the last 24 h"),
                _x("Get-BlockedSenderAddress: restricted senders")),
    "protocols": (_x("Get-CASMailbox"),),
    "transport_rules": (_x("Get-TransportRule: the organisation's mail-flow rules (redirect / Bcc / copy outside, "
                           "spam-filter bypass); plus the Exchange role View-Only Configuration or Transport Rules"),),
    "outbound_policy": (_x("Get-RemoteDomain, Get-HostedOutboundSpamFilterPolicy, Get-HostedOutboundSpamFilterRule: "
                           "the documented external auto-forwarding exceptions (forwarding false-positive suppressor); "
                           "plus the Exchange role View-Only Configuration"),),
    "exchange_role_groups": (_x("Get-RoleGroup, Get-RoleGroupMember, Get-ManagementRoleAssignment: Exchange role "
                                "groups and their members, and management roles assigned directly to users (Exchange "
                                "admin rights Entra roles do not show); plus the Exchange role View-Only "
                                "Configuration (or Role Management)"),
                             _g("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All",
                                "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All",
                                why="GET /groups/{id}/transitiveMembers: the accounts in a mail-enabled group inside "
                                    "an Exchange role group (without it they are not marked: a tenant-wide coverage "
                                    "gap, exit 3)")),
}

# Collectors without which no scan is possible: a 403 here is exit 2, not a coverage gap.
REQUIRED_COLLECTORS = ("users",)

# remediation step -> permissions it needs (interface.md step names).
STEPS: dict[str, tuple[Need, ...]] = {
    "revoke_sessions": (_g("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),),
    "reset_password": (_g("User-PasswordProfile.ReadWrite.All",
                          why="plus an Entra role allowed to reset the target (e.g. Privileged Authentication "
                              "Administrator for admins)"),),
    "remove_forwarding": (_x("Set-Mailbox"),),
    "disable_rules": (_g("MailboxSettings.ReadWrite", why="PATCH messageRules {isEnabled: false}"),
                      _x("Disable-InboxRule for hidden and read-only rules")),
    "unblock_sending": (_x("Remove-BlockedSenderAddress"),),
    "block_sign_in": (_g("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),),
    "disable_email_apps": (_x("Set-CASMailbox"),),
    "remove_admin_roles": (_g("RoleManagement.ReadWrite.Directory",
                              why="direct and PIM-eligible role assignments; membership of role-assignable groups "
                                  "needs it too"),
                           _g("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All",
                              why="read and remove / restore the account's membership of role-assignable groups that "
                                  "hold a role (together with RoleManagement.ReadWrite.Directory)"),
                           _x("Remove-RoleGroupMember / Add-RoleGroupMember (undo): Exchange role-group membership; "
                              "Remove-ManagementRoleAssignment / New-ManagementRoleAssignment (undo): management "
                              "roles assigned directly to the account; plus the Exchange role Role Management "
                              "(Organization Management)")),
    "remove_auth_methods": (_g("UserAuthenticationMethod.ReadWrite.All"),),
    "revoke_oauth_grants": (_g("DelegatedPermissionGrant.ReadWrite.All"),),
    "remove_delegates": (_x("Remove-MailboxPermission, Remove-RecipientPermission, Set-Mailbox"),),
}


def least(collector: str, service: Service | None = None) -> str:
    """The least-privileged permission that would let ``collector`` read (its first need of ``service``)."""
    for need in COLLECTORS.get(collector, ()):
        if service is None or need.service == service:
            return need.permission
    return ""


def missing(needs: Iterable[Need], graph_roles: Iterable[str], exchange_roles: Iterable[str]) -> list[Need]:
    g, x = set(graph_roles), set(exchange_roles)
    return [n for n in needs if not n.satisfied_by(g if n.service == "graph" else x)]


def matrix_markdown() -> str:
    """The permission matrix as a markdown table (docs/permissions.md is generated from this)."""
    lines = ["| collector / step | service | least-privileged permission | also accepted | used for |",
             "|---|---|---|---|---|"]
    for title, table in (("collector", COLLECTORS), ("step", STEPS)):
        for name, needs in table.items():
            for n in needs:
                also = ", ".join(a for a in n.accepted if a != n.permission) or "—"
                lines.append(f"| {title} `{name}` | {n.service} | `{n.permission}` | {also} | {n.why or '—'} |")
    return "\n".join(lines) + "\n"
