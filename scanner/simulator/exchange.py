"""Exchange Online admin API (POST /adminapi/beta/{tenant}/InvokeCommand), shapes per graph-api.md §3."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .model import Rule, Tenant, User, iso

COLL = "#Collection(String)"


class CmdletError(Exception):
    def __init__(self, status: int, exc_type: str, text: str, code: str = "ExDBE2A8") -> None:
        super().__init__(text)
        self.status, self.exc_type, self.text, self.code = status, exc_type, text, code


def not_found(t: Tenant, ident: str) -> CmdletError:
    return CmdletError(404, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                       f"The operation couldn't be performed because object '{ident}' couldn't be found on "
                       f"'BN8PR11A001DC01.NAMPR11A001.PROD.OUTLOOK.COM'.", "Ex6F9304")


def _multi(d: dict, key: str, values: list | None) -> None:
    d[f"{key}@odata.type"] = COLL
    d[key] = values if values is not None else []


def mailbox_for(t: Tenant, ident: Any) -> User:
    if not isinstance(ident, str) or not ident:
        raise CmdletError(400, "System.Management.Automation.ParameterBindingException",
                          "Cannot validate argument on parameter 'Identity'. The argument is null or empty.", "Ex0A1B2C")
    u = t.find_user(ident)
    if u is None:
        low = ident.lower()
        u = next((x for x in t.explicit if x.displayName.lower() == low or x.mailNickname.lower() == low), None)
    if u is None or u.mailbox is None:
        raise not_found(t, ident)
    return u


def recipient_for(t: Tenant, ident: Any) -> User:
    """A RecipientIdParameter (the *-RecipientPermission cmdlets' -Identity): name, alias, DN, email address or GUID.
    Unlike a MailboxIdParameter it does not take a user principal name: a UPN that is none of the recipient's email
    addresses does not resolve."""
    u = mailbox_for(t, ident)
    key = str(ident).strip().lower()
    if "@" in key and key == u.userPrincipalName.lower() and key not in _smtp_addresses(t, u):
        raise not_found(t, str(ident))
    return u


def _smtp_addresses(t: Tenant, u: User) -> set[str]:
    return {a.split(":", 1)[1].lower() for a in mailbox_row(t, u)["EmailAddresses"]}


def _send_on_behalf_recipient(t: Tenant, ident: Any, current: dict, param: str = "GrantSendOnBehalfTo") -> str:
    """A recipient parameter's value (UPN, address, alias, or the name Get-Mailbox prints) -> the recipient's UPN."""
    if not isinstance(ident, str) or not ident.strip():
        raise CmdletError(400, "System.Management.Automation.ParameterBindingException",
                          f"Cannot validate argument on parameter '{param}'. The argument is null or empty.",
                          "Ex0A1B2C")
    if ident in current:  # the name Get-Mailbox showed for an entry already on the list
        return current[ident]
    u = t.find_user(ident)
    if u is None:
        low = ident.lower()
        u = next((x for x in t.changed_users() if x.displayName.lower() == low or x.mailNickname.lower() == low),
                 None)
    if u is None:
        # A display name, as Get-Mailbox shows it: Exchange resolves it when unique. Generated users cannot be
        # looked up by name, so walk the directory (rare: only names written back by a client).
        hits = [x for x in t.iter_users() if x.displayName.lower() == ident.strip().lower()]
        if len(hits) > 1:
            raise CmdletError(400, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
                              f"The operation couldn't be performed because '{ident}' matches multiple entries.",
                              "Ex0A2B4E")
        u = hits[0] if hits else None
    if u is None:
        raise not_found(t, ident)
    return u.userPrincipalName


def _display(t: Tenant, upn: str | None) -> str | None:
    if not upn:
        return None
    u = t.find_user(upn)
    return u.displayName if u else upn


def mailbox_row(t: Tenant, u: User) -> dict:
    mb = u.mailbox
    assert mb is not None
    rtd = {"user": "UserMailbox", "shared": "SharedMailbox", "room": "RoomMailbox", "equipment": "EquipmentMailbox"}[mb.kind]
    d: dict[str, Any] = {
        "Identity": u.mailNickname, "Name": u.mailNickname, "Alias": u.mailNickname, "DisplayName": u.displayName,
        "UserPrincipalName": u.userPrincipalName, "PrimarySmtpAddress": u.mail, "WindowsEmailAddress": u.mail,
        "RecipientType": "UserMailbox", "RecipientTypeDetails": rtd, "ExternalDirectoryObjectId": u.id,
        "Guid": u.id[::-1][:8] + u.id[8:], "ExchangeGuid": u.id[:24] + u.id[-12:][::-1],
        "ForwardingAddress": _display(t, mb.forwarding_address), "ForwardingSmtpAddress": mb.forwarding_smtp,
        "DeliverToMailboxAndForward": mb.deliver_and_forward, "HiddenFromAddressListsEnabled": False,
        "IsMailboxEnabled": True, "AccountDisabled": not u.accountEnabled, "IsShared": mb.kind == "shared",
        "LitigationHoldEnabled": False, "ArchiveStatus": "None", "WhenCreated": iso(u.createdDateTime),
        "WhenCreatedUTC": iso(u.createdDateTime), "WhenMailboxCreated": iso(u.createdDateTime),
        "IsDirSynced": bool(u.onPremisesSyncEnabled), "MessageCopyForSentAsEnabled": False,
    }
    _multi(d, "GrantSendOnBehalfTo", [_display(t, x) for x in mb.grant_send_on_behalf])
    _multi(d, "EmailAddresses", [f"SMTP:{u.mail}", f"smtp:{u.mailNickname}@{t.onmicrosoft_domain}"])
    return d


def _recips(rs: list[dict] | None) -> list[str]:
    return [f'"{r["emailAddress"].get("name") or r["emailAddress"]["address"]}" [SMTP:{r["emailAddress"]["address"]}]'
            for r in rs or []]


def _size(kb: int) -> str:
    b = kb * 1024
    return f"{kb} KB ({b:,} bytes)"


def inbox_rule_row(t: Tenant, u: User, r: Rule) -> dict:
    c, a = r.conditions, r.actions
    folder = None
    if a.get("moveToFolder"):
        p = t.folder_path(u, a["moveToFolder"])
        folder = f"{u.displayName}:\\{p}" if p else a["moveToFolder"]
    copy = None
    if a.get("copyToFolder"):
        p = t.folder_path(u, a["copyToFolder"])
        copy = f"{u.displayName}:\\{p}" if p else a["copyToFolder"]
    d: dict[str, Any] = {
        "Name": r.displayName, "Identity": f"{u.mailNickname}\\{r.rule_identity}", "RuleIdentity": str(r.rule_identity),
        "MailboxOwnerId": u.mailNickname, "Enabled": r.isEnabled, "Priority": r.sequence, "InError": r.hasError,
        "IsValid": True, "SupportedByTask": not r.isReadOnly,
        "DeleteMessage": bool(a.get("delete")), "SoftDeleteMessage": bool(a.get("permanentDelete")),
        "MarkAsRead": bool(a.get("markAsRead")), "StopProcessingRules": bool(a.get("stopProcessingRules")),
        "MoveToFolder": folder, "CopyToFolder": copy, "MarkImportance": a.get("markImportance"),
        "HasAttachment": bool(c.get("hasAttachments")),
        "MessageTypeMatches": "NonDeliveryReport" if c.get("isNonDeliveryReport") else
                              ("AutomaticReply" if c.get("isAutomaticReply") else None),
        "WithinSizeRangeMinimum": _size(c["withinSizeRange"]["minimumSize"]) if c.get("withinSizeRange") else None,
        "WithinSizeRangeMaximum": _size(c["withinSizeRange"]["maximumSize"]) if c.get("withinSizeRange") else None,
        "Description": _describe(r, folder),
    }
    for key, values in (("ForwardTo", _recips(a.get("forwardTo"))), ("RedirectTo", _recips(a.get("redirectTo"))),
                        ("ForwardAsAttachmentTo", _recips(a.get("forwardAsAttachmentTo"))),
                        ("From", _recips(c.get("fromAddresses"))), ("SentTo", _recips(c.get("sentToAddresses"))),
                        ("SubjectContainsWords", c.get("subjectContains")), ("BodyContainsWords", c.get("bodyContains")),
                        ("SubjectOrBodyContainsWords", c.get("bodyOrSubjectContains")),
                        ("FromAddressContainsWords", c.get("senderContains")),
                        ("RecipientAddressContainsWords", c.get("recipientContains")),
                        ("HeaderContainsWords", c.get("headerContains")),
                        ("ApplyCategory", a.get("assignCategories"))):
        if values:
            _multi(d, key, list(values))
        else:
            d[key] = None
    d.update(r.exchange_extra)
    return d


def _describe(r: Rule, folder: str | None) -> str:
    lines = ["If the message:"]
    c, a = r.conditions, r.actions
    for k, label in (("subjectContains", "includes '{}' in the subject"), ("bodyContains", "includes '{}' in the body"),
                     ("bodyOrSubjectContains", "includes '{}' in the subject or body")):
        if c.get(k):
            lines.append("\t" + label.format("' or '".join(c[k])))
    if c.get("fromAddresses"):
        lines.append("\tthe message was received from " + " or ".join(_recips(c["fromAddresses"])))
    if len(lines) == 1:
        lines.append("\tApply to all messages")
    lines.append("Take the following actions:")
    for k, label in (("forwardTo", "forward the message to"), ("redirectTo", "redirect the message to"),
                     ("forwardAsAttachmentTo", "forward the message as an attachment to")):
        if a.get(k):
            lines.append(f"\t{label} {' or '.join(_recips(a[k]))}")
    if folder:
        lines.append(f"\tmove the message to folder '{folder.split(':', 1)[-1].lstrip(chr(92))}'")
    if a.get("markAsRead"):
        lines.append("\tmark the message as read")
    if a.get("delete"):
        lines.append("\tdelete the message")
    if a.get("stopProcessingRules"):
        lines.append("\tand stop processing more rules on this message")
    return "\r\n".join(lines) + "\r\n"


def _find_rules(t: Tenant, u: User, ident: str) -> list[Rule]:
    ident = str(ident)
    key = ident.split("\\", 1)[1] if "\\" in ident else ident
    rules = t.rules(u)
    hits = [r for r in rules if str(r.rule_identity) == key]
    if not hits:
        hits = [r for r in rules if r.displayName == key]
    return hits


# ---------------------------------------------------------------------------------------------- mail-flow rules
# Get-TransportRule prints every predicate and action property of the TransportRule object, null when unset
# (graph-api.md §3.4; property names = New-TransportRule's parameters). Multi-valued ones set on the rule are arrays
# with the "@odata.type" sibling, like every other collection the admin API returns.
_ETR_PREDICATES = (
    "From", "FromMemberOf", "FromScope", "SentTo", "SentToMemberOf", "SentToScope", "BetweenMemberOf1",
    "BetweenMemberOf2", "ManagerAddresses", "ManagerForEvaluatedUser", "SenderManagementRelationship",
    "ADComparisonAttribute", "ADComparisonOperator", "SenderADAttributeContainsWords", "SenderADAttributeMatchesPatterns",
    "RecipientADAttributeContainsWords", "RecipientADAttributeMatchesPatterns", "AnyOfToHeader", "AnyOfToHeaderMemberOf",
    "AnyOfCcHeader", "AnyOfCcHeaderMemberOf", "AnyOfToCcHeader", "AnyOfToCcHeaderMemberOf", "HasClassification",
    "SubjectContainsWords", "SubjectOrBodyContainsWords", "HeaderContainsMessageHeader", "HeaderContainsWords",
    "FromAddressContainsWords", "SenderDomainIs", "RecipientDomainIs", "SubjectMatchesPatterns",
    "SubjectOrBodyMatchesPatterns", "HeaderMatchesMessageHeader", "HeaderMatchesPatterns", "FromAddressMatchesPatterns",
    "AttachmentNameMatchesPatterns", "AttachmentExtensionMatchesWords", "AttachmentPropertyContainsWords",
    "AttachmentContainsWords", "AttachmentMatchesPatterns", "ContentCharacterSetContainsWords", "SCLOver",
    "AttachmentSizeOver", "MessageSizeOver", "WithImportance", "MessageTypeMatches", "RecipientAddressContainsWords",
    "RecipientAddressMatchesPatterns", "SenderInRecipientList", "RecipientInSenderList",
    "AnyOfRecipientAddressContainsWords", "AnyOfRecipientAddressMatchesPatterns", "MessageContainsDataClassifications",
    "SenderIpRanges")
_ETR_SWITCHES = ("AttachmentIsUnsupported", "AttachmentProcessingLimitExceeded", "AttachmentHasExecutableContent",
                 "AttachmentIsPasswordProtected", "HasNoClassification", "HasSenderOverride")
_ETR_ACTIONS = (
    "PrependSubject", "SetAuditSeverity", "ApplyClassification", "ApplyHtmlDisclaimerLocation",
    "ApplyHtmlDisclaimerText", "ApplyHtmlDisclaimerFallbackAction", "ApplyRightsProtectionTemplate", "SetSCL",
    "SetHeaderName", "SetHeaderValue", "RemoveHeader", "AddToRecipients", "CopyTo", "BlindCopyTo",
    "AddManagerAsRecipientType", "ModerateMessageByUser", "RedirectMessageTo", "RejectMessageEnhancedStatusCode",
    "RejectMessageReasonText", "SmtpRejectMessageRejectText", "SmtpRejectMessageRejectStatusCode", "LogEventText",
    "SenderNotificationType", "GenerateIncidentReport", "IncidentReportContent", "GenerateNotification",
    "RouteMessageOutboundConnector", "ApplyRightsProtectionCustomizationTemplate")
_ETR_ACTION_SWITCHES = ("DeleteMessage", "Disconnect", "Quarantine", "StopRuleProcessing", "ModerateMessageByManager",
                        "RouteMessageOutboundRequireTls", "ApplyOME", "RemoveOME", "RemoveOMEv2", "RemoveRMSAttachmentEncryption")
_ETR_DESCRIBE = {
    "From": "Is sent by '{}'", "FromMemberOf": "Is sent by a member of group '{}'", "FromScope": "Is received from '{}'",
    "SentTo": "Is sent to '{}'", "SentToMemberOf": "Is sent to a member of group '{}'", "SentToScope": "Is sent to '{}'",
    "SenderDomainIs": "Includes these domains in the sender's address: '{}'",
    "RecipientDomainIs": "Is sent to a recipient whose address includes these domains: '{}'",
    "SubjectContainsWords": "Includes these words in the message subject: '{}'",
    "SubjectOrBodyContainsWords": "Includes these words in the message subject or body: '{}'",
    "RedirectMessageTo": "Redirect the message to '{}'", "BlindCopyTo": "Blind carbon copy (Bcc) the message to '{}'",
    "CopyTo": "Carbon copy (Cc) the message to '{}'", "AddToRecipients": "Add recipients to the To box: '{}'",
    "AddManagerAsRecipientType": "Add the sender's manager as a recipient of type '{}'",
    "SetSCL": "Set the spam confidence level (SCL) to '{}'", "ApplyHtmlDisclaimerText": "Append the disclaimer '{}'",
    "RouteMessageOutboundConnector": "Use the following connector: '{}'",
}


def _etr_describe(r: dict) -> str:
    def text(k: str) -> str:
        v = r[k]
        return _ETR_DESCRIBE[k].format("' or '".join(str(x) for x in v) if isinstance(v, list) else v)

    conds = [text(k) for k in _ETR_PREDICATES if k in _ETR_DESCRIBE and r.get(k) not in (None, [])]
    acts = [text(k) for k in _ETR_ACTIONS if k in _ETR_DESCRIBE and r.get(k) not in (None, [])]
    head = "If the message:\r\n\t" + "\r\n\tand ".join(conds) + "\r\n" if conds else "Apply this rule to all messages\r\n"
    return head + "Take the following actions:\r\n\t" + "\r\n\tand ".join(acts or ["Do nothing"]) + "\r\n"


def transport_rule_row(t: Tenant, r: dict, priority: int) -> dict:
    guid = r["_guid"]
    d: dict[str, Any] = {
        "Identity": r["Name"], "Name": r["Name"], "Guid": guid, "ImmutableId": guid,
        "DistinguishedName": f"CN={r['Name']},CN=TransportVersioned,CN=Rules,CN=Transport Settings,"
                             f"CN={t.name},CN=Microsoft Exchange,CN=Services,CN=Configuration,DC={t.name}",
        "Priority": priority, "State": r.get("State", "Enabled"), "Mode": r.get("Mode", "Enforce"),
        "RuleErrorAction": "Ignore", "SenderAddressLocation": "Header", "RuleVersion": "15.0.5.2",
        "Comments": r.get("Comments", ""), "ManuallyModified": False, "ActivationDate": None, "ExpiryDate": None,
        "DlpPolicy": None, "DlpPolicyId": "00000000-0000-0000-0000-000000000000", "RuleSubType": "None",
        "UseLegacyRegex": False, "IsValid": True, "ObjectState": "Unchanged", "ExchangeVersion": "0.1 (8.0.535.0)",
        "WhenChanged": iso(r["_changed"]), "WhenChangedUTC": iso(r["_changed"]),
        "WhenCreated": iso(r["_changed"]), "WhenCreatedUTC": iso(r["_changed"]),
    }
    conditions, actions = [], []
    for k in (*_ETR_PREDICATES, *("ExceptIf" + p for p in _ETR_PREDICATES)):
        v = r.get(k)
        if isinstance(v, list):
            _multi(d, k, v)
        else:
            d[k] = v
        if v not in (None, []) and not k.startswith("ExceptIf"):
            conditions.append(f"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.{k}Predicate")
    for k in (*_ETR_SWITCHES, *("ExceptIf" + p for p in _ETR_SWITCHES), *_ETR_ACTION_SWITCHES):
        d[k] = bool(r.get(k, False))
    for k in _ETR_ACTIONS:
        v = r.get(k)
        if isinstance(v, list):
            _multi(d, k, v)
        else:
            d[k] = v
        if v not in (None, []):
            actions.append(f"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.{k}Action")
    _multi(d, "Conditions", conditions or None)
    _multi(d, "Exceptions", None)
    _multi(d, "Actions", actions)
    d["Description"] = _etr_describe(r)
    return d


def _get_transport_rules(t: Tenant, params: dict, warnings: list[str]) -> list[dict]:
    rows = [transport_rule_row(t, r, i) for i, r in enumerate(t.transport_rules)]
    if "Identity" in params:
        ident = str(params["Identity"] or "").lower()
        rows = [r for r in rows if ident in (r["Name"].lower(), r["Guid"].lower())]
        if not rows:
            raise not_found(t, str(params["Identity"]))
    if params.get("State"):
        state = str(params["State"]).lower()
        if state not in ("enabled", "disabled"):
            raise _binding_error("State", params["State"], ("Enabled", "Disabled"))
        rows = [r for r in rows if r["State"].lower() == state]
    rs = str(params.get("ResultSize", "1000"))
    limit = None if rs.lower() == "unlimited" else int(rs)
    if limit is not None and len(rows) > limit:
        warnings.append(f"By default, only the first {limit} items are returned. Use the ResultSize parameter to "
                        "specify the number of items returned. To return all items, specify \"-ResultSize "
                        "Unlimited\".")
        rows = rows[:limit]
    return rows


def _bool(v: Any) -> bool:
    return str(v).lower() == "true"


KNOWN_PARAMS = {
    "Get-Mailbox": {"Identity", "ResultSize", "RecipientTypeDetails", "Filter", "PropertySets", "Properties"},
    "Set-Mailbox": {"Identity", "ForwardingSmtpAddress", "ForwardingAddress", "DeliverToMailboxAndForward",
                    "GrantSendOnBehalfTo", "Confirm", "Force"},
    "Get-InboxRule": {"Mailbox", "Identity", "IncludeHidden", "ResultSize", "BypassScopeCheck"},
    "Disable-InboxRule": {"Mailbox", "Identity", "Confirm", "AlwaysDeleteOutlookRulesBlob", "Force"},
    "Enable-InboxRule": {"Mailbox", "Identity", "Confirm", "AlwaysDeleteOutlookRulesBlob", "Force"},
    "Remove-InboxRule": {"Mailbox", "Identity", "Confirm", "AlwaysDeleteOutlookRulesBlob", "Force"},
    "Get-CASMailbox": {"Identity", "ResultSize"},
    "Set-CASMailbox": {"Identity", "ActiveSyncEnabled", "OWAEnabled", "PopEnabled", "ImapEnabled", "MAPIEnabled",
                       "EwsEnabled", "SmtpClientAuthenticationDisabled", "OWAforDevicesEnabled", "UniversalOutlookEnabled",
                       "OutlookMobileEnabled", "Confirm"},
    "Get-BlockedSenderAddress": {"SenderAddress"},
    "Remove-BlockedSenderAddress": {"SenderAddress", "Reason", "Confirm"},
    "Get-MailboxPermission": {"Identity", "User", "ResultSize"},
    "Remove-MailboxPermission": {"Identity", "User", "AccessRights", "InheritanceType", "Deny", "Confirm",
                                 "BypassMasterAccountSid"},
    "Add-MailboxPermission": {"Identity", "User", "AccessRights", "InheritanceType", "AutoMapping", "Deny", "Confirm"},
    "Get-RecipientPermission": {"Identity", "Trustee", "AccessRights", "ResultSize"},
    "Add-RecipientPermission": {"Identity", "Trustee", "AccessRights", "Confirm"},
    "Remove-RecipientPermission": {"Identity", "Trustee", "AccessRights", "Confirm", "Deny"},
    "Get-AcceptedDomain": {"Identity"},
    "Get-TransportRule": {"Identity", "State", "DlpPolicy", "ExcludeConditionActionDetails", "Filter", "ResultSize"},
    # The auto-forwarding controls (simulator/outbound.py); none of them takes ResultSize.
    "Get-RemoteDomain": {"Identity"},
    "Get-HostedOutboundSpamFilterPolicy": {"Identity"},
    "Get-HostedOutboundSpamFilterRule": {"Identity", "State"},
    # Exchange RBAC role groups (simulator/role_groups.py)
    "Get-RoleGroup": {"Identity", "Filter", "ResultSize", "ShowPartnerLinked", "SortBy"},
    "Get-RoleGroupMember": {"Identity", "ResultSize"},
    "Add-RoleGroupMember": {"Identity", "Member", "BypassSecurityGroupManagerCheck", "Confirm"},
    "Remove-RoleGroupMember": {"Identity", "Member", "BypassSecurityGroupManagerCheck", "Confirm"},
    # Exchange RBAC management role assignments (simulator/role_assignments.py)
    "Get-ManagementRoleAssignment": {"Identity", "RoleAssigneeType", "Role", "Enabled", "RoleAssignee",
                                     "AssignmentMethod", "Delegating"},
    "New-ManagementRoleAssignment": {"Name", "Role", "User", "CustomRecipientWriteScope", "Confirm"},
    "Remove-ManagementRoleAssignment": {"Identity", "Confirm"},
}


def cas_row(u: User) -> dict:
    return {"Identity": u.mailNickname, "Name": u.mailNickname, "DisplayName": u.displayName,
            "PrimarySmtpAddress": u.mail, "ExternalDirectoryObjectId": u.id, "Guid": u.id,
            "ServerName": "bn8pr11mb3585", **u.mailbox.cas}


class BulkPager:
    """Bulk Get-* output produced page by page (cursor = next user index), so 100k mailboxes never sit in memory."""

    def __init__(self, t: Tenant, limit: int | None, make, keep) -> None:
        self.t, self.limit, self.make, self.keep = t, limit, make, keep

    def page(self, cursor: str | None, size: int) -> tuple[list[dict], str | None, list[str]]:
        idx, emitted = (int(x) for x in cursor.split(":")) if cursor else (0, 0)
        rows: list[dict] = []
        warnings: list[str] = []
        t = self.t
        while idx < t.user_count and len(rows) < size:
            if self.limit is not None and emitted >= self.limit:
                warnings.append(f"By default, only the first {self.limit} items are returned. Use the ResultSize "
                                "parameter to specify the number of items returned. To return all items, specify "
                                "\"-ResultSize Unlimited\".")
                return rows, None, warnings
            u = t.user_at(idx)
            idx += 1
            if u.mailbox is None:
                continue
            row = self.make(u)
            if self.keep(row):
                rows.append(row)
                emitted += 1
        return rows, (f"{idx}:{emitted}" if idx < t.user_count else None), warnings


def _bulk(t: Tenant, params: dict, make, keep) -> BulkPager:
    rs = str(params.get("ResultSize", "1000"))
    limit = None if rs.lower() == "unlimited" else int(rs)
    return BulkPager(t, limit, make, keep)


def run(t: Tenant, cmdlet: str, params: dict, lag: ReadLag | None = None) -> tuple[list[dict], list[str]]:
    """Execute a cmdlet: returns (rows, warnings) or raises CmdletError. Unknown cmdlets: KeyError.

    ``lag``: read-after-write lag (graph-api.md §3.2); None or an inactive one runs the cmdlet directly."""
    if lag is None or not lag.active:
        return _run(t, cmdlet, params)
    return lag.run(t, cmdlet, params)


def _run(t: Tenant, cmdlet: str, params: dict) -> tuple[list[dict], list[str]]:
    allowed = KNOWN_PARAMS[cmdlet]
    for p in params:
        if p not in allowed:
            raise CmdletError(400, "System.Management.Automation.ParameterBindingException",
                              f"A parameter cannot be found that matches parameter name '{p}'.", "Ex4A1E13")
    warnings: list[str] = []
    if cmdlet == "Get-Mailbox":
        if "Identity" in params:
            return [mailbox_row(t, mailbox_for(t, params["Identity"]))], warnings
        rtd = params.get("RecipientTypeDetails")
        rtd_set = set(rtd if isinstance(rtd, list) else [rtd]) if rtd else None
        return _bulk(t, params, lambda u: mailbox_row(t, u),
                     lambda row: not rtd_set or row["RecipientTypeDetails"] in rtd_set), warnings
    if cmdlet == "Set-Mailbox":
        u = mailbox_for(t, params.get("Identity"))
        mb = u.mailbox
        before = {"ForwardingSmtpAddress": mb.forwarding_smtp, "ForwardingAddress": mb.forwarding_address,
                  "DeliverToMailboxAndForward": mb.deliver_and_forward}
        resolved = None
        if "GrantSendOnBehalfTo" in params:
            v = params["GrantSendOnBehalfTo"] or []
            # Exchange stores recipients, not strings: each value (UPN, address, alias or the display name that
            # Get-Mailbox shows) resolves to the recipient, so a list read back and written again round-trips.
            # Resolved before anything changes: a bad name fails the whole cmdlet.
            current = {_display(t, x): x for x in mb.grant_send_on_behalf}
            resolved = [_send_on_behalf_recipient(t, x, current) for x in (v if isinstance(v, list) else [v])]
        forwarding_to = mb.forwarding_address
        if params.get("ForwardingAddress"):
            # Any value that identifies the recipient, the name Get-Mailbox prints for it included (resolved before
            # anything changes: a bad name fails the whole cmdlet).
            current_fwd = {_display(t, mb.forwarding_address): mb.forwarding_address} if mb.forwarding_address else {}
            forwarding_to = _send_on_behalf_recipient(t, params["ForwardingAddress"], current_fwd, "ForwardingAddress")
        elif "ForwardingAddress" in params:
            forwarding_to = None
        if "ForwardingSmtpAddress" in params:
            v = params["ForwardingSmtpAddress"]
            mb.forwarding_smtp = None if not v else (v if str(v).lower().startswith("smtp:") else f"smtp:{v}")
        mb.forwarding_address = forwarding_to
        if "DeliverToMailboxAndForward" in params:
            mb.deliver_and_forward = _bool(params["DeliverToMailboxAndForward"])
        if resolved is not None:
            mb.grant_send_on_behalf = list(dict.fromkeys(resolved))
        t.log("Set-Mailbox", "Set-Mailbox", u, detail={"before": before, "parameters": params})
        return [], warnings
    if cmdlet == "Get-InboxRule":
        u = mailbox_for(t, params.get("Mailbox") or params.get("Identity", "").split("\\")[0])
        include_hidden = _bool(params.get("IncludeHidden", False))
        rules = t.rules(u)
        if "Identity" in params and params.get("Mailbox"):
            rules = _find_rules(t, u, params["Identity"])
            if not rules:
                raise not_found(t, params["Identity"])
        return [inbox_rule_row(t, u, r) for r in rules if include_hidden or not r.hidden], warnings
    if cmdlet in ("Disable-InboxRule", "Enable-InboxRule", "Remove-InboxRule"):
        ident = params.get("Identity")
        mbx = params.get("Mailbox") or (str(ident).split("\\")[0] if ident and "\\" in str(ident) else None)
        u = mailbox_for(t, mbx)
        hits = _find_rules(t, u, ident)
        if not hits:
            raise not_found(t, str(ident))
        if len(hits) > 1:
            raise CmdletError(400, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException",
                              f"The operation couldn't be performed because '{ident}' matches multiple entries.", "Ex0A2B4E")
        r = hits[0]
        mb = u.mailbox
        if _bool(params.get("AlwaysDeleteOutlookRulesBlob", False)):
            mb.always_delete_outlook_rules_blob = True  # the switch sets the user's OWA option, for good
        if mb.outlook_rules_blob and not mb.always_delete_outlook_rules_blob and not _bool(params.get("Force", False)):
            # Saving would delete the Outlook rules blob, which Exchange confirms first (ShouldContinue; -Force skips
            # it). Over the REST endpoint nobody can answer, so the rules are not saved: the cmdlet succeeds, warns,
            # and changes nothing.
            warnings.append("When the rule is saved, rules created with Outlook that aren't in the server rule table "
                            "are removed from the mailbox. The change was not confirmed and wasn't saved.")
            return [], warnings
        if cmdlet == "Remove-InboxRule":
            t.rules(u).remove(r)
        else:
            r.isEnabled = cmdlet == "Enable-InboxRule"
        mb.outlook_rules_blob = False  # the server rule table replaced it
        t.log(cmdlet, cmdlet, u, detail={"rule": r.displayName, "RuleIdentity": str(r.rule_identity), "hidden": r.hidden})
        return [], warnings
    if cmdlet == "Get-CASMailbox":
        if "Identity" in params:
            return [cas_row(mailbox_for(t, params["Identity"]))], warnings
        return _bulk(t, params, cas_row, lambda row: True), warnings
    if cmdlet == "Set-CASMailbox":
        u = mailbox_for(t, params.get("Identity"))
        before = dict(u.mailbox.cas)
        for k, v in params.items():
            if k in ("Identity", "Confirm"):
                continue
            u.mailbox.cas[k] = None if v is None else _bool(v)
        t.log("Set-CASMailbox", "Set-CASMailbox", u, detail={"before": before, "parameters": params})
        return [], warnings
    if cmdlet == "Get-BlockedSenderAddress":
        want = (params.get("SenderAddress") or "").lower()
        rows = []
        for u in t.changed_users():
            if u.mailbox and u.mailbox.blocked and (not want or want == (u.mail or "").lower()):
                rows.append({"SenderAddress": u.mail, "Reason": u.mailbox.blocked["Reason"],
                             "CreatedDatetime": u.mailbox.blocked["CreatedDatetime"],
                             "ChangedDatetime": u.mailbox.blocked["CreatedDatetime"], "Identity": u.mail})
        return rows, warnings
    if cmdlet == "Remove-BlockedSenderAddress":
        addr = params.get("SenderAddress")
        u = t.find_user(addr or "")
        if u is None or u.mailbox is None:
            raise not_found(t, str(addr))
        was = u.mailbox.blocked
        u.mailbox.blocked = None
        if was:
            t.log("Remove-BlockedSenderAddress", "Remove-BlockedSenderAddress", u, detail={"reason": was["Reason"]})
        return [], warnings
    if cmdlet == "Get-MailboxPermission":
        u = mailbox_for(t, params.get("Identity"))
        want = (params.get("User") or "").lower()
        rows = []
        for p in t.mailbox_permissions(u):
            if want and p["User"].lower() != want:
                continue
            d = {"Identity": u.mailNickname, "User": p["User"], "IsInherited": p["IsInherited"],
                 # Deny is a string in the REST output while IsInherited is a bool (graph-api.md §3.2)
                 "Deny": "True" if p["Deny"] else "False", "InheritanceType": p["InheritanceType"]}
            _multi(d, "AccessRights", p["AccessRights"])
            rows.append(d)
        return rows, warnings
    if cmdlet == "Remove-MailboxPermission":
        return _remove_mailbox_permission(t, params, warnings)
    if cmdlet == "Add-MailboxPermission":
        return _add_mailbox_permission(t, params, warnings)
    if cmdlet == "Add-RecipientPermission":
        return _add_recipient_permission(t, params, warnings)
    if cmdlet == "Get-RecipientPermission":
        # Tenant-wide: planted users and every changed (pinned) background user, so a SendAs added to any mailbox
        # shows up; untouched background mailboxes carry only NT AUTHORITY\SELF (shared ones' generated SendAs
        # entries are listed per mailbox only).
        users = [recipient_for(t, params["Identity"])] if "Identity" in params else \
            [u for u in t.changed_users() if u.mailbox]
        want = (params.get("Trustee") or "").lower()
        rows = []
        for u in users:
            for p in t.recipient_permissions(u):
                if want and p["Trustee"].lower() != want:
                    continue
                d = {"Identity": u.mailNickname, "Trustee": p["Trustee"], "AccessControlType": p["AccessControlType"],
                     "IsInherited": p["IsInherited"], "InheritanceType": p["InheritanceType"]}
                _multi(d, "AccessRights", p["AccessRights"])
                rows.append(d)
        return rows, warnings
    if cmdlet == "Remove-RecipientPermission":
        u = recipient_for(t, _required(params, "Identity"))
        who = str(_required(params, "Trustee")).lower()
        _rights(_required(params, "AccessRights"), "AccessRights", ("SendAs",))
        perms = t.recipient_permissions(u)
        deny = _bool(params.get("Deny", False))
        hit = [p for p in perms if p["Trustee"].lower() == who and not p["IsInherited"]
               and (p["AccessControlType"] == "Deny") == deny]
        if not hit:
            warnings.append(f"The ACE for trustee \"{params.get('Trustee')}\" doesn't exist on the object \"{u.mailNickname}\".")
        for p in hit:
            perms.remove(p)
            t.log("Remove-RecipientPermission", "Remove-RecipientPermission", u, detail={"Trustee": p["Trustee"]})
        return [], warnings
    if cmdlet == "Get-TransportRule":
        return _get_transport_rules(t, params, warnings), warnings
    if cmdlet in ("Get-RemoteDomain", "Get-HostedOutboundSpamFilterPolicy", "Get-HostedOutboundSpamFilterRule"):
        from . import outbound

        return outbound.run(t, cmdlet, params), warnings
    if cmdlet in ("Get-RoleGroup", "Get-RoleGroupMember", "Add-RoleGroupMember", "Remove-RoleGroupMember"):
        from . import role_groups

        return role_groups.run(t, cmdlet, params), warnings
    if cmdlet in ("Get-ManagementRoleAssignment", "New-ManagementRoleAssignment", "Remove-ManagementRoleAssignment"):
        from . import role_assignments

        return role_assignments.run(t, cmdlet, params), warnings
    if cmdlet == "Get-AcceptedDomain":
        rows = [{"Identity": d, "Name": d, "DomainName": d, "DomainType": "Authoritative", "Default": d == t.primary_domain,
                 "InitialDomain": d.endswith(".onmicrosoft.com")} for d in t.domains]
        return rows, warnings
    raise KeyError(cmdlet)


MAILBOX_RIGHTS = ("ChangeOwner", "ChangePermission", "DeleteItem", "ExternalAccount", "FullAccess", "ReadPermission")
INHERITANCE = ("None", "All", "Children", "Descendents", "SelfAndChildren")


def _binding_error(param: str, value: Any, valid: tuple[str, ...]) -> CmdletError:
    return CmdletError(400, "System.Management.Automation.ParameterBindingException",
                       f"Cannot process argument transformation on parameter '{param}'. Cannot convert value "
                       f"\"{value}\" to type \"{param}\". Error: \"The value isn't valid. Valid values are: "
                       f"{', '.join(valid)}.\"", "Ex2A9C61")


def _required(params: dict, name: str) -> Any:
    v = params.get(name)
    if v is None or v == "" or v == []:
        raise CmdletError(400, "System.Management.Automation.ParameterBindingException",
                          f"Cannot validate argument on parameter '{name}'. The argument is null or empty. Provide an "
                          "argument that is not null or empty, and then try the command again.", "Ex0A1B2C")
    return v


def _rights(value: Any, param: str, valid: tuple[str, ...]) -> list[str]:
    """MultiValuedProperty: a list or one string (comma-separated like PowerShell), matched case-insensitively."""
    raw = value if isinstance(value, list) else str(value).split(",")
    out: list[str] = []
    for item in raw:
        name = next((v for v in valid if v.lower() == str(item).strip().lower()), None)
        if name is None:
            raise _binding_error(param, item, valid)
        if name not in out:
            out.append(name)
    return out


def _trustee(t: Tenant, ident: Any) -> User:
    """A security principal of the organisation (SecurityPrincipalIdParameter): UPN, SMTP address, alias or name."""
    u = t.find_user(ident) if isinstance(ident, str) and ident else None
    if u is None and isinstance(ident, str):
        low = ident.lower()
        u = next((x for x in t.explicit if x.displayName.lower() == low or x.mailNickname.lower() == low), None)
    if u is None:
        raise CmdletError(404, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                          f"The operation couldn't be performed because object '{ident}' couldn't be found on "
                          "'BN8PR11A001DC01.NAMPR11A001.PROD.OUTLOOK.COM'.", "Ex6F9304")
    return u


def _mailbox_permission_row(u: User, p: dict) -> dict:
    d = {"Identity": u.mailNickname, "User": p["User"], "IsInherited": p["IsInherited"],
         "Deny": "True" if p["Deny"] else "False", "InheritanceType": p["InheritanceType"]}
    _multi(d, "AccessRights", p["AccessRights"])
    return d


def _recipient_permission_row(u: User, p: dict) -> dict:
    d = {"Identity": u.mailNickname, "Trustee": p["Trustee"], "AccessControlType": p["AccessControlType"],
         "IsInherited": p["IsInherited"], "InheritanceType": p["InheritanceType"]}
    _multi(d, "AccessRights", p["AccessRights"])
    return d


def _add_mailbox_permission(t: Tenant, params: dict, warnings: list[str]) -> tuple[list[dict], list[str]]:
    """Add-MailboxPermission -Identity -User -AccessRights [-InheritanceType All] [-AutoMapping $false] [-Deny]."""
    u = mailbox_for(t, _required(params, "Identity"))
    who = _trustee(t, _required(params, "User"))
    rights = _rights(_required(params, "AccessRights"), "AccessRights", MAILBOX_RIGHTS)
    inh = params.get("InheritanceType", "All")
    inheritance = next((v for v in INHERITANCE if v.lower() == str(inh).lower()), None)
    if inheritance is None:
        raise _binding_error("InheritanceType", inh, INHERITANCE)
    deny = _bool(params.get("Deny", False))
    # AutoMapping (Outlook opens the mailbox automatically) only applies to FullAccess; default $true.
    auto_mapping = _bool(params.get("AutoMapping", True)) if "FullAccess" in rights else None
    perms = t.mailbox_permissions(u)
    # Exchange merges the rights into the trustee's existing explicit ACE of the same kind rather than adding one.
    existing = next((p for p in perms if p["User"].lower() == who.userPrincipalName.lower() and not p["IsInherited"]
                     and bool(p["Deny"]) == deny and p["InheritanceType"] == inheritance), None)
    if existing is not None:
        have = [r.strip() for r in ",".join(existing["AccessRights"]).split(",") if r.strip()]
        missing = [r for r in rights if r not in have]
        if not missing:
            warnings.append(f"The appropriate access control entry is already present on the object "
                            f"\"{u.mailNickname}\" for account \"{who.userPrincipalName}\".")
            return [_mailbox_permission_row(u, existing)], warnings
        existing["AccessRights"] = [", ".join([*have, *missing])]
        entry = existing
    else:
        entry = {"User": who.userPrincipalName, "AccessRights": list(rights), "IsInherited": False, "Deny": deny,
                 "InheritanceType": inheritance}
        perms.append(entry)
    if auto_mapping is not None:
        entry["AutoMapping"] = auto_mapping  # state only: Get-MailboxPermission does not output it
    t.log("Add-MailboxPermission", "Add-MailboxPermission", u,
          detail={"User": who.userPrincipalName, "AccessRights": rights, "InheritanceType": inheritance,
                  "AutoMapping": auto_mapping, "Deny": deny})
    return [_mailbox_permission_row(u, entry)], warnings


def _remove_mailbox_permission(t: Tenant, params: dict, warnings: list[str]) -> tuple[list[dict], list[str]]:
    """Remove-MailboxPermission -Identity -User -AccessRights [-InheritanceType] [-Deny] (AccessRights and User are
    required). An ACE is an access rule: the rights come off only the trustee's explicit ACE of the same kind (Allow,
    or Deny with -Deny) and the same inheritance (-InheritanceType, default All). When there is none, Exchange warns
    that the ACE doesn't exist and changes nothing: the cmdlet still succeeds."""
    u = mailbox_for(t, _required(params, "Identity"))
    who_raw = _required(params, "User")
    who = str(who_raw).lower()
    rights = _rights(_required(params, "AccessRights"), "AccessRights", MAILBOX_RIGHTS)
    inh = params.get("InheritanceType", "All")
    inheritance = next((v for v in INHERITANCE if v.lower() == str(inh).lower()), None)
    if inheritance is None:
        raise _binding_error("InheritanceType", inh, INHERITANCE)
    deny = _bool(params.get("Deny", False))
    perms = t.mailbox_permissions(u)
    candidates = [p for p in perms if p["User"].lower() == who]
    hit = [p for p in candidates if not p["IsInherited"] and bool(p["Deny"]) == deny
           and p["InheritanceType"] == inheritance
           and {r.strip() for r in ",".join(p["AccessRights"]).split(",")} & set(rights)]
    if not hit:
        if any(p["IsInherited"] for p in candidates):
            warnings.append(f"An inherited access control entry has been specified: [Rights: {', '.join(rights)}, "
                            f"ControlType: {'Deny' if deny else 'Allow'}] and was ignored on object "
                            f"\"{u.mailNickname}\".")
        warnings.append(f"Can't remove the access control entry on the object \"{u.mailNickname}\" for account "
                        f"\"{who_raw}\" because the ACE doesn't exist on the object.")
    for p in hit:
        left = [r.strip() for r in ",".join(p["AccessRights"]).split(",") if r.strip() and r.strip() not in rights]
        if left:
            p["AccessRights"] = [", ".join(left)]
        else:
            perms.remove(p)
        t.log("Remove-MailboxPermission", "Remove-MailboxPermission", u,
              detail={"User": p["User"], "AccessRights": rights, "InheritanceType": inheritance, "Deny": deny})
    return [], warnings


def _add_recipient_permission(t: Tenant, params: dict, warnings: list[str]) -> tuple[list[dict], list[str]]:
    """Add-RecipientPermission -Identity -Trustee -AccessRights SendAs (SendAs is the only valid right)."""
    u = recipient_for(t, _required(params, "Identity"))
    who = _trustee(t, _required(params, "Trustee"))
    rights = _rights(_required(params, "AccessRights"), "AccessRights", ("SendAs",))
    perms = t.recipient_permissions(u)
    existing = next((p for p in perms if p["Trustee"].lower() == who.userPrincipalName.lower()
                     and p["AccessControlType"] == "Allow" and not p["IsInherited"]), None)
    if existing is not None:
        warnings.append(f"The appropriate access control entry is already present on the object "
                        f"\"{u.mailNickname}\" for account \"{who.userPrincipalName}\".")
        return [_recipient_permission_row(u, existing)], warnings
    entry = {"Trustee": who.userPrincipalName, "AccessRights": rights, "AccessControlType": "Allow",
             "IsInherited": False, "InheritanceType": "None"}
    perms.append(entry)
    t.log("Add-RecipientPermission", "Add-RecipientPermission", u,
          detail={"Trustee": who.userPrincipalName, "AccessRights": rights})
    return [_recipient_permission_row(u, entry)], warnings


def target_of(params: dict) -> str | None:
    v = params.get("Identity") or params.get("Mailbox") or params.get("SenderAddress")
    if isinstance(v, str):
        return v.split("\\")[0] if "\\" in v and "@" not in v.split("\\")[0] else v
    return None


# ---------------------------------------------------------------------------------------------- read-after-write lag
# graph-api.md §3.2: "Set-*, Add-* and Remove-* return 200 ... immediately, but the following Get-* may show the old
# value for 20 seconds to several minutes." Modelled per mailbox: the first write to a mailbox freezes a copy of its
# Exchange state (mailbox fields, CAS settings, restricted-sender entry, inbox rules, mailbox and recipient
# permissions); Get-* cmdlets that read that mailbox see the frozen copy until the lag has passed. Further writes while
# the lag lasts change the live state but not the copy (the replica the reads come from is still behind), and restart
# the lag. The lag is counted in reads (deterministic for tests) and/or in seconds of the tenant's clock
# (``tenant.advance`` moves a frozen one). The tenant's own state (what tests inspect) is always the live one.
WRITE_CMDLETS = frozenset({"Set-Mailbox", "Disable-InboxRule", "Enable-InboxRule", "Remove-InboxRule",
                           "Set-CASMailbox", "Remove-BlockedSenderAddress", "Add-MailboxPermission",
                           "Remove-MailboxPermission", "Add-RecipientPermission", "Remove-RecipientPermission"})
_STATE_ATTRS = ("mailbox", "_rules", "_mailbox_perms", "_recipient_perms")


@dataclass
class _Stale:
    frozen: dict[str, Any]  # attribute name -> the pre-write copy
    reads_left: int
    until: datetime | None


class ReadLag:
    """Read-after-write lag for the Exchange admin API: ``reads`` stale Get-* reads and/or ``seconds`` of tenant clock
    after the last write to a mailbox. ``pending`` maps user id -> the frozen state (inspectable in tests)."""

    def __init__(self, t: Tenant, reads: int = 0, seconds: float = 0.0) -> None:
        self.t, self.reads, self.seconds = t, max(0, int(reads)), max(0.0, float(seconds))
        self.pending: dict[str, _Stale] = {}
        self.stale_reads = 0  # how many reads were answered from a frozen copy

    @property
    def active(self) -> bool:
        return self.reads > 0 or self.seconds > 0

    # -- which mailbox a cmdlet touches
    def _resolve(self, ident: Any) -> User | None:
        if not isinstance(ident, str) or not ident:
            return None
        try:
            return mailbox_for(self.t, ident)
        except CmdletError:
            return None

    def _write_target(self, cmdlet: str, params: dict) -> User | None:
        if cmdlet == "Remove-BlockedSenderAddress":
            u = self.t.find_user(str(params.get("SenderAddress") or ""))
            return u if u is not None and u.mailbox is not None else None
        if cmdlet.endswith("InboxRule"):
            ident = str(params.get("Identity") or "")
            return self._resolve(params.get("Mailbox") or (ident.split("\\")[0] if "\\" in ident else None))
        return self._resolve(params.get("Identity"))

    def _read_targets(self, cmdlet: str, params: dict) -> list[User] | None:
        """The mailboxes a Get-* reads; None = tenant-wide (every mailbox with a pending write)."""
        if cmdlet == "Get-InboxRule":
            return [u] if (u := self._resolve(params.get("Mailbox") or
                                              str(params.get("Identity", "")).split("\\")[0])) else []
        if "Identity" in params:
            return [u] if (u := self._resolve(params.get("Identity"))) else []
        return None

    # -- state
    def _freeze(self, u: User) -> dict[str, Any]:
        # Materialise the lazily generated parts first, so the copy is the state a read would have shown.
        self.t.rules(u)
        self.t.mailbox_permissions(u)
        self.t.recipient_permissions(u)
        return {a: copy.deepcopy(getattr(u, a)) for a in _STATE_ATTRS}

    def _is_stale(self, u: User) -> bool:
        """Whether this read of ``u`` is answered from the frozen copy (counts the read)."""
        s = self.pending.get(u.id)
        if s is None:
            return False
        if s.reads_left <= 0 and (s.until is None or self.t.now() >= s.until):
            del self.pending[u.id]  # converged
            return False
        s.reads_left = max(0, s.reads_left - 1)
        self.stale_reads += 1
        return True

    @contextmanager
    def _view(self, users: list[User]) -> Iterator[None]:
        swapped: list[tuple[User, dict[str, Any]]] = []
        try:
            for u in users:
                if self._is_stale(u):
                    live = {a: getattr(u, a) for a in _STATE_ATTRS}
                    for a, v in self.pending[u.id].frozen.items():
                        setattr(u, a, copy.deepcopy(v))  # a copy: nothing a read does reaches the frozen state
                    swapped.append((u, live))
            yield
        finally:
            for u, live in swapped:
                for a, v in live.items():
                    setattr(u, a, v)

    def _stale_make(self, make: Callable[[User], dict]) -> Callable[[User], dict]:
        def wrapped(u: User) -> dict:
            if u.id not in self.pending:
                return make(u)
            with self._view([u]):
                return make(u)
        return wrapped

    def run(self, t: Tenant, cmdlet: str, params: dict) -> tuple[list[dict], list[str]]:
        if cmdlet in WRITE_CMDLETS:
            u = self._write_target(cmdlet, params)
            if u is None:
                return _run(t, cmdlet, params)
            fresh = u.id not in self.pending
            if fresh:
                self.pending[u.id] = _Stale(self._freeze(u), 0, None)
            try:
                out = _run(t, cmdlet, params)
            except CmdletError:
                if fresh:
                    del self.pending[u.id]  # nothing was written
                raise
            s = self.pending[u.id]
            s.reads_left = self.reads
            s.until = t.now() + timedelta(seconds=self.seconds) if self.seconds else None
            return out
        if not cmdlet.startswith("Get-") or not self.pending:
            return _run(t, cmdlet, params)
        users = self._read_targets(cmdlet, params)
        if users is None:
            if cmdlet in ("Get-Mailbox", "Get-CASMailbox"):
                rows, warnings = _run(t, cmdlet, params)
                if isinstance(rows, BulkPager):  # pages are built later, row by row: each row reads its mailbox
                    rows.make = self._stale_make(rows.make)
                return rows, warnings
            if cmdlet not in ("Get-RecipientPermission", "Get-BlockedSenderAddress"):
                return _run(t, cmdlet, params)  # reads no mailbox state (Get-AcceptedDomain, Get-RemoteDomain ...)
            users = [u for u in t.changed_users() if u.id in self.pending]
        with self._view(users):
            return _run(t, cmdlet, params)
