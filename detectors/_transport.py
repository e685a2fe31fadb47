"""Helpers shared by the mail-flow (transport) rule detectors (not a detector: modules starting with ``_`` are skipped).

A transport rule belongs to the organisation, not to an account, so its findings name a pseudo-account
``transportrule:<rule name>`` (no verdict row, never auto-remediated), the same convention as ``serviceprincipal:``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime

from detectors._model import ScanContext, Severity
from detectors._rules import FINANCIAL_WORDS
from scanner.snapshot import NotCollected, NotCollectedError, TenantInfo, TransportRule

TR_PREFIX = "transportrule:"
# Test modes ("Test with / without Policy Tips" in the admin center): the rule is evaluated and logged, its actions are
# not applied (https://learn.microsoft.com/exchange/security-and-compliance/mail-flow-rules/test-mail-flow-rules).
AUDIT_MODES = frozenset({"audit", "auditandnotify"})
# Conditions that choose mail by what it says: the finance keywords of an inbox rule apply to a mail-flow rule too.
TEXT_CONDITIONS = ("SubjectContainsWords", "SubjectOrBodyContainsWords", "SubjectMatchesPatterns",
                   "SubjectOrBodyMatchesPatterns", "AttachmentNameMatchesPatterns", "AttachmentContainsWords",
                   "HeaderContainsWords")


def tr_label(rule: TransportRule) -> str:
    """``transportrule:<rule name>``: never a scanned account's UPN, so it has no verdict row (the report lists it
    under 'Mail-flow (transport) rule')."""
    return f"{TR_PREFIX}{rule.name}"


def require_rules(tenant: TenantInfo) -> tuple[TransportRule, ...]:
    if tenant.transport_rules is None:
        raise NotCollectedError("transport_rules", NotCollected(
            reason="mail-flow (transport) rules were not read in this scan (Get-TransportRule)"))
    return tenant.transport_rules


def fingerprint(rule: TransportRule, kind: str) -> str:
    """A stable key for the rule as it is configured: a changed destination, condition, state or mode is a new
    artefact (so 'new since the last scan'), like the inbox-rule fingerprints."""
    body = {"kind": kind, "name": rule.name.lower(), "state": (rule.state or "").lower(),
            "mode": (rule.mode or "").lower(),
            "actions": [sorted(x.lower() for x in v) for v in (rule.redirect_message_to, rule.blind_copy_to,
                                                              rule.copy_to, rule.add_to_recipients)],
            "scl": rule.set_scl, "header": [(rule.set_header_name or "").lower(), (rule.set_header_value or "").lower()],
            "conditions": dict(rule.conditions), "exceptions": dict(rule.exceptions)}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{TR_PREFIX}{kind}:{(rule.guid or rule.name).lower()}:{digest}"


def baseline(ctx: ScanContext, key: Callable[[TransportRule], str]) -> tuple[set[str] | None, bool]:
    """(artefact keys of the previous scan's rules, no_baseline). ``None`` keys: nothing to compare against (first
    scan, or the previous scan could not read the rules: then every finding is standing, never 'new')."""
    prev = ctx.previous_tenant
    if ctx.first_scan:
        return None, False
    if prev is None or prev.transport_rules is None:
        return None, True
    return {key(r) for r in prev.transport_rules}, False


def lowered(sev: Severity, levels: int, floor: Severity = Severity.LOW) -> Severity:
    return Severity(max(int(floor), int(sev) - levels))


def state_words(rule: TransportRule) -> tuple[str, int]:
    """(how the rule is running, severity levels to subtract): disabled -2, a test (audit) mode -1."""
    if not rule.enabled:
        return "disabled: nothing happens while it stays off, but anyone with the right role can turn it on", 2
    if (rule.mode or "").strip().lower() in AUDIT_MODES:
        return f"enabled in test mode ({rule.mode}): matches are logged, the actions are not applied", 1
    return "enabled and enforced", 0


def keywords(rule: TransportRule) -> list[str]:
    """Finance words the rule's text conditions select mail by (invoice, payment, wire ...)."""
    text = " ".join(str(x) for k in TEXT_CONDITIONS for x in _as_list(rule.conditions.get(k))).lower()
    return sorted({m.group(0) for m in FINANCIAL_WORDS.finditer(text)})


def scope_words(rule: TransportRule) -> str:
    """The rule's conditions in a few words ('every message' when it has none)."""
    if not rule.conditions:
        return "every message"
    parts = []
    for k, v in rule.conditions.items():
        vals = _as_list(v)
        shown = ", ".join(f"'{x}'" for x in vals[:4]) + (f" (+{len(vals) - 4})" if len(vals) > 4 else "")
        parts.append(f"{k} {shown}")
    return "messages matching " + "; ".join(parts)


def iso(d: datetime | None) -> str | None:
    return d.isoformat().replace("+00:00", "Z") if d else None


def disable_command(rule: TransportRule) -> str:
    ident = (rule.guid or rule.identity or rule.name).replace("'", "''")
    return f"Disable-TransportRule -Identity '{ident}' -Confirm:$false"


def _as_list(v: object) -> list[object]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]
