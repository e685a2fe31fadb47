"""Least-privilege application permissions per simulated endpoint (graph-api.md §1-§8).

``REQUIRED[route] = (error_kind, (accepted permission, ...))``: the app needs ANY one of the accepted permissions.
``error_kind`` chooses the 403 body: ``directory`` -> ``Authorization_RequestDenied``, ``mail`` -> ``ErrorAccessDenied``.
"""

from __future__ import annotations

DIR_READ = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")

REQUIRED: dict[str, tuple[str, tuple[str, ...]]] = {
    # users
    "GET users": ("directory", DIR_READ),
    "GET users/{id}": ("directory", DIR_READ),
    "GET users/$count": ("directory", DIR_READ),
    "PATCH users/{id}": ("directory", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
    "PATCH users/{id}#accountEnabled": ("directory", ("User.EnableDisableAccount.All", "User.ReadWrite.All",
                                                      "Directory.ReadWrite.All")),
    # User.ReadWrite.All alone is refused for passwordProfile (graph-api.md §7)
    "PATCH users/{id}#passwordProfile": ("directory", ("User-PasswordProfile.ReadWrite.All",)),
    "GET users#signInActivity": ("directory", ("AuditLog.Read.All",)),
    "POST users/{id}/revokeSignInSessions": ("directory", ("User.RevokeSessions.All", "User.ReadWrite.All",
                                                            "Directory.ReadWrite.All")),
    # mailbox (Outlook service)
    "GET users/{id}/mailboxSettings": ("mail", ("MailboxSettings.Read", "MailboxSettings.ReadWrite")),
    "GET users/{id}/mailFolders": ("mail", ("Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite")),
    "GET users/{id}/messageRules": ("mail", ("MailboxSettings.Read", "MailboxSettings.ReadWrite")),
    "POST users/{id}/messageRules": ("mail", ("MailboxSettings.ReadWrite",)),
    "PATCH users/{id}/messageRules/{id}": ("mail", ("MailboxSettings.ReadWrite",)),
    "DELETE users/{id}/messageRules/{id}": ("mail", ("MailboxSettings.ReadWrite",)),
    "GET users/{id}/messages": ("mail", ("Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite")),
    # authentication methods
    "GET users/{id}/authentication": ("directory", ("UserAuthenticationMethod.Read.All",
                                                    "UserAuthenticationMethod.ReadWrite.All")),
    "DELETE users/{id}/authentication": ("directory", ("UserAuthenticationMethod.ReadWrite.All",)),
    "GET reports/authenticationMethods": ("directory", ("AuditLog.Read.All",)),
    # roles
    "GET roleManagement": ("directory", ("RoleManagement.Read.Directory", "RoleManagement.Read.All",
                                         "Directory.Read.All", "RoleManagement.ReadWrite.Directory",
                                         "Directory.ReadWrite.All")),
    "DELETE roleManagement": ("directory", ("RoleManagement.ReadWrite.Directory",)),
    # create unifiedRoleAssignment: the directory provider documents only RoleManagement.ReadWrite.Directory
    "POST roleManagement": ("directory", ("RoleManagement.ReadWrite.Directory",)),
    # PIM eligibility requests (adminRemove / adminAssign): least RoleEligibilitySchedule.ReadWrite.Directory
    "POST roleEligibilityScheduleRequests": ("directory", ("RoleEligibilitySchedule.ReadWrite.Directory",
                                                           "RoleManagement.ReadWrite.Directory")),
    "GET directoryRoles": ("directory", ("RoleManagement.Read.Directory", "Directory.Read.All",
                                         "RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All")),
    "DELETE directoryRoles": ("directory", ("RoleManagement.ReadWrite.Directory",)),
    # groups. group-get / group-list-members / group-list-transitivemembers: least GroupMember.Read.All
    "GET groups": ("directory", ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All",
                                 "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")),
    # user-list-memberof, another user's direct memberships, application: least Directory.Read.All
    "GET users/{id}/memberOf": ("directory", ("Directory.Read.All", "Directory.ReadWrite.All")),
    # user-list-transitivememberof, another user's memberships, application: least User.Read.All
    "GET users/{id}/transitiveMemberOf": ("directory", ("User.Read.All", "Directory.Read.All", "Directory.ReadWrite.All",
                                                        "Group.Read.All", "GroupMember.Read.All")),
    # group-post-members / group-delete-members (a user or group member): least GroupMember.ReadWrite.All ...
    "POST groups/{id}/members": ("directory", ("GroupMember.ReadWrite.All", "Group.ReadWrite.All",
                                               "Directory.ReadWrite.All")),
    "DELETE groups/{id}/members": ("directory", ("GroupMember.ReadWrite.All", "Group.ReadWrite.All",
                                                 "Directory.ReadWrite.All")),
    # ... and for a role-assignable group "the app must also be assigned the RoleManagement.ReadWrite.Directory
    # permission" (groups-concept: "The Group.ReadWrite.All permission won't work").
    "groups/{id}/members#roleAssignable": ("directory", ("RoleManagement.ReadWrite.Directory",)),
    # consent grants and apps
    "GET oauth2PermissionGrants": ("directory", ("DelegatedPermissionGrant.Read.All", "Directory.Read.All",
                                                 "DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All")),
    "DELETE oauth2PermissionGrants": ("directory", ("DelegatedPermissionGrant.ReadWrite.All",)),
    # create oAuth2PermissionGrant: least DelegatedPermissionGrant.ReadWrite.All, higher Directory.ReadWrite.All
    "POST oauth2PermissionGrants": ("directory", ("DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All")),
    "GET servicePrincipals": ("directory", ("Application.Read.All", "Directory.Read.All",
                                            "Application.ReadWrite.All", "Directory.ReadWrite.All")),
    # list appRoleAssignedTo: least Application.Read.All (OwnedBy only reaches the app's own objects: not accepted here)
    "GET servicePrincipals/{id}/appRoleAssignedTo": ("directory", ("Application.Read.All", "Directory.Read.All",
                                                                   "Application.ReadWrite.All",
                                                                   "Directory.ReadWrite.All")),
    "GET domains": ("directory", ("Domain.Read.All", "Directory.Read.All", "Domain.ReadWrite.All",
                                  "Directory.ReadWrite.All")),
    "GET organization": ("directory", ("Organization.Read.All", "Directory.Read.All", "User.Read.All",
                                       "Organization.ReadWrite.All", "Directory.ReadWrite.All")),
    # Exchange admin API (app-only: Exchange.ManageAsApp on Office 365 Exchange Online)
    "exchange": ("exchange", ("Exchange.ManageAsApp",)),
}

ALL_PERMISSIONS: frozenset[str] = frozenset(p for _k, (_kind, perms) in REQUIRED.items() for p in perms)
