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

Refinements of the rest of the §J list (each keeps a documented benign pattern out of ``compromised``):
- "another indicator" (§J.2 security-keyword hide, §J.7 known BEC tool) means an unsuppressed finding worth
  ≥ INDICATOR_POINTS in a non-context family — a new hire's first method (5), a FIDO2 roll-out (3) or a disabled stale
  rule does not corroborate. For §J.7 a *second, different* known BEC tool corroborates only when one of the two is a
  mailbox-export tool (PerfectData, rclone) the user consented with a mail scope and ``offline_access`` (§E1 calls those
  takeover tooling); SigParser + CloudSponge or Supermailer are everyday sales/marketing tools.
- §J.8 / §K.2 (same window): a *genuine* new method — not a first registration, not a roll-out, not a same-type
  replacement of a method removed in the window — first seen in the same scan as a new hiding / junk-named rule or a
  new free-mail / look-alike forward (mailbox or rule). This is the state-side "risky sign-in followed by MFA change".
  On a first scan nothing is "new": a standing forward's age is unknown (an executive's years-old self-forward next to
  a traveller's new SIM is two documented false positives), so the forward + fresh method pair is scored, not forced:
  a look-alike forward, no copy kept, a hiding rule or a linked address (§H1) on top of it reaches ``compromised``
  through the score.
- Linking (§H1, §J "+30"): ``contact.linked_artefact`` adds 30 in the ``link`` family, which is context — it raises the
  score but never is the second family. A contact change is near-certain only when it links to *another* account's
  back-door (the same sink across accounts) and the account also has a bad forward or a genuine new method.
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
    "mail.forward_destination_shared": "campaign",
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
    "auth.shared_phone": "campaign",
    "auth.temporary_access_pass": "auth",
    "auth.method_removed": "auth",
    "auth.privileged_method_change": "auth",
    "auth.app_password_legacy_auth": "auth",
    "roles.privileged_role_new": "role",
    "roles.exchange_role_group_new": "role",
    "roles.privileged_account_backdoor": "role",
    "roles.guest_privileged": "role",
    "oauth.mail_consent_unverified_app": "oauth",
    "oauth.known_bec_tool": "oauth",
    "delegates.new_mailbox_delegate": "delegate",
    "sending.blocked_from_sending": "sending",
    "sending.volume_spike": "sending",
    "contact.contact_info_changed": "contact",
    "contact.linked_artefact": "link",
    "account.disabled_account_backdoor": "account",
    "account.protected_account_change": "account",
}
CAPS = {"forward": 70, "hide": 70, "obfuscation": 40, "amplifier": 25, "auth": 50, "role": 45, "oauth": 60,
        "delegate": 30, "sending": 50, "campaign": 40, "link": 40, "contact": 35, "account": 40, "other": 30}
# Families that are only context: they never make up the "second family" of a score-based compromised verdict.
# "link" (the same address/phone in two places on one account) connects artefacts other families already score, so
# it raises the score but is not independent evidence on its own.
WEAK_FAMILIES = frozenset({"amplifier", "contact", "link"})
# Points a finding needs to be "another indicator" in a near-certain combination: excludes first registrations (5),
# roll-outs (3), disabled/stale rules (≤5), verified-publisher consents (5) and other context-only findings.
INDICATOR_POINTS = 10
# Known BEC tools whose purpose is bulk mailbox export (detections.md §E1: PerfectData "is used to take a backup of the
# entire mailbox ... and export it to PST"; rclone copies mailboxes/files out). Consented by a *user* with mail scopes
# they have no everyday use.
EXPORT_TOOLS = frozenset({"perfectdata", "perfectdatasoftware", "rclone"})
_CANONICAL_TOOL = {"perfectdatasoftware": "perfectdata", "newslettersoftwaresupermailer": "supermailer"}


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
    sec = _has(active, "mail.inbox_rule_security_keywords", pred=lambda f: f.score >= INDICATOR_POINTS)
    if sec:
        sec_rules = {f.artefact for f in sec}
        others = [f for f in active if f.detector != "mail.inbox_rule_security_keywords"
                  and f.score >= INDICATOR_POINTS and family(f.detector) not in WEAK_FAMILIES
                  and f.artefact not in sec_rules]
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
    bec = _has(active, "oauth.known_bec_tool", pred=lambda f: f.score > 0)
    if bec:
        other = [f for f in active if f.detector != "oauth.known_bec_tool" and f.score >= INDICATOR_POINTS
                 and family(f.detector) not in WEAK_FAMILIES]
        if other:
            out.append("known BEC tool consent plus another indicator")
        elif _two_bec_tools_with_export(bec):
            out.append("two different known BEC tools consented, one of them a mailbox-export tool")
    genuine = genuine_new_methods(active)
    fresh = [f for f in genuine if f.new_since_last_scan]
    new_rule = [f for f in active if f.new_since_last_scan and f.score > 0 and (
        family(f.detector) in ("hide", "obfuscation") or f.detector == "mail.inbox_rule_junk_name")]
    new_fwd = [f for f in ext_bad if f.new_since_last_scan]
    if fresh and new_rule:
        out.append("new MFA method and a new hiding/junk-named rule first seen in the same scan")
    if fresh and new_fwd:
        out.append("new MFA method and a new free-mail/look-alike forward first seen in the same scan")
    if _has(active, "account.protected_account_change", pred=lambda f: f.score > 0):
        out.append("change on a break-glass / protected account")
    linked = _has(active, "contact.contact_info_changed", pred=lambda f: bool(f.evidence.get("linked_to")))
    if linked and (ext_bad or genuine):
        out.append("contact details changed to an address/phone another account's back-door uses")
    return out


def genuine_new_methods(active: list[Finding]) -> list[Finding]:
    """New-method findings that are an *addition*: not a first registration or roll-out (scored below 15) and not a
    same-type replacement of a method removed in the same window (device swap, detections.md §C3 FP)."""
    replaced = {f.evidence.get("method_type") for f in active
                if f.detector == "auth.method_removed" and f.evidence.get("replaced")}
    return [f for f in active if f.detector == "auth.new_method" and f.score >= 15
            and f.evidence.get("method_type") not in replaced]


def _two_bec_tools_with_export(bec: list[Finding]) -> bool:
    """Two *different* known BEC tools on one account, at least one a mailbox-export tool consented by the user with a
    mail scope and offline_access (detections.md §E1 describes such consents as takeover tooling). Two contact-mining
    or newsletter tools (SigParser + CloudSponge, Supermailer) are everyday sales/marketing software and do not
    corroborate each other; a sanctioned eM Client is allow-listed (suppressed) and never reaches here."""
    tools = {_CANONICAL_TOOL.get(str(f.evidence.get("tool")), str(f.evidence.get("tool"))) for f in bec}
    export = [f for f in bec if f.evidence.get("tool") in EXPORT_TOOLS and f.evidence.get("consent_type") == "Principal"
              and f.evidence.get("mail_scopes") and f.evidence.get("offline_access")]
    return len(tools) >= 2 and bool(export)


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
    elif score >= SUSPICIOUS or any(f.severity >= Severity.HIGH for f in active):
        # Invariant: an active, unsuppressed High/Critical finding is never shown on a ``clean`` account. A finding
        # that should not make a human look must carry a lower severity, not a zero score.
        verdict = "suspicious"
    else:
        verdict = "clean"
    return Verdict(verdict, score, tuple(reasons), tuple(combos))
