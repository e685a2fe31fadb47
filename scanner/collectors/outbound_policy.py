"""The organisation's external auto-forwarding controls, read once per tenant (detections.md §0.2, graph-api.md §3.4).

Legitimate external forwards almost always correspond to a documented exception: a custom outbound spam filter policy
with ``AutoForwardingMode`` On scoped to a few senders, or a remote domain that allows auto-forwarding to one partner
while the ``Default`` remote domain blocks it. The forwarding detectors use these as their false-positive suppressor
and say what the policy does to each forward (blocked with NDR 5.7.520, or delivered). Three cmdlets:

- ``Get-RemoteDomain``: ``Name`` / ``Identity``, ``DomainName`` (``*`` for ``Default``, a domain, or ``*.parent``),
  ``AutoForwardEnabled``.
- ``Get-HostedOutboundSpamFilterPolicy``: ``Name`` / ``Identity``, ``AutoForwardingMode`` (``Automatic`` | ``On`` |
  ``Off``), ``IsDefault``, ``Enabled``.
- ``Get-HostedOutboundSpamFilterRule``: ``Name``, ``HostedOutboundSpamFilterPolicy``, ``State`` (Enabled / Disabled),
  ``Priority``, the conditions ``From``, ``FromMemberOf``, ``SenderDomainIs`` and their ``ExceptIf*`` twins.

Read liberally (graph-api.md §3.2): a multi-valued property may be an array, a single string or null; a recipient may
be a bare address, ``"Name" [SMTP:addr]`` or a dict; booleans and integers may be strings; ``AutoForwardingMode`` may
come back as its enum number (0 Automatic, 1 On, 2 Off).

Permissions: ``Exchange.ManageAsApp`` plus an Exchange role that holds the three cmdlets (organisation configuration,
like ``Get-TransportRule``: "View-Only Configuration"). A refusal is a tenant coverage gap naming that role — never
"no policy", which would read as "nothing is allowed" and hide nothing, but would also make every delivery verdict a
guess. Any one of the three failing makes the whole source a gap: a rule without its policy (or policies without the
rules that scope them) cannot say which policy applies to whom.
"""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import (
    as_bool,
    as_int,
    as_list,
    as_str,
    exchange_refusal_gap,
    iso,
    recipient_values,
)
from scanner.graph.client import ApiError, ExchangeApi
from scanner.permissions import OUTBOUND_POLICY_ROLE
from scanner.snapshot import NotCollected

REMOTE_DOMAINS = "Get-RemoteDomain"
POLICIES = "Get-HostedOutboundSpamFilterPolicy"
RULES = "Get-HostedOutboundSpamFilterRule"
CMDLETS = (REMOTE_DOMAINS, POLICIES, RULES)
# AutoForwardingMode is an enum; a serializer that does not stringify enums prints its number.
_MODES = {"0": "Automatic", "1": "On", "2": "Off", "automatic": "Automatic", "on": "On", "off": "Off"}


class OutboundReadError(Exception):
    """One of the three cmdlets failed: which one, and the API error."""

    def __init__(self, cmdlet: str, err: ApiError) -> None:
        super().__init__(f"{cmdlet}: {err.short()}")
        self.cmdlet, self.err = cmdlet, err


def outbound_policy_gap(cmdlet: str, err: ApiError) -> NotCollected:
    """The coverage gap for a failed read: a refusal names the Exchange role; anything else says what failed."""
    return exchange_refusal_gap(
        cmdlet, err, OUTBOUND_POLICY_ROLE, "External forwards are still reported, but no outbound-policy exception "
        "can suppress them and their delivery (blocked / allowed) is unknown") or NotCollected(
        reason=f"{cmdlet} failed: {err.short()}", code=err.code or (str(err.status) if err.status else None))


def _domains(value: Any) -> list[str]:
    out: list[str] = []
    for item in as_list(value):
        for part in str(item).split(","):  # a single comma-separated string, as typed into the cmdlet
            d = part.strip().strip('"').strip().lstrip("@").lower().rstrip(".")
            if d and d not in out:
                out.append(d)
    return out


def mode(value: Any) -> str | None:
    text = as_str(value)
    return _MODES.get(text.lower(), text) if text else None


def remote_domain_row(r: dict[str, Any]) -> dict[str, Any] | None:
    domain = as_str(r.get("DomainName"))
    name = as_str(r.get("Name")) or as_str(r.get("Identity")) or domain
    if name is None:
        return None
    if domain is None:
        # The built-in entry is always DomainName '*'; an entry printed without DomainName is unusable otherwise.
        if name.lower() != "default":
            return None
        domain = "*"
    return {"name": name, "domain_name": domain.lower().rstrip("."),
            "auto_forward_enabled": as_bool(r.get("AutoForwardEnabled")),
            "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC"))}


def policy_row(r: dict[str, Any]) -> dict[str, Any] | None:
    name = as_str(r.get("Name")) or as_str(r.get("Identity"))
    if name is None:
        return None
    is_default = as_bool(r.get("IsDefault"))
    return {"name": name, "identity": as_str(r.get("Identity")) or as_str(r.get("Guid")),
            "auto_forwarding_mode": mode(r.get("AutoForwardingMode")),
            # The built-in policy is named Default; IsDefault may be missing from a trimmed answer.
            "is_default": bool(is_default) if is_default is not None else name.lower() == "default",
            "enabled": as_bool(r.get("Enabled")),
            "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC"))}


def rule_row(r: dict[str, Any]) -> dict[str, Any] | None:
    name = as_str(r.get("Name")) or as_str(r.get("Identity"))
    policy = recipient_values(r.get("HostedOutboundSpamFilterPolicy"))
    if name is None or not policy:
        return None  # a rule that names no policy assigns nothing
    state = as_str(r.get("State"))
    if state is None and r.get("Enabled") is not None:
        state = "Enabled" if as_bool(r.get("Enabled")) else "Disabled"
    return {"name": name, "policy": policy[0], "state": state, "priority": as_int(r.get("Priority")),
            "from_values": recipient_values(r.get("From")), "from_member_of": recipient_values(r.get("FromMemberOf")),
            "sender_domain_is": _domains(r.get("SenderDomainIs")),
            "except_if_from": recipient_values(r.get("ExceptIfFrom")),
            "except_if_from_member_of": recipient_values(r.get("ExceptIfFromMemberOf")),
            "except_if_sender_domain_is": _domains(r.get("ExceptIfSenderDomainIs")),
            "when_changed": iso(r.get("WhenChanged") or r.get("WhenChangedUTC"))}


async def _read(ex: ExchangeApi, cmdlet: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        async for page in ex.iter_invoke(cmdlet, params):
            rows.extend(r for r in page if isinstance(r, dict))
    except ApiError as err:
        raise OutboundReadError(cmdlet, err) from err
    return rows


async def read_outbound_policy(ex: ExchangeApi) -> dict[str, Any]:
    """Remote domains, outbound spam filter policies and their rules (rules in priority order), as OutboundPolicy's
    fields. Raises :class:`OutboundReadError` naming the cmdlet that failed."""
    # None of the three takes ResultSize; the answer is small and paged like any other.
    domains = [x for x in (remote_domain_row(r) for r in await _read(ex, REMOTE_DOMAINS, {})) if x]
    policies = [x for x in (policy_row(r) for r in await _read(ex, POLICIES, {})) if x]
    rules = [x for x in (rule_row(r) for r in await _read(ex, RULES, {})) if x]
    rules.sort(key=lambda x: (x["priority"] if x["priority"] is not None else 1 << 30, x["name"].lower()))
    return {"remote_domains": domains, "policies": policies, "rules": rules}
