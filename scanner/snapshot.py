"""The one data model detectors see: a normalised, JSON-serialisable snapshot of one account's state.

Collection (``scanner.collectors``) and judgement (``detectors``) are separate stages with this snapshot between them
(ScubaGear's shape). Every per-account collection is either its data or a :class:`NotCollected` reason: a failed source
is never an empty list, and reading it through :meth:`AccountSnapshot.require` raises :class:`NotCollectedError`, which
the detector engine turns into a coverage gap.

Field names reuse Graph's property names in snake_case (``forwarding_smtp_address``, ``is_enabled``,
``created_date_time``) so a grep crosses layers. Raw predicate / action dicts of inbox rules keep Graph's camelCase keys
exactly (``bodyOrSubjectContains``, ``moveToFolder``) because they *are* Graph's ``messageRulePredicates`` /
``messageRuleActions`` objects; rules read from Exchange ``Get-InboxRule`` are translated into the same vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Collection names: the keys of AccountSnapshot.collections and DetectorMeta.requires.
USER = "user"  # always present: the directory object itself
FORWARDING = "forwarding"
INBOX_RULES = "inbox_rules"
FOLDERS = "folders"
AUTH_METHODS = "auth_methods"
REGISTRATION = "registration"  # reports/authenticationMethods/userRegistrationDetails row
ROLES = "roles"
OAUTH_GRANTS = "oauth_grants"
DELEGATES = "delegates"
SENDING = "sending"
PROTOCOLS = "protocols"  # Get-CASMailbox
# Exchange Online RBAC role groups the account is a member of (Get-RoleGroup / Get-RoleGroupMember, read tenant-wide)
EXCHANGE_ROLE_GROUPS = "exchange_role_groups"

COLLECTIONS = (
    FORWARDING,
    INBOX_RULES,
    FOLDERS,
    AUTH_METHODS,
    REGISTRATION,
    ROLES,
    OAUTH_GRANTS,
    DELEGATES,
    SENDING,
    PROTOCOLS,
    EXCHANGE_ROLE_GROUPS,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class NotCollected(_Frozen):
    """Why a collection is missing for this account (a coverage gap, never 'clean')."""

    reason: str
    code: str | None = None  # e.g. "ErrorAccessDenied", "timeout", "malformed_response"
    permission: str | None = None  # the permission that would have allowed it, when known
    not_applicable: bool = False  # e.g. no mailbox: nothing to read, not an error


class NotCollectedError(Exception):
    """Raised when a detector reads a collection that could not be collected."""

    def __init__(self, collection: str, why: NotCollected) -> None:
        super().__init__(f"{collection}: {why.reason}")
        self.collection = collection
        self.why = why


class User(_Frozen):
    id: str
    user_principal_name: str
    display_name: str | None = None
    mail: str | None = None
    account_enabled: bool | None = None
    user_type: str | None = None  # "Member" | "Guest"
    on_premises_sync_enabled: bool | None = None
    mobile_phone: str | None = None
    other_mails: tuple[str, ...] = ()
    business_phones: tuple[str, ...] = ()
    job_title: str | None = None
    department: str | None = None
    created_date_time: datetime | None = None
    last_password_change_date_time: datetime | None = None
    # From Exchange Get-Mailbox RecipientTypeDetails ("UserMailbox", "SharedMailbox", "RoomMailbox", ...) or None
    # when the account has no Exchange Online mailbox.
    mailbox_type: str | None = None

    @property
    def is_guest(self) -> bool:
        return (self.user_type or "").lower() == "guest" or "#EXT#" in self.user_principal_name


class MailboxForwarding(_Frozen):
    forwarding_smtp_address: str | None = None  # bare address, the "smtp:" prefix removed
    forwarding_address: str | None = None  # an internal recipient's identity (display name / address)
    forwarding_address_resolved: str | None = None  # SMTP address of ForwardingAddress when it could be resolved
    deliver_to_mailbox_and_forward: bool = False

    @property
    def is_set(self) -> bool:
        return bool(self.forwarding_smtp_address or self.forwarding_address)


class InboxRule(_Frozen):
    id: str  # Graph messageRule id, or "exo:<RuleIdentity>" for rules only Exchange shows
    display_name: str = ""
    sequence: int | None = None
    is_enabled: bool = True
    is_read_only: bool = False
    has_error: bool = False
    hidden: bool = False  # only visible through Get-InboxRule -IncludeHidden
    source: Literal["graph", "exchange"] = "graph"
    exchange_identity: str | None = None  # RuleIdentity, for Disable-InboxRule
    conditions: Mapping[str, Any] = Field(default_factory=dict)  # Graph messageRulePredicates keys
    exceptions: Mapping[str, Any] = Field(default_factory=dict)
    actions: Mapping[str, Any] = Field(default_factory=dict)  # Graph messageRuleActions keys


class MailFolder(_Frozen):
    id: str
    display_name: str
    parent_folder_id: str | None = None
    well_known_name: str | None = None  # "inbox", "archive", "rssfeeds", ... when known
    is_hidden: bool = False


class AuthMethod(_Frozen):
    id: str
    method_type: str  # Graph type name without namespace, e.g. "phoneAuthenticationMethod"
    created_date_time: datetime | None = None
    display_name: str | None = None
    phone_number: str | None = None
    phone_type: str | None = None
    email_address: str | None = None
    is_usable: bool | None = None  # temporaryAccessPass
    start_date_time: datetime | None = None
    lifetime_in_minutes: int | None = None
    device_tag: str | None = None


class Registration(_Frozen):
    """One row of reports/authenticationMethods/userRegistrationDetails."""

    is_admin: bool | None = None
    is_mfa_registered: bool | None = None
    methods_registered: tuple[str, ...] = ()
    last_updated_date_time: datetime | None = None


class RoleAssignment(_Frozen):
    id: str
    role_definition_id: str
    role_template_id: str | None = None
    role_name: str | None = None
    privileged: bool = False
    kind: Literal["active", "eligible"] = "active"
    directory_scope_id: str = "/"
    via_group: bool = False


DIRECT_ASSIGNMENT = "DirectAssignment"  # ExchangeRoleGroupMembership.role_group_type of a role assigned directly


class ExchangeRoleGroupMembership(_Frozen):
    """The account is a member of an Exchange Online role group (``Get-RoleGroupMember``), which grants it the group's
    management roles in Exchange RBAC — admin rights Entra directory roles do not show (detections.md §D1 "Exchange
    RBAC ... management role assignments"). ``via_group``: the member Exchange listed was a mail-enabled security
    group the account belongs to (its name), not the account itself."""

    group: str  # the role group's Name ("Organization Management")
    group_identity: str | None = None  # Identity / Guid: what Remove-RoleGroupMember -Identity takes
    group_guid: str | None = None
    roles: tuple[str, ...] = ()  # management role names ("Role Management", "Mail Recipients", ...)
    role_group_type: str | None = None  # "Standard" | "Linked" | ... | "DirectAssignment" (no role group: ``group``
    # is the name of a management role assignment to the account itself, Get-ManagementRoleAssignment)
    member: str | None = None  # how Get-RoleGroupMember printed the member (Name / Identity)
    via_group: str | None = None


class OAuthGrant(_Frozen):
    id: str
    client_id: str  # the client service principal's object id
    app_id: str | None = None
    app_display_name: str | None = None
    publisher_name: str | None = None
    verified_publisher: str | None = None  # verifiedPublisher.displayName, None when unverified
    app_owner_organization_id: str | None = None
    consent_type: Literal["Principal", "AllPrincipals"] = "Principal"
    resource_display_name: str | None = None
    scopes: tuple[str, ...] = ()


class Delegate(_Frozen):
    trustee: str  # as Exchange shows it (an address, a display name, or a SID)
    access_right: str  # "FullAccess" | "SendAs" | "SendOnBehalf"
    trustee_address: str | None = None  # SMTP address when resolved
    trustee_is_guest: bool = False


class SendingStatus(_Frozen):
    blocked_from_sending: bool = False
    sent_last_24h: int | None = None


class Protocols(_Frozen):
    mapi_enabled: bool | None = None
    ews_enabled: bool | None = None
    active_sync_enabled: bool | None = None
    imap_enabled: bool | None = None
    pop_enabled: bool | None = None
    owa_enabled: bool | None = None
    smtp_client_authentication_disabled: bool | None = None


_COLLECTION_TYPES: dict[str, Any] = {
    FORWARDING: MailboxForwarding,
    INBOX_RULES: tuple[InboxRule, ...],
    FOLDERS: tuple[MailFolder, ...],
    AUTH_METHODS: tuple[AuthMethod, ...],
    REGISTRATION: Registration,
    ROLES: tuple[RoleAssignment, ...],
    OAUTH_GRANTS: tuple[OAuthGrant, ...],
    DELEGATES: tuple[Delegate, ...],
    SENDING: SendingStatus,
    PROTOCOLS: Protocols,
    EXCHANGE_ROLE_GROUPS: tuple[ExchangeRoleGroupMembership, ...],
}


class AccountSnapshot(_Frozen):
    """Everything collected about one account in one scan."""

    user: User
    forwarding: MailboxForwarding | NotCollected | None = None
    inbox_rules: tuple[InboxRule, ...] | NotCollected | None = None
    folders: tuple[MailFolder, ...] | NotCollected | None = None
    auth_methods: tuple[AuthMethod, ...] | NotCollected | None = None
    registration: Registration | NotCollected | None = None
    roles: tuple[RoleAssignment, ...] | NotCollected | None = None
    oauth_grants: tuple[OAuthGrant, ...] | NotCollected | None = None
    delegates: tuple[Delegate, ...] | NotCollected | None = None
    sending: SendingStatus | NotCollected | None = None
    protocols: Protocols | NotCollected | None = None
    # None in scans stored before this collection existed ("absent": not read, never "no membership")
    exchange_role_groups: tuple[ExchangeRoleGroupMembership, ...] | NotCollected | None = None

    @property
    def upn(self) -> str:
        return self.user.user_principal_name

    @property
    def has_mailbox(self) -> bool:
        return self.user.mailbox_type is not None

    def status(self, collection: str) -> Literal["collected", "not_collected", "not_applicable", "absent"]:
        value = getattr(self, collection)
        if value is None:
            return "absent"
        if isinstance(value, NotCollected):
            return "not_applicable" if value.not_applicable else "not_collected"
        return "collected"

    def require(self, collection: str) -> Any:
        """The collection's data; raises NotCollectedError if it failed or was never read.

        A collection that does not apply to this account (no mailbox → no inbox rules) reads as empty data, because
        there is nothing there an attacker could have changed.
        """
        value = getattr(self, collection)
        if value is None:
            raise NotCollectedError(collection, NotCollected(reason="not collected in this scan", code="absent"))
        if isinstance(value, NotCollected):
            if value.not_applicable:
                return _empty(collection)
            raise NotCollectedError(collection, value)
        return value

    def get(self, collection: str) -> Any:
        """The collection's data, or None when it failed or was not read (for optional enrichment only)."""
        try:
            return self.require(collection)
        except NotCollectedError:
            return None

    def gaps(self) -> dict[str, NotCollected]:
        out: dict[str, NotCollected] = {}
        for name in COLLECTIONS:
            value = getattr(self, name)
            if isinstance(value, NotCollected) and not value.not_applicable:
                out[name] = value
        return out

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> AccountSnapshot:
        return cls.model_validate_json(data)


def _empty(collection: str) -> Any:
    if collection in (FORWARDING,):
        return MailboxForwarding()
    if collection == SENDING:
        return SendingStatus()
    if collection == PROTOCOLS:
        return Protocols()
    if collection == REGISTRATION:
        return Registration()
    return ()


class PrivilegedPrincipal(_Frozen):
    """A non-user principal (service principal, role-assignable group, ...) holding a privileged directory role.

    One entry per role assignment, from ``roleAssignments?$expand=principal`` (graph-api.md §5.1). Tenant-level: these
    principals are not accounts, so they live on :class:`TenantInfo`, not in any AccountSnapshot.
    """

    id: str  # the principal's directory object id
    principal_type: str  # "servicePrincipal" | "group" | ... (@odata.type without the namespace)
    display_name: str | None = None
    app_id: str | None = None  # service principals only
    app_owner_organization_id: str | None = None  # the tenant that registered the app (Microsoft's for first-party)
    service_principal_type: str | None = None  # "Application" | "ManagedIdentity" | "Legacy" | "SocialIdp"
    assignment_id: str | None = None
    role_definition_id: str | None = None
    role_template_id: str | None = None
    role_name: str | None = None
    kind: Literal["active", "eligible"] = "active"
    directory_scope_id: str = "/"


class AppRoleGrant(_Frozen):
    """One application permission: an app role assignment on a resource service principal, from
    ``GET /servicePrincipals/{resourceSpId}/appRoleAssignedTo`` (graph-api.md §6.2), with the role's name resolved
    from the resource's ``appRoles[]`` and the client service principal's identity. Tenant-level, like the
    AllPrincipals grants: an application permission covers every mailbox and belongs to no account."""

    id: str  # the appRoleAssignment id (DELETE /servicePrincipals/{resource_id}/appRoleAssignedTo/{id})
    app_role_id: str
    app_role: str | None = None  # the role's ``value`` ("Mail.ReadWrite", "full_access_as_app"); None when unknown
    resource_id: str  # the resource service principal's object id
    resource_app_id: str | None = None  # 00000003-0000-0000-c000-000000000000 (Graph), 00000002-...-ce00-... (EXO)
    resource_display_name: str | None = None
    principal_id: str  # the client service principal's object id
    principal_type: str | None = None  # "ServicePrincipal" | "User" | "Group"
    principal_display_name: str | None = None
    app_id: str | None = None  # the client app's appId
    app_display_name: str | None = None
    verified_publisher: str | None = None  # verifiedPublisher.displayName, None when unverified
    app_owner_organization_id: str | None = None
    service_principal_type: str | None = None  # "Application" | "ManagedIdentity" | "Legacy"
    created_date_time: datetime | None = None


class TransportRule(_Frozen):
    """One Exchange Online mail-flow (transport) rule, from ``Get-TransportRule`` (graph-api.md §3.4). Tenant-level:
    a transport rule applies to the organisation's mail flow, not to any one mailbox, so it lives on
    :class:`TenantInfo`. Field names are the cmdlet's property names in snake_case; recipient lists hold what Exchange
    printed, reduced to a bare SMTP address where one could be read (``"Name" [SMTP:a@b]`` -> ``a@b``)."""

    name: str
    identity: str | None = None  # Identity / Guid / ImmutableId: what Disable-TransportRule -Identity takes
    guid: str | None = None
    state: str | None = None  # "Enabled" | "Disabled"
    mode: str | None = None  # "Enforce" | "Audit" | "AuditAndNotify" (test modes: actions are logged, not applied)
    priority: int | None = None
    redirect_message_to: tuple[str, ...] = ()
    blind_copy_to: tuple[str, ...] = ()
    copy_to: tuple[str, ...] = ()
    add_to_recipients: tuple[str, ...] = ()
    add_manager_as_recipient_type: str | None = None  # To | Cc | Bcc | Redirect (the sender's / recipient's manager)
    route_message_outbound_connector: str | None = None
    set_scl: int | None = None  # -1 = bypass spam filtering
    set_header_name: str | None = None
    set_header_value: str | None = None
    delete_message: bool = False
    quarantine: bool = False
    stop_rule_processing: bool = False
    # Conditions and exceptions present on the rule (From, FromScope, SentTo, SentToScope, SenderDomainIs,
    # SubjectContainsWords, ExceptIfFrom ...): property name -> value as Exchange printed it (lists of strings mostly).
    conditions: Mapping[str, Any] = Field(default_factory=dict)
    exceptions: Mapping[str, Any] = Field(default_factory=dict)
    description: str | None = None  # Exchange's own plain-text summary of conditions and actions
    comments: str | None = None
    when_changed: datetime | None = None

    @property
    def enabled(self) -> bool:
        return (self.state or "Enabled").strip().lower() != "disabled"


class RemoteDomain(_Frozen):
    """One ``Get-RemoteDomain`` entry (graph-api.md §3.4). ``domain_name`` is ``*`` for the built-in ``Default``, or a
    domain, or ``*.parent`` for every subdomain of one. ``auto_forward_enabled`` False drops automatic forwards to it."""

    name: str
    domain_name: str
    auto_forward_enabled: bool | None = None  # None: not printed / unreadable ("unknown")
    when_changed: datetime | None = None

    @property
    def is_default(self) -> bool:
        return self.domain_name.strip() == "*"


class OutboundSpamPolicy(_Frozen):
    """One ``Get-HostedOutboundSpamFilterPolicy``: only what decides external auto-forwarding."""

    name: str
    identity: str | None = None
    auto_forwarding_mode: str | None = None  # "On" | "Off" | "Automatic" (system-controlled: now the same as Off)
    is_default: bool = False
    enabled: bool | None = None
    when_changed: datetime | None = None


class OutboundSpamRule(_Frozen):
    """One ``Get-HostedOutboundSpamFilterRule``: which senders a custom outbound policy applies to. ``from_values`` /
    ``from_member_of`` hold what Exchange printed, reduced to a bare SMTP address where one could be read."""

    name: str
    policy: str  # HostedOutboundSpamFilterPolicy: the custom policy's name
    state: str | None = None  # "Enabled" | "Disabled"
    priority: int | None = None  # lower = evaluated first
    from_values: tuple[str, ...] = ()
    from_member_of: tuple[str, ...] = ()
    sender_domain_is: tuple[str, ...] = ()
    except_if_from: tuple[str, ...] = ()
    except_if_from_member_of: tuple[str, ...] = ()
    except_if_sender_domain_is: tuple[str, ...] = ()
    when_changed: datetime | None = None

    @property
    def enabled(self) -> bool:
        return (self.state or "Enabled").strip().lower() != "disabled"


class OutboundPolicy(_Frozen):
    """The organisation's external auto-forwarding controls, read once per scan (detections.md §0.2): remote domains
    and the outbound spam filter policies with the rules that scope the custom ones to senders. Tenant-level."""

    remote_domains: tuple[RemoteDomain, ...] = ()
    policies: tuple[OutboundSpamPolicy, ...] = ()
    rules: tuple[OutboundSpamRule, ...] = ()


class ExchangeRoleGroup(_Frozen):
    """One Exchange Online role group (``Get-RoleGroup``) with its members as ``Get-RoleGroupMember`` printed them.
    Tenant-level: what each member account is in reaches its snapshot as :class:`ExchangeRoleGroupMembership`; the
    members that match no account of the scan (``unresolved_members``: a name no mailbox or user carries, a group
    whose members were not read, a service principal) are kept here so they are named, never dropped."""

    name: str
    identity: str | None = None
    guid: str | None = None
    roles: tuple[str, ...] = ()
    role_group_type: str | None = None
    description: str | None = None
    when_changed: datetime | None = None
    members: tuple[str, ...] = ()  # every member as printed (Name, else Identity)
    unresolved_members: tuple[str, ...] = ()  # "<name> (<RecipientType>)" of members matched to no account


class TenantInfo(_Frozen):
    """Tenant-level facts every detector may use."""

    tenant_id: str
    domains: tuple[str, ...] = ()  # accepted (verified) domains, lower case
    initial_domain: str | None = None  # the *.onmicrosoft.com one
    default_domain: str | None = None
    display_name: str | None = None
    # Admin-consented (consentType "AllPrincipals") OAuth grants: tenant-level, not attached to any one account.
    all_principals_grants: tuple[OAuthGrant, ...] = ()
    # Whether the grants source was read in this scan (None: unknown, e.g. a scan stored before this field). An empty
    # all_principals_grants with False means "not read", so the next scan must not call every grant "new".
    all_principals_grants_read: bool | None = None
    # Non-user principals in privileged roles; None when the roles source could not be read (or the scan predates
    # this field) — "unknown", never "none".
    privileged_principals: tuple[PrivilegedPrincipal, ...] | None = None
    # Application permissions (app role assignments) held on Microsoft Graph and Office 365 Exchange Online; None
    # when the source could not be read (or the scan predates this field) — "unknown", never "none".
    app_role_grants: tuple[AppRoleGrant, ...] | None = None
    # The appId the scanner itself signed in as (token ``appid`` / ``azp`` claim, else [tenant] client_id): its own
    # read permissions and Exchange.ManageAsApp are expected, not a back-door.
    scanner_app_id: str | None = None
    # Exchange Online mail-flow (transport) rules; None when Get-TransportRule could not be read (or the scan predates
    # this field) — "unknown", never "none".
    transport_rules: tuple[TransportRule, ...] | None = None
    # The outbound auto-forwarding allow-list (remote domains, outbound spam filter policies and rules); None when it
    # could not be read (or the scan predates this field) — "unknown", never "no policy".
    outbound_policy: OutboundPolicy | None = None
    # Exchange Online role groups with their roles and members; None when Get-RoleGroup / Get-RoleGroupMember could
    # not be read (or the scan predates this field) — "unknown", never "no members".
    exchange_role_groups: tuple[ExchangeRoleGroup, ...] | None = None
