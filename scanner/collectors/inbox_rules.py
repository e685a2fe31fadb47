"""Inbox rules: Graph ``messageRules`` (raw JSON, via ``$batch``) merged with Exchange ``Get-InboxRule -IncludeHidden``.

Why both: rules hidden by MAPI manipulation are invisible to Outlook, OWA and Graph; only ``Get-InboxRule
-IncludeHidden`` shows them (graph-api.md §2.5). Rules Graph cannot model come back read-only with no conditions or
actions (§2.3); Exchange shows their content. Every Exchange rule is translated into Graph's
``messageRulePredicates`` / ``messageRuleActions`` vocabulary so detectors read one shape; what Graph has no word for
is kept under ``exchangeOnly``.

Matching: there is no documented mapping between Graph rule ids and Exchange ``RuleIdentity`` (§2.3), so rules are
paired by name and then by content. An Exchange rule with no Graph partner is *hidden*. Exchange's own system rules
("Junk E-mail Rule", "Microsoft.Exchange.OOF.*", the delegate meeting-forward rule) are left out — but only while they
do what such rules do: a rule that borrows a system name and forwards mail outside the mailbox directory is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from scanner.collectors._util import as_bool, as_list, as_str, legacy_dn, parse_recipient
from scanner.snapshot import InboxRule

# Get-InboxRule property -> Graph messageRulePredicates key (string lists).
_WORDS = {
    "SubjectContainsWords": "subjectContains",
    "BodyContainsWords": "bodyContains",
    "SubjectOrBodyContainsWords": "bodyOrSubjectContains",
    "FromAddressContainsWords": "senderContains",
    "RecipientAddressContainsWords": "recipientContains",
    "HeaderContainsWords": "headerContains",
}
_BOOL_PREDICATES = {
    "HasAttachment": "hasAttachments",
    "MyNameInToOrCcBox": "sentToOrCcMe",
    "MyNameInToBox": "sentToMe",
    "MyNameInCcBox": "sentCcMe",
    "SentOnlyToMe": "sentOnlyToMe",
    "MyNameNotInToBox": "notSentToMe",
}
_MESSAGE_TYPES = {
    "automaticreply": "isAutomaticReply", "automaticforward": "isAutomaticForward", "encrypted": "isEncrypted",
    "calendaring": "isMeetingRequest", "calendaringresponse": "isMeetingResponse",
    "permissioncontrolled": "isPermissionControlled", "voicemail": "isVoicemail", "signed": "isSigned",
    "approvalrequest": "isApprovalRequest", "readreceipt": "isReadReceipt", "nondeliveryreport": "isNonDeliveryReport",
}
_RECIPIENT_ACTIONS = {"ForwardTo": "forwardTo", "ForwardAsAttachmentTo": "forwardAsAttachmentTo",
                      "RedirectTo": "redirectTo"}
# Exchange-only conditions / actions Graph cannot represent (kept under "exchangeOnly").
_EXCHANGE_ONLY_CONDITIONS = ("ReceivedAfterDate", "ReceivedBeforeDate", "HasClassification", "FromSubscription")
_EXCHANGE_ONLY_ACTIONS = ("SendTextMessageNotificationTo", "PinMessage", "ApplySystemCategory",
                          "DeleteSystemCategory")

SYSTEM_RULE_NAMES = ("junk e-mail rule", "junk email rule")
SYSTEM_RULE_PREFIXES = ("microsoft.exchange.oof.",)
DELEGATE_RULE_NAMES = ("delegate rule", "schedule+ ems interface")

FolderResolver = Callable[[str], str]  # Exchange folder path -> folder id (real or synthetic)


def _recipients(value: Any, resolve: Callable[[str], str | None]) -> list[dict[str, Any]]:
    out = []
    for item in as_list(value):
        name, address = parse_recipient(item)
        if address is None and (name or isinstance(item, str)):
            # The whole string: a '"Name" [EX:/o=…]' recipient is found by its legacyExchangeDN first.
            address = resolve(item if isinstance(item, str) else name)
        shown = name or legacy_dn(item)
        out.append({"emailAddress": {"name": shown or address or "", "address": address or shown or ""}})
    return out


def _predicates(r: dict[str, Any], prefix: str, resolve: Callable[[str], str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ex_key, g_key in _WORDS.items():
        words = [str(w) for w in as_list(r.get(prefix + ex_key))]
        if words:
            out[g_key] = words
    for ex_key, g_key in _BOOL_PREDICATES.items():
        if as_bool(r.get(prefix + ex_key)):
            out[g_key] = True
    for ex_key, g_key in (("From", "fromAddresses"), ("SentTo", "sentToAddresses")):
        recips = _recipients(r.get(prefix + ex_key), resolve)
        if recips:
            out[g_key] = recips
    for mt in as_list(r.get(prefix + "MessageTypeMatches")):
        key = _MESSAGE_TYPES.get(str(mt).replace(" ", "").lower())
        if key:
            out[key] = True
    for ex_key, g_key in (("WithImportance", "importance"), ("WithSensitivity", "sensitivity")):
        v = as_str(r.get(prefix + ex_key))
        if v:
            out[g_key] = v[0].lower() + v[1:]
    flag = as_str(r.get(prefix + "FlaggedForAction"))
    if flag:
        out["messageActionFlag"] = flag[0].lower() + flag[1:].replace(" ", "")
    categories = [str(c) for c in as_list(r.get(prefix + "HasCategory") or r.get(prefix + "Categories"))]
    if categories:
        out["categories"] = categories
    lo, hi = r.get(prefix + "WithinSizeRangeMinimum"), r.get(prefix + "WithinSizeRangeMaximum")
    if lo is not None or hi is not None:
        out["withinSizeRange"] = {"minimumSize": lo, "maximumSize": hi}
    extra = {k: r[prefix + k] for k in _EXCHANGE_ONLY_CONDITIONS if r.get(prefix + k) not in (None, "", [])}
    if extra:
        out["exchangeOnly"] = extra
    return out


def hidden_rules_cmdlet(mailbox: str) -> tuple[str, dict[str, Any]]:
    """The per-mailbox read of every inbox rule, hidden ones too (for ``ExchangeApi.invoke_many``)."""
    return "Get-InboxRule", {"Mailbox": mailbox, "IncludeHidden": True}


def unresolved_destinations(rows: list[dict[str, Any]], resolve: Callable[[str], str | None]) -> list[str]:
    """legacyExchangeDNs of forward / redirect destinations that ``resolve`` cannot turn into an address: a recipient of
    the organisation that is no mailbox (a mail contact or mail user — how a rule forwards outside through the GAL),
    which Get-InboxRule prints as ``"Name" [EX:/o=…]`` and only Get-Recipient can resolve."""
    out: list[str] = []
    for r in rows:
        if not isinstance(r, dict):
            continue
        for ex_key in _RECIPIENT_ACTIONS:
            for item in as_list(r.get(ex_key)):
                if not isinstance(item, str) or parse_recipient(item)[1] is not None:
                    continue
                dn = legacy_dn(item)
                if dn and resolve(item) is None and dn not in out:
                    out.append(dn)
    return out


def translate_exchange_rule(r: dict[str, Any], *, resolve_recipient: Callable[[str], str | None],
                            resolve_folder: FolderResolver) -> dict[str, Any]:
    """One Get-InboxRule row as a Graph-shaped messageRule dict (conditions / exceptions / actions)."""
    actions: dict[str, Any] = {}
    for ex_key, g_key in _RECIPIENT_ACTIONS.items():
        recips = _recipients(r.get(ex_key), resolve_recipient)
        if recips:
            actions[g_key] = recips
    if as_bool(r.get("DeleteMessage")):
        actions["delete"] = True  # DeleteMessage moves to Deleted Items, like Graph's "delete"
    if as_bool(r.get("SoftDeleteMessage")) or as_bool(r.get("PermanentDelete")):
        actions["permanentDelete"] = True
    for ex_key, g_key in (("MoveToFolder", "moveToFolder"), ("CopyToFolder", "copyToFolder")):
        folder = as_str(r.get(ex_key))
        if folder:
            actions[g_key] = resolve_folder(folder)
    for ex_key, g_key in (("MarkAsRead", "markAsRead"), ("StopProcessingRules", "stopProcessingRules")):
        if as_bool(r.get(ex_key)):
            actions[g_key] = True
    importance = as_str(r.get("MarkImportance"))
    if importance:
        actions["markImportance"] = importance.lower()
    cats = [str(c) for c in as_list(r.get("ApplyCategory"))]
    if cats:
        actions["assignCategories"] = cats
    extra = {k: r[k] for k in _EXCHANGE_ONLY_ACTIONS if r.get(k) not in (None, "", [], False)}
    if extra:
        actions["exchangeOnly"] = extra
    priority = r.get("Priority")
    return {
        "displayName": as_str(r.get("Name")) or "",
        "sequence": int(priority) if isinstance(priority, int | str) and str(priority).isdigit() else None,
        "isEnabled": as_bool(r.get("Enabled")) is not False,
        "hasError": bool(as_bool(r.get("InError"))),
        "conditions": _predicates(r, "", resolve_recipient),
        "exceptions": _predicates(r, "ExceptIf", resolve_recipient),
        "actions": actions,
        "ruleIdentity": as_str(r.get("RuleIdentity")) or as_str(r.get("Identity")),
        "identity": as_str(r.get("Identity")),
    }


def _targets(actions: dict[str, Any]) -> set[str]:
    out = set()
    for key in ("forwardTo", "forwardAsAttachmentTo", "redirectTo"):
        for rec in actions.get(key) or []:
            addr = ((rec or {}).get("emailAddress") or {}).get("address")
            if addr:
                out.add(str(addr).lower())
    return out


def _signature(rule: dict[str, Any]) -> tuple[Any, ...]:
    actions = rule.get("actions") or {}
    return (frozenset(_targets(actions)), bool(actions.get("delete")), bool(actions.get("permanentDelete")),
            bool(actions.get("moveToFolder")), bool(actions.get("markAsRead")))


def is_system_rule(rule: dict[str, Any], is_internal: Callable[[str], bool]) -> bool:
    """Exchange's own rules, recognised by name *and* harmless content (an attacker may borrow the name)."""
    name = (rule.get("displayName") or "").strip().lower()
    actions = rule.get("actions") or {}
    targets = _targets(actions)
    if name in SYSTEM_RULE_NAMES or name.startswith(SYSTEM_RULE_PREFIXES):
        return not targets and not actions.get("permanentDelete") and not actions.get("delete")
    if name in DELEGATE_RULE_NAMES:
        # Forwards meeting requests to the mailbox's delegates: internal recipients only.
        return all(is_internal(t) for t in targets) and not actions.get("delete") and \
            not actions.get("permanentDelete")
    return False


def graph_rule(raw: dict[str, Any]) -> InboxRule:
    seq = raw.get("sequence")
    return InboxRule(
        id=str(raw.get("id")),
        display_name=raw.get("displayName") or "",
        sequence=seq if isinstance(seq, int) else None,
        is_enabled=raw.get("isEnabled") is not False,
        is_read_only=bool(raw.get("isReadOnly")),
        has_error=bool(raw.get("hasError")),
        hidden=False,
        source="graph",
        conditions=raw.get("conditions") or {},
        exceptions=raw.get("exceptions") or {},
        actions=raw.get("actions") or {},
    )


def merge_rules(graph_raw: list[dict[str, Any]], exchange_rules: list[dict[str, Any]] | None,
                is_internal: Callable[[str], bool]) -> tuple[InboxRule, ...]:
    """Graph rules enriched by their Exchange twins, plus Exchange-only (hidden) rules.

    ``exchange_rules`` are already translated (:func:`translate_exchange_rule`); None when Exchange was not read.
    """
    rules = [graph_rule(r) for r in graph_raw]
    if exchange_rules is None:
        return tuple(rules)
    unmatched = list(range(len(rules)))
    out: list[InboxRule | None] = list(rules)
    hidden: list[InboxRule] = []
    for ex in exchange_rules:
        name = (ex.get("displayName") or "").strip().lower()
        candidates = [i for i in unmatched if rules[i].display_name.strip().lower() == name]
        if not candidates:
            if is_system_rule(ex, is_internal):
                continue
            ident = ex.get("ruleIdentity") or ex.get("identity") or ex.get("displayName") or "?"
            hidden.append(InboxRule(
                id=f"exo:{ident}", display_name=ex.get("displayName") or "", sequence=ex.get("sequence"),
                is_enabled=ex.get("isEnabled", True), has_error=ex.get("hasError", False), hidden=True,
                source="exchange", exchange_identity=ex.get("identity") or ex.get("ruleIdentity"),
                conditions=ex.get("conditions") or {}, exceptions=ex.get("exceptions") or {},
                actions=ex.get("actions") or {},
            ))
            continue
        sig = _signature(ex)
        best = next((i for i in candidates if _signature(_as_raw(rules[i])) == sig), candidates[0])
        unmatched.remove(best)
        g = rules[best]
        update: dict[str, Any] = {"exchange_identity": ex.get("identity") or ex.get("ruleIdentity")}
        if g.is_read_only and not g.actions and not g.conditions:
            # Graph could not model this rule (graph-api.md §2.3): take Exchange's view of what it does.
            update.update(conditions=ex.get("conditions") or {}, exceptions=ex.get("exceptions") or {},
                          actions=ex.get("actions") or {})
        out[best] = g.model_copy(update=update)
    return tuple(r for r in out if r is not None) + tuple(hidden)


def _as_raw(rule: InboxRule) -> dict[str, Any]:
    return {"displayName": rule.display_name, "actions": dict(rule.actions)}


_EX_FOLDER = re.compile(r"^[^:\\]*:\\")


def exchange_folder_path(value: str) -> str:
    """``"alias:\\RSS Subscriptions"`` -> ``"RSS Subscriptions"`` (Get-InboxRule prints mailbox-qualified paths)."""
    return _EX_FOLDER.sub("", value.strip()).strip("\\")
