"""Exchange Online mail-flow (transport) rules, read once per tenant with ``Get-TransportRule`` (graph-api.md §3.4).

Forwarding lives in three places (detections.md §0.1): inbox rules and mailbox forwarding are per account; transport
rules are the organisation's own and can redirect, Bcc or copy *everyone's* mail, or let an attacker's domain skip
spam filtering. Each rule is reduced to :class:`scanner.snapshot.TransportRule`'s fields.

Shapes, as the REST endpoint prints a rule (the ``TransportRule`` presentation object): ``Name``, ``Identity``,
``Guid``, ``State`` ("Enabled" / "Disabled"), ``Mode`` ("Enforce" / "Audit" / "AuditAndNotify"), ``Priority``,
the action properties named like ``New-TransportRule``'s parameters (``RedirectMessageTo``, ``BlindCopyTo``,
``CopyTo``, ``AddToRecipients``, ``AddManagerAsRecipientType``, ``RouteMessageOutboundConnector``, ``SetSCL``,
``SetHeaderName`` / ``SetHeaderValue``, ``DeleteMessage``, ``Quarantine``, ``StopRuleProcessing``), the conditions
(``From``, ``FromScope``, ``SentTo``, ``SentToScope``, ``SenderDomainIs``, ``SubjectContainsWords`` ...) and their
``ExceptIf*`` twins, ``Description`` and ``WhenChanged``. Read liberally: a multi-valued property may be an array, a
single string or null; a recipient may be a bare address, ``"Name" [SMTP:addr]`` or a dict; ``SetSCL`` an integer or a
string; booleans may be strings (graph-api.md §3.2).

Permissions: ``Exchange.ManageAsApp`` plus an Exchange RBAC role that holds ``Get-TransportRule`` — "View-Only
Configuration" (role group View-Only Organization Management; the Entra role Global Reader maps to it) or "Transport
Rules" (Organization Management, Records Management; Exchange Administrator). Exchange Recipient Administrator, the role
the per-mailbox collectors need, does *not* include it. A refusal is a tenant coverage gap naming that role, never an
empty "no rules".
"""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import (
    as_bool,
    as_int,
    as_str,
    exchange_refusal_gap,
    iso,
    parse_recipient,
    recipient_values,
)
from scanner.graph.client import ApiError, ExchangeApi
from scanner.permissions import TRANSPORT_RULES_ROLE
from scanner.snapshot import NotCollected

CMDLET = "Get-TransportRule"
RECIPIENT_ACTIONS = ("RedirectMessageTo", "BlindCopyTo", "CopyTo", "AddToRecipients")

# Condition properties of a transport rule (New-TransportRule's predicate parameters); each also exists as
# ``ExceptIf<name>``. Only the ones that are set are kept.
CONDITIONS = (
    "From", "FromMemberOf", "FromScope", "SentTo", "SentToMemberOf", "SentToScope", "BetweenMemberOf1",
    "BetweenMemberOf2", "ManagerAddresses", "ManagerForEvaluatedUser", "SenderManagementRelationship",
    "ADComparisonAttribute", "ADComparisonOperator", "SenderADAttributeContainsWords",
    "SenderADAttributeMatchesPatterns", "RecipientADAttributeContainsWords", "RecipientADAttributeMatchesPatterns",
    "AnyOfToHeader", "AnyOfToHeaderMemberOf", "AnyOfCcHeader", "AnyOfCcHeaderMemberOf", "AnyOfToCcHeader",
    "AnyOfToCcHeaderMemberOf", "HasClassification", "HasNoClassification", "SubjectContainsWords",
    "SubjectOrBodyContainsWords", "HeaderContainsMessageHeader", "HeaderContainsWords", "FromAddressContainsWords",
    "SenderDomainIs", "RecipientDomainIs", "SubjectMatchesPatterns", "SubjectOrBodyMatchesPatterns",
    "HeaderMatchesMessageHeader", "HeaderMatchesPatterns", "FromAddressMatchesPatterns",
    "AttachmentNameMatchesPatterns", "AttachmentExtensionMatchesWords", "AttachmentPropertyContainsWords",
    "AttachmentContainsWords", "AttachmentMatchesPatterns", "AttachmentIsUnsupported",
    "AttachmentProcessingLimitExceeded", "AttachmentHasExecutableContent", "AttachmentIsPasswordProtected",
    "ContentCharacterSetContainsWords", "SCLOver", "AttachmentSizeOver", "MessageSizeOver", "WithImportance",
    "MessageTypeMatches", "RecipientAddressContainsWords", "RecipientAddressMatchesPatterns", "SenderInRecipientList",
    "RecipientInSenderList", "AnyOfRecipientAddressContainsWords", "AnyOfRecipientAddressMatchesPatterns",
    "HasSenderOverride", "MessageContainsDataClassifications", "SenderIpRanges",
)
# Switch-like conditions print False when unset: only True counts as a condition.
_SWITCHES = frozenset({"AttachmentIsUnsupported", "AttachmentProcessingLimitExceeded", "AttachmentHasExecutableContent",
                       "AttachmentIsPasswordProtected", "HasSenderOverride", "HasNoClassification"})


def transport_rules_gap(err: ApiError) -> NotCollected | None:
    """The coverage gap for a refused Get-TransportRule, naming the Exchange role; None for other failures."""
    return exchange_refusal_gap(CMDLET, err, TRANSPORT_RULES_ROLE)


def _present(value: Any) -> Any:
    """A condition's value as plain JSON, or None when it is unset."""
    if isinstance(value, list | tuple):
        items = [as_str(v) if not isinstance(v, dict) else (parse_recipient(v)[1] or parse_recipient(v)[0])
                 for v in value]
        items = [v for v in items if v]
        return items or None
    if isinstance(value, dict):
        return _present([value])
    if isinstance(value, bool):
        return value or None
    return as_str(value)


def _predicates(r: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in CONDITIONS:
        key = prefix + name
        if key not in r:
            continue
        raw = r[key]
        if name in _SWITCHES:
            if as_bool(raw):
                out[name] = True
            continue
        v = _present(raw)
        if v is not None:
            out[name] = v
    return out


def transport_rule_row(r: dict[str, Any]) -> dict[str, Any] | None:
    """One Get-TransportRule object in TransportRule's field names; None for an object without a name."""
    name = as_str(r.get("Name")) or as_str(r.get("Identity"))
    if name is None:
        return None
    return {
        "name": name,
        "identity": as_str(r.get("Identity")) or as_str(r.get("Guid")) or as_str(r.get("ImmutableId")),
        "guid": as_str(r.get("Guid")) or as_str(r.get("ImmutableId")),
        "state": as_str(r.get("State")),
        "mode": as_str(r.get("Mode")),
        "priority": as_int(r.get("Priority")),
        "redirect_message_to": recipient_values(r.get("RedirectMessageTo")),
        "blind_copy_to": recipient_values(r.get("BlindCopyTo")),
        "copy_to": recipient_values(r.get("CopyTo")),
        "add_to_recipients": recipient_values(r.get("AddToRecipients")),
        "add_manager_as_recipient_type": as_str(r.get("AddManagerAsRecipientType")),
        "route_message_outbound_connector": as_str(r.get("RouteMessageOutboundConnector")),
        "set_scl": as_int(r.get("SetSCL")),
        "set_header_name": as_str(r.get("SetHeaderName")),
        "set_header_value": as_str(r.get("SetHeaderValue")),
        "delete_message": bool(as_bool(r.get("DeleteMessage"))),
        "quarantine": bool(as_bool(r.get("Quarantine"))),
        "stop_rule_processing": bool(as_bool(r.get("StopRuleProcessing"))),
        "conditions": _predicates(r, ""),
        "exceptions": _predicates(r, "ExceptIf"),
        "description": as_str(r.get("Description")),
        "comments": as_str(r.get("Comments")),
        "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC")),
    }


async def read_transport_rules(ex: ExchangeApi) -> list[dict[str, Any]]:
    """Every mail-flow rule of the organisation (paged like the other cmdlets), in priority order."""
    rows: list[dict[str, Any]] = []
    async for page in ex.iter_invoke(CMDLET, {"ResultSize": "Unlimited"}):
        rows.extend(row for row in (transport_rule_row(r) for r in page) if row is not None)
    rows.sort(key=lambda x: (x["priority"] if x["priority"] is not None else 1 << 30, x["name"].lower()))
    return rows
