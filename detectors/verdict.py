"""Per-account score and verdict from corroborating findings (detections.md §J).

Additive score: each finding carries its points (``Finding.score``); points are summed per *family* and each family is
capped so one artefact seen by several detectors is not counted twice; a privileged account's total is ×1.5.
Suppressed (allow-listed) findings are shown but count nothing. Transient findings (back-doors that appeared and
vanished) count half.

Verdicts:
- ``compromised`` — a near-certain combination (§J list, with the refinements below), or a score ≥ COMPROMISED that
  rests on at least two families. Auto-remediation may act on it, so no single weak signal reaches it.
- ``suspicious`` — score ≥ SUSPICIOUS, or any unsuppressed High/Critical finding (a human should look).
- ``clean`` — otherwise.

Refinement of §J.5 (privileged + method change): a *replacement* (an old method removed in the same window) or a
tenant-wide roll-out is not forced to ``compromised`` — Microsoft and Sentinel list admin phone replacement and passkey
roll-outs as the false positives; the finding stays Critical and the account ``suspicious``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from detectors._model import Finding, Severity

SUSPICIOUS = 20
COMPROMISED = 80

FAMILY = {
    "mail.mailbox_external_forward": "forward",
    "mail.inbox_rule_external_forward": "forward",
    "mail.forward_destination_shared": "link",
    "mail.inbox_rule_hidden_folder_move": "hide",
    "mail.inbox_rule_deletes_mail": "hide",
    "mail.inbox_rule_marks_read": "hide",
    "mail.inbox_rule_security_keywords": "hide",
    "mail.inbox_rule_suppresses_notifications": "hide",
    "mail.inbox_rule_targets_person": "hide",
    "mail.inbox_rule_match_all": "obfuscation",
    "mail.inbox_rule_hidden": "hide",
    "mail.inbox_rule_financial_keywords": "amplifier",
    "mail.inbox_rule_junk_name": "amplifier",
    "auth.new_method": "auth",
    "auth.shared_phone": "link",
    "auth.temporary_access_pass": "auth",
    "auth.method_removed": "auth",
    "auth.privileged_method_change": "auth",
    "auth.app_password_legacy_auth": "auth",
    "roles.privileged_role_new": "role",
    "roles.privileged_account_backdoor": "role",
    "roles.guest_privileged": "role",
    "oauth.mail_consent_unverified_app": "oauth",
    "oauth.known_bec_tool": "oauth",
    "oauth.tenant_wide_mail_grant": "oauth",
    "delegates.new_mailbox_delegate": "delegate",
    "sending.blocked_from_sending": "sending",
    "sending.volume_spike": "sending",
    "contact.contact_info_changed": "contact",
    "account.disabled_account_backdoor": "account",
    "account.protected_account_change": "account",
}
CAPS = {"forward": 70, "hide": 70, "obfuscation": 40, "amplifier": 25, "auth": 50, "role": 45, "oauth": 60,
        "delegate": 30, "sending": 50, "link": 40, "contact": 35, "account": 40, "other": 30}
# Families that are only context: they never make up the "second family" of a score-based compromised verdict.
WEAK_FAMILIES = frozenset({"amplifier", "contact"})


@dataclass(frozen=True)
class Verdict:
    verdict: str
    score: int
    reasons: tuple[str, ...]
    near_certain: tuple[str, ...] = ()


def family(detector: str) -> str:
    return FAMILY.get(detector, "other")


def _has(findings: list[Finding], *detectors: str, pred=None) -> list[Finding]:  # noqa: ANN001
    return [f for f in findings if f.detector in detectors and (pred is None or pred(f))]


def near_certain(active: list[Finding], privileged: bool) -> list[str]:
    """§J near-certain combinations over the account's active, unsuppressed findings."""
    out: list[str] = []
    ext_bad = _has(active, "mail.mailbox_external_forward", "mail.inbox_rule_external_forward",
                   pred=lambda f: f.evidence.get("domain_class") in ("freemail", "lookalike") and f.score > 5)
    hiding = _has(active, "mail.inbox_rule_hidden_folder_move", "mail.inbox_rule_deletes_mail",
                  "mail.inbox_rule_marks_read", "mail.inbox_rule_security_keywords",
                  "mail.inbox_rule_suppresses_notifications", "mail.inbox_rule_targets_person",
                  "mail.inbox_rule_hidden", pred=lambda f: f.score > 0)
    if ext_bad and hiding:
        out.append("external (free-mail or look-alike) forward plus a hiding rule")
    sec = _has(active, "mail.inbox_rule_security_keywords")
    if sec:
        others = [f for f in active if f.detector != "mail.inbox_rule_security_keywords" and f.score > 0
                  and family(f.detector) not in WEAK_FAMILIES and f.artefact != sec[0].artefact]
        if others:
            out.append("security-keyword hiding rule plus another indicator")
    if _has(active, "mail.inbox_rule_match_all", pred=lambda f: bool(f.evidence.get("obfuscation"))):
        out.append("obfuscated match-all inbox rule")
    sending = _has(active, "sending.blocked_from_sending", "sending.volume_spike")
    ndr = _has(active, "mail.inbox_rule_suppresses_notifications", pred=lambda f: bool(f.evidence.get("ndr")))
    if sending and ndr:
        out.append("blocked/bulk sending plus a rule hiding bounces or auto-replies")
    if _has(active, "auth.privileged_method_change", pred=lambda f: bool(f.evidence.get("near_certain"))):
        out.append("authentication method added to a privileged account")
    if _has(active, "mail.forward_destination_shared",
            pred=lambda f: f.evidence.get("domain_class") in ("freemail", "lookalike")):
        out.append("same free-mail/look-alike forward destination on several mailboxes")
    bec = _has(active, "oauth.known_bec_tool")
    if bec and [f for f in active if f.detector != "oauth.known_bec_tool" and f.score > 0
                and family(f.detector) not in WEAK_FAMILIES]:
        out.append("known BEC tool consent plus another indicator")
    new_method = _has(active, "auth.new_method", pred=lambda f: bool(f.new_since_last_scan) and f.score > 0)
    new_rule = [f for f in active if f.new_since_last_scan and f.score > 0 and (
        family(f.detector) in ("hide", "obfuscation") or f.detector in (
            "mail.inbox_rule_junk_name", "mail.inbox_rule_external_forward"))]
    if new_method and new_rule:
        out.append("new MFA method and a new hiding/junk-named rule first seen in the same scan")
    if _has(active, "account.protected_account_change", pred=lambda f: f.score > 0):
        out.append("change on a break-glass / protected account")
    linked = _has(active, "contact.contact_info_changed", pred=lambda f: bool(f.evidence.get("linked_to")))
    if linked and (ext_bad or new_method):
        out.append("contact details changed to an address/phone the attacker uses elsewhere")
    return out


def decide(findings: Iterable[Finding], *, privileged: bool = False) -> Verdict:
    findings = list(findings)
    counted = [f for f in findings if f.suppressed is None]
    active = [f for f in counted if f.status == "active"]
    by_family: dict[str, float] = defaultdict(float)
    for f in counted:
        by_family[family(f.detector)] += f.score * (0.5 if f.status == "transient" else 1.0)
    total = 0.0
    strong_families = 0
    for fam, pts in by_family.items():
        capped = min(pts, CAPS.get(fam, CAPS["other"]))
        total += capped
        if capped >= 15 and fam not in WEAK_FAMILIES:
            strong_families += 1
    if privileged:
        total *= 1.5
    score = int(round(total))
    combos = near_certain(active, privileged)
    reasons: list[str] = [f"near-certain: {c}" for c in combos]
    for f in sorted(counted, key=lambda f: (-int(f.severity), -f.score, f.detector)):
        if f.score > 0 or f.severity >= Severity.HIGH:
            tag = " (appeared and vanished)" if f.status == "transient" else ""
            reasons.append(f"{f.title}{tag} [{f.severity.label}, +{f.score}]")
    for f in findings:
        if f.suppressed is not None:
            reasons.append(f"suppressed: {f.title} — {f.suppressed}")
    if privileged and counted:
        reasons.append("privileged account: score ×1.5")
    if combos or (score >= COMPROMISED and strong_families >= 2):
        verdict = "compromised"
    elif score >= SUSPICIOUS or any(f.severity >= Severity.HIGH and f.score > 0 for f in active):
        verdict = "suspicious"
    else:
        verdict = "clean"
    return Verdict(verdict, score, tuple(reasons), tuple(combos))
