"""The organisation's external auto-forwarding controls: ``Get-RemoteDomain``, ``Get-HostedOutboundSpamFilterPolicy``
and ``Get-HostedOutboundSpamFilterRule`` (graph-api.md §3.4), in the shapes Microsoft documents for them.

The state is data (``scenarios/tenant/outbound_policy.json``): every tenant has the built-in ``Default`` remote domain
and default outbound policy; a planted exception is added when the accounts it names exist. It lives on the tenant as
``t.outbound`` (built on first use), lists of property dicts in the cmdlets' own names that tests may change between
scans. Rules are printed in list order with ``Priority`` 0, 1, ... like ``Get-TransportRule``.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

from .model import Tenant, iso

DATA = ("tenant", "outbound_policy.json")
COLL = "#Collection(String)"
MODES = ("Automatic", "On", "Off")


def state(t: Tenant) -> dict[str, list[dict[str, Any]]]:
    """The tenant's remote domains, policies and rules (built from the data file on first use)."""
    cur = getattr(t, "outbound", None)
    if cur is None:
        cur = _load(t)
        t.outbound = cur  # type: ignore[attr-defined]
    return cur


def _load(t: Tenant) -> dict[str, list[dict[str, Any]]]:
    from .generate import _subst, _when  # the same placeholders and relative times as every scenario file

    raw = _subst(t, json.loads(resources.files("scanner.simulator").joinpath("scenarios", *DATA).read_text("utf-8")))
    out: dict[str, list[dict[str, Any]]] = {"remote_domains": [], "policies": [], "rules": []}
    blocks = [raw["base"]] + [s for s in raw.get("scenarios", [])
                              if all(t.find_user(a) is not None for a in s.get("accounts", []))]
    for block in blocks:
        for kind in out:
            for e in block.get(kind, []):
                e = dict(e)
                e["_changed"] = _when(t, e.pop("changed", "-300d"))
                e["_guid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/{kind}/{e['Name']}"))
                out[kind].append(e)
    return out


def add(t: Tenant, kind: str, props: dict[str, Any]) -> dict[str, Any]:
    """Add or replace (by Name) a remote domain / policy / rule, changed now (tests: a new exception overnight)."""
    rows = state(t)[kind]
    e = {**props, "_changed": t.now(), "_guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{t.tenant_id}/{kind}/"
                                                                                   f"{props['Name']}"))}
    for i, old in enumerate(rows):
        if old["Name"].lower() == props["Name"].lower():
            rows[i] = e
            return e
    rows.append(e)
    return e


def _multi(d: dict[str, Any], key: str, values: list[Any] | None) -> None:
    d[f"{key}@odata.type"] = COLL
    d[key] = list(values) if values else []


def _common(t: Tenant, e: dict[str, Any], container: str) -> dict[str, Any]:
    return {"Identity": e["Name"], "Name": e["Name"], "Guid": e["_guid"],
            "DistinguishedName": f"CN={e['Name']},CN={container},CN=Transport Settings,CN={t.name},"
                                 f"CN=Microsoft Exchange,CN=Services,CN=Configuration,DC={t.name}",
            "WhenChanged": iso(e["_changed"]), "WhenChangedUTC": iso(e["_changed"]),
            "WhenCreated": iso(e["_changed"]), "WhenCreatedUTC": iso(e["_changed"]),
            "IsValid": True, "ObjectState": "Unchanged", "ExchangeVersion": "0.1 (8.0.535.0)"}


def remote_domain_row(t: Tenant, e: dict[str, Any]) -> dict[str, Any]:
    d = _common(t, e, "Internet Message Formats")
    d.update({"DomainName": e["DomainName"], "AutoForwardEnabled": bool(e.get("AutoForwardEnabled", True)),
              "AutoReplyEnabled": bool(e.get("AutoReplyEnabled", True)), "AllowedOOFType": "External",
              "DeliveryReportEnabled": True, "NDREnabled": True, "NDRDiagnosticInfoEnabled": True,
              "MeetingForwardNotificationEnabled": False, "DisplaySenderName": True, "IsInternal": False,
              "TargetDeliveryDomain": False, "IsCoexistenceDomain": False, "TrustedMailOutboundEnabled": False,
              "TrustedMailInboundEnabled": False, "UseSimpleDisplayName": False, "TNEFEnabled": None,
              "ContentType": "MimeHtmlText", "CharacterSet": None, "NonMimeCharacterSet": None,
              "LineWrapSize": "Unlimited", "ByteEncoderTypeFor7BitCharsets": "Undefined",
              "PreferredInternetCodePageForShiftJis": "Undefined", "RequiredCharsetCoverage": None,
              "MessageCountThreshold": 2147483647, "SmtpDaneMandatoryModeEnabled": False})
    return d


def policy_row(t: Tenant, e: dict[str, Any]) -> dict[str, Any]:
    d = _common(t, e, "Hosted Outbound Spam Filter")
    d.update({"AdminDisplayName": e.get("AdminDisplayName", ""), "AutoForwardingMode": e.get("AutoForwardingMode",
                                                                                            "Automatic"),
              "IsDefault": bool(e.get("IsDefault", False)), "Enabled": True,
              "ActionWhenThresholdReached": "BlockUserForToday", "RecipientLimitExternalPerHour": 0,
              "RecipientLimitInternalPerHour": 0, "RecipientLimitPerDay": 0, "NotifyOutboundSpam": False,
              "BccSuspiciousOutboundMail": False, "RecommendedPolicyType": "Custom",
              "OriginatingServer": "BN8PR11A001DC01.NAMPR11A001.PROD.OUTLOOK.COM"})
    _multi(d, "NotifyOutboundSpamRecipients", None)
    _multi(d, "BccSuspiciousOutboundAdditionalRecipients", None)
    return d


RULE_CONDITIONS = ("From", "FromMemberOf", "SenderDomainIs")


def rule_row(t: Tenant, e: dict[str, Any], priority: int) -> dict[str, Any]:
    d = _common(t, e, "HostedOutboundSpamFilterVersioned")
    d.update({"HostedOutboundSpamFilterPolicy": e["HostedOutboundSpamFilterPolicy"],
              "State": e.get("State", "Enabled"), "Priority": priority, "Comments": e.get("Comments", ""),
              "RuleVersion": "15.0.5.2"})
    conditions, exceptions, parts = [], [], []
    for k in RULE_CONDITIONS:
        for key, bucket in ((k, conditions), ("ExceptIf" + k, exceptions)):
            v = e.get(key)
            _multi(d, key, v)
            if v:
                bucket.append(f"Microsoft.Exchange.MessagingPolicies.Rules.Tasks.{k}Predicate")
                parts.append(("Except if " if key.startswith("ExceptIf") else "If ") + f"{k}: " + ", ".join(v))
    _multi(d, "Conditions", conditions or None)
    _multi(d, "Exceptions", exceptions or None)
    d["Description"] = "\r\n".join(parts)
    return d


def run(t: Tenant, cmdlet: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from .exchange import _binding_error, not_found

    s = state(t)
    if cmdlet == "Get-RemoteDomain":
        rows = [remote_domain_row(t, e) for e in s["remote_domains"]]
    elif cmdlet == "Get-HostedOutboundSpamFilterPolicy":
        rows = [policy_row(t, e) for e in s["policies"]]
    else:
        rows = [rule_row(t, e, i) for i, e in enumerate(s["rules"])]
        if params.get("State"):
            want = str(params["State"]).lower()
            if want not in ("enabled", "disabled"):
                raise _binding_error("State", params["State"], ("Enabled", "Disabled"))
            rows = [r for r in rows if r["State"].lower() == want]
    if params.get("Identity") is not None:
        ident = str(params["Identity"]).lower()
        rows = [r for r in rows if ident in (r["Name"].lower(), r["Guid"].lower())
                or ident == str(r.get("DomainName", "")).lower()]
        if not rows:
            raise not_found(t, str(params["Identity"]))
    return rows
