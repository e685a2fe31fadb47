"""The outbound auto-forwarding allow-list as a forwarding false-positive suppressor (detections.md §0.2, §A1).

Not a detector (modules starting with ``_`` are skipped by the engine): pure functions over
:class:`scanner.snapshot.OutboundPolicy` that the forwarding detectors share.

- :func:`effective_policy`: the outbound spam filter policy that applies to a sender — the first *enabled* rule by
  ``Priority`` whose conditions all match (``From`` = one of the sender's addresses, ``SenderDomainIs`` = the sender's
  domain, ``FromMemberOf`` = a group) and none of whose ``ExceptIf*`` exceptions match; else the default policy.
  Group membership is not resolved: a rule scoped by ``FromMemberOf`` (or a sender named by display name, DN or GUID
  instead of an address) that could apply makes the answer "cannot tell" with the reason — never a guess of "covered".
- :func:`delivery`: what the policies do to an automatic forward to a domain (Microsoft: when one setting allows and
  another blocks, the block wins): blocked (``Off``, or ``Automatic`` which is now the same as ``Off``: NDR 5.7.520;
  or the matching remote domain has ``AutoForwardEnabled`` false), allowed, or unknown.
- :func:`policy_exception`: a *documented exception* for this sender and destination — a custom (non-default) policy
  with ``AutoForwardingMode`` On, or a specific remote domain entry (not ``*``) that allows auto-forwarding while the
  ``Default`` remote domain blocks it. A blanket default policy On for everyone is not an exception.
- :func:`assess`: the evidence keys every external-forward finding carries and, for an ordinary external destination
  (never free-mail or a look-alike: attacker intent, and policies get relaxed for a few users), the suppression
  reason. An exception first seen since the previous scan (a new policy, a rule newly scoping this sender, a new remote
  domain entry) is not trusted as a suppressor: an attacker with admin rights can add one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from detectors._domains import DomainVerdict
from detectors._model import ScanContext
from scanner.snapshot import AccountSnapshot, OutboundPolicy, OutboundSpamPolicy, OutboundSpamRule, RemoteDomain

Tri = bool | None  # True / False / None = cannot tell
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
NDR = "5.7.520"


@dataclass(frozen=True)
class Sender:
    """What an outbound rule can match a mailbox by: its SMTP addresses, its domain, and the names it may be given."""

    addresses: frozenset[str]
    domain: str | None = None
    names: frozenset[str] = frozenset()  # display name, alias (lower case): a rule naming these is "cannot tell"


def sender_of(account: AccountSnapshot) -> Sender:
    u = account.user
    addrs = {a.strip().lower() for a in (u.user_principal_name, u.mail) if a and "@" in a}
    primary = (u.mail or u.user_principal_name or "").strip().lower()
    domain = primary.rsplit("@", 1)[1] if "@" in primary else None
    names = {n.strip().lower() for n in (u.display_name, primary.split("@", 1)[0] if primary else None) if n}
    return Sender(frozenset(addrs), domain, frozenset(names))


@dataclass(frozen=True)
class Effective:
    """The policy that applies to one sender; ``unknown`` says why it cannot be told (then ``policy`` is None)."""

    policy: OutboundSpamPolicy | None
    rule: OutboundSpamRule | None = None  # None with a policy: the default policy (no rule matched)
    unknown: str | None = None


def _q(values: Iterable[str]) -> str:
    vals = list(values)
    return ", ".join(f"'{v}'" for v in vals[:3]) + (f" (+{len(vals) - 3})" if len(vals) > 3 else "")


def _match_from(values: tuple[str, ...], s: Sender) -> tuple[Tri, str]:
    unsure: list[str] = []
    for v in values:
        low = v.strip().lower()
        if "@" in low:
            if low in s.addresses:
                return True, ""
        elif low in s.names or _GUID.match(low) or low.startswith(("cn=", "/o=")) or ",dc=" in low or "/" in low:
            # Exchange takes a name, alias, DN or GUID too; only an address can be compared exactly.
            unsure.append(v)
    if unsure:
        return None, f"names senders by name, DN or GUID ({_q(unsure)}), not by address"
    return False, ""


def _match_domain(values: tuple[str, ...], s: Sender) -> tuple[Tri, str]:
    if not s.domain:
        return None, "the sender's domain is unknown"
    d = s.domain
    if any(d == v for v in values):
        return True, ""
    under = [v for v in values if d.endswith("." + v)]
    if under:
        return None, f"SenderDomainIs {_q(under)} and the sender is on a subdomain of it"
    return False, ""


def _match_groups(values: tuple[str, ...]) -> tuple[Tri, str]:
    return None, f"is scoped by group membership (FromMemberOf {_q(values)}), which the scanner does not resolve"


def _predicates(rule: OutboundSpamRule, s: Sender, *, exceptions: bool) -> list[tuple[Tri, str]]:
    frm, grp, dom = ((rule.except_if_from, rule.except_if_from_member_of, rule.except_if_sender_domain_is)
                     if exceptions else (rule.from_values, rule.from_member_of, rule.sender_domain_is))
    out = []
    if frm:
        out.append(_match_from(frm, s))
    if grp:
        out.append(_match_groups(grp))
    if dom:
        out.append(_match_domain(dom, s))
    return out


def rule_applies(rule: OutboundSpamRule, s: Sender) -> tuple[Tri, str]:
    """Whether an (enabled) rule selects the sender: its conditions all match (AND; values of one condition OR) and
    none of its exceptions does. (None, why) when that cannot be told."""
    conds = _predicates(rule, s, exceptions=False)
    if any(r is False for r, _ in conds):
        return False, ""
    excs = _predicates(rule, s, exceptions=True)
    if any(r is True for r, _ in excs):
        return False, ""
    why = [w for r, w in conds if r is None] + [f"exception {w}" for r, w in excs if r is None]
    if why:
        return None, f"rule '{rule.name}' " + "; ".join(why)
    return True, ""


def default_policy(op: OutboundPolicy) -> OutboundSpamPolicy | None:
    return next((p for p in op.policies if p.is_default), None) or \
        next((p for p in op.policies if p.name.strip().lower() == "default"), None)


def effective_policy(op: OutboundPolicy, s: Sender) -> Effective:
    by_name = {p.name.strip().lower(): p for p in op.policies}
    for p in op.policies:
        if p.identity:
            by_name.setdefault(p.identity.strip().lower(), p)
    rules = sorted((r for r in op.rules if r.enabled),
                   key=lambda r: (r.priority if r.priority is not None else 1 << 30, r.name.lower()))
    for rule in rules:
        hit, why = rule_applies(rule, s)
        if hit is None:
            return Effective(None, rule, why)
        if hit:
            pol = by_name.get(rule.policy.strip().lower())
            if pol is None:
                return Effective(None, rule, f"rule '{rule.name}' names the policy '{rule.policy}', which was not read")
            return Effective(pol, rule)
    d = default_policy(op)
    if d is None:
        return Effective(None, None, "no default outbound spam filter policy was read")
    return Effective(d)


def _rd_matches(rd: RemoteDomain, domain: str) -> int:
    """How specifically a remote domain entry covers ``domain``: 0 no, 1 the ``*`` Default, 2+ a ``*.parent``
    wildcard (longer = more specific), 1000 exact."""
    d = rd.domain_name.strip().lower().rstrip(".")
    if d == "*":
        return 1
    if d == domain:
        return 1000
    if d.startswith("*."):
        parent = d[2:]
        if domain == parent or domain.endswith("." + parent):
            return 2 + len(parent)
    return 0


def remote_domain_for(op: OutboundPolicy, domain: str) -> RemoteDomain | None:
    """The most specific remote domain entry for ``domain`` (exact, then the longest ``*.parent``, then ``*``)."""
    domain = domain.strip().lower().rstrip(".")
    best = max(op.remote_domains, key=lambda rd: _rd_matches(rd, domain), default=None)
    return best if best is not None and _rd_matches(best, domain) else None


def default_remote_domain(op: OutboundPolicy) -> RemoteDomain | None:
    return next((rd for rd in op.remote_domains if rd.is_default), None)


@dataclass(frozen=True)
class Delivery:
    state: Literal["blocked", "allowed", "unknown"]
    detail: str


def delivery(op: OutboundPolicy, eff: Effective, domain: str) -> Delivery:
    """What happens to an automatic forward from this sender to ``domain`` (the block wins, Microsoft's table)."""
    if eff.policy is None:
        return Delivery("unknown", f"unknown: cannot tell which outbound spam filter policy applies to this sender "
                                   f"({eff.unknown})")
    p, mode = eff.policy, (eff.policy.auto_forwarding_mode or "")
    m = mode.strip().lower()
    if m == "off":
        return Delivery("blocked", f"blocked: outbound policy '{p.name}' AutoForwardingMode Off, forwards NDR with "
                                   f"{NDR} — reported for intent")
    if m == "automatic":
        return Delivery("blocked", f"blocked: outbound policy '{p.name}' AutoForwardingMode Automatic (system-"
                                   f"controlled, now the same as Off), forwards NDR with {NDR} — reported for intent")
    if m != "on":
        return Delivery("unknown", f"unknown: outbound policy '{p.name}' AutoForwardingMode not read")
    rd = remote_domain_for(op, domain)
    if rd is not None and rd.auto_forward_enabled is False:
        return Delivery("blocked", f"blocked: remote domain '{rd.name}' ({rd.domain_name}) AutoForwardEnabled false "
                                   f"drops automatic forwards to {domain} — reported for intent")
    if rd is None or rd.auto_forward_enabled is None:
        return Delivery("allowed", f"allowed by outbound policy '{p.name}' (AutoForwardingMode On); no remote domain "
                                   f"setting for {domain} was read")
    return Delivery("allowed", f"allowed: outbound policy '{p.name}' AutoForwardingMode On and remote domain "
                               f"'{rd.name}' ({rd.domain_name}) AutoForwardEnabled true")


@dataclass(frozen=True)
class PolicyException:
    kind: Literal["policy", "remote_domain"]
    name: str  # the policy's or the remote domain entry's name
    reason: str


def policy_exception(op: OutboundPolicy, eff: Effective, domain: str) -> PolicyException | None:
    p = eff.policy
    if p is not None and not p.is_default and (p.auto_forwarding_mode or "").strip().lower() == "on":
        via = f" (rule '{eff.rule.name}')" if eff.rule is not None else ""
        return PolicyException("policy", p.name,
                               f"outbound policy '{p.name}'{via} allows automatic forwarding for this sender")
    rd = remote_domain_for(op, domain)
    dflt = default_remote_domain(op)
    if rd is not None and not rd.is_default and rd.auto_forward_enabled is True and dflt is not None and \
            dflt.auto_forward_enabled is False:
        return PolicyException("remote_domain", rd.name,
                               f"remote domain '{rd.name}' ({rd.domain_name}) allows automatic forwarding to "
                               f"{domain} while the Default remote domain blocks it")
    return None


def exception_is_new(exc: PolicyException, s: Sender, domain: str, ctx: ScanContext) -> bool:
    """Whether the exception was not there in the previous scan (no baseline — first scan, or the previous scan
    could not read the policies — counts as standing)."""
    prev = ctx.previous_tenant.outbound_policy if ctx.previous_tenant is not None else None
    if ctx.first_scan or prev is None:
        return False
    if exc.kind == "policy":
        # The same policy must already have been an exception for this very sender: a rule newly scoped to it counts
        # as new, not only a new policy.
        before = policy_exception(prev, effective_policy(prev, s), domain)
    else:
        before = policy_exception(OutboundPolicy(remote_domains=prev.remote_domains), Effective(None), domain)
    return before is None or before.kind != exc.kind or before.name.strip().lower() != exc.name.strip().lower()


@dataclass(frozen=True)
class Assessment:
    evidence: dict[str, Any]
    suppress: str | None = None  # the suppression reason, for an ordinary external destination with an exception


def assess(account: AccountSnapshot, ctx: ScanContext, dv: DomainVerdict) -> Assessment:
    """Evidence of what the outbound policy does to a forward to ``dv`` (and whether it is a documented exception).
    Nothing when the policies were not read (the tenant coverage gap says so)."""
    op = ctx.tenant.outbound_policy
    if op is None or not dv.external or dv.domain_class == "partner":
        return Assessment({})
    s = sender_of(account)
    eff = effective_policy(op, s)
    d = delivery(op, eff, dv.domain)
    ev: dict[str, Any] = {"delivery": d.state, "delivery_detail": d.detail}
    if eff.policy is not None:
        ev["outbound_policy"] = eff.policy.name
    exc = policy_exception(op, eff, dv.domain)
    if exc is None:
        return Assessment(ev)
    ev["outbound_exception"] = exc.reason
    if dv.domain_class != "external":
        # Free-mail and look-alike destinations stay reported: a relaxed policy does not make them benign.
        return Assessment(ev)
    if exception_is_new(exc, s, dv.domain, ctx):
        ev["outbound_exception_new"] = True
        return Assessment(ev)
    return Assessment(ev, exc.reason)


def excepted(account: AccountSnapshot, ctx: ScanContext, dv: DomainVerdict) -> bool:
    """Whether a forward to ``dv`` is covered by a trusted documented exception (treated like an allow-listed partner
    by the detectors that weigh a forward together with other signals)."""
    return assess(account, ctx, dv).suppress is not None
