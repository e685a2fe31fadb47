"""Shared analysis of one inbox rule (Graph ``messageRule`` vocabulary) for the ``mail.inbox_rule_*`` detectors.

Pure functions of (rule, account, ctx). Rules have no timestamps (detections.md §0.5): a rule's artefact key is its id
plus a fingerprint of its normalised conditions and actions, so a rule *modified* between scans is also "new".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors._domains import DomainVerdict, address_of, classify
from detectors._model import ScanContext
from detectors._text import fold, has_invisible, has_mixed_script, keyword_fold, norm, strip_invisible, visible
from scanner.snapshot import AccountSnapshot, InboxRule, MailFolder

FORWARD_ACTIONS = ("forwardTo", "forwardAsAttachmentTo", "redirectTo")
TEXT_CONDITIONS = ("subjectContains", "bodyContains", "bodyOrSubjectContains", "headerContains", "senderContains",
                   "recipientContains")
ADDRESS_CONDITIONS = ("fromAddresses", "sentToAddresses")

# Low-visibility folders (detections.md §B2): well-known names and display names incl. common localisations.
LOW_VIS_WELL_KNOWN = {
    "archive": "Archive", "conversationhistory": "Conversation History", "deleteditems": "Deleted Items",
    "junkemail": "Junk Email", "rssfeeds": "RSS Feeds", "rsssubscriptions": "RSS Subscriptions",
    "notes": "Notes", "syncissues": "Sync Issues", "conflicts": "Conflicts", "localfailures": "Local Failures",
    "serverfailures": "Server Failures", "recoverableitemsdeletions": "Recoverable Items",
    "recoverableitemsroot": "Recoverable Items", "recoverableitemspurges": "Recoverable Items (Purges)",
    "calendar": "Calendar", "tasks": "Tasks", "contacts": "Contacts", "journal": "Journal",
    "outbox": "Outbox", "scheduled": "Scheduled", "clutter": "Clutter",
}
NON_MAIL_WELL_KNOWN = frozenset({"calendar", "tasks", "contacts", "notes", "journal", "syncissues", "conflicts",
                                 "localfailures", "serverfailures"})
LOW_VIS_NAMES = frozenset(fold(n) for n in (
    "RSS Feeds", "RSS Subscriptions", "RSS-Feeds", "RSS-Abonnements", "Flux RSS", "Abonnements RSS",
    "Fuentes RSS", "Feed RSS", "RSS", "Conversation History", "Unterhaltungsverlauf", "Historique des conversations",
    "Historial de conversaciones", "Cronologia conversazioni", "Archive", "Archiv", "Archives", "Archivo", "Archivio",
    "Notes", "Notizen", "Notas", "Note", "Junk Email", "Junk E-mail", "Junk E-Mail", "Junk", "Junk-E-Mail",
    "Courrier indésirable", "Correo no deseado", "Posta indesiderata", "Ongewenste e-mail",
    "Deleted Items", "Gelöschte Elemente", "Éléments supprimés", "Elementos eliminados", "Posta eliminata",
    "Verwijderde items", "Sync Issues", "Synchronisierungsprobleme", "Problèmes de synchronisation",
    "Calendar", "Kalender", "Calendrier", "Calendario", "Tasks", "Aufgaben", "Tâches", "Contacts", "Kontakte",
    "Journal", "Outbox", "Postausgang", "Boîte d'envoi", "Clutter",
))

SECURITY_WORDS = re.compile(
    r"\b(hack(ed|ing)?|phish(ing|ed)?|compromis(e|ed)|hijack(ed)?|malware|virus|malicious|suspicious|"
    r"fraud(ulent)?|scam|fake|spoof(ed|ing)?|helpdesk|help desk|it support|security alert|"
    r"do not (open|click)|don'?t (open|click)|not me|did you (send|email)|was this you|is this you|"
    r"weird email|strange email)\b")
# A bare "spam" keyword is usually a gateway tag ("[SPAM]", "***SPAM***") that users route away; counted separately.
SPAM_WORD = re.compile(r"\bspam\b")
FINANCIAL_WORDS = re.compile(
    r"\b(invoice[s]?|payment[s]?|remittance|wire|transfer|ach|bank( details| account)?|iban|swift|routing|"
    r"direct deposit|payroll|paycheck|pay ?slip|salary|w-?2|1099|po ?#|purchase order|statement|deposit|"
    r"overdue|billing|receipt|rechnung|zahlung|überweisung|virement|facture|paiement|factura|pago|fattura|"
    r"pagamento|betaling|factuur)\b")
NDR_WORDS = re.compile(
    r"\b(undeliverable|undelivered|delivery (has )?failed|delivery status notification|mail delivery (failed|"
    r"subsystem)|returned mail|failure notice|message not delivered|could not be delivered|automatic reply|"
    r"auto(matic)?[- ]?reply|out of (the )?office|mailer-daemon|postmaster|unzustellbar|non remis|"
    r"abwesenheitsnotiz|réponse automatique)\b")
SECURITY_NOTICE_WORDS = re.compile(
    r"\b(security info|security information|new sign-?in|unusual sign-?in|sign-?in activity|authenticator|"
    r"verification code|security code|one-time (pass)?code|password (reset|change|changed)|mfa|"
    r"multi-?factor|two-?step|2fa|account security|security alert|microsoft account team|new device|"
    r"suspicious activity|your account)\b")
SECURITY_SENDERS = re.compile(
    r"(security|accountprotection\.microsoft\.com|account-security|msonlineservicesteam|azure-noreply|"
    r"o365mc|helpdesk|help-desk|servicedesk|service-desk|itsupport|it-support|^it@|^support@|infosec|soc@|"
    r"phish|abuse@|cert@|csirt)")
AUTOMATED_SENDERS = re.compile(
    r"(^|[._+-])(no-?reply|do-?not-?reply|donotreply|notifications?|notify|alerts?|newsletters?|news|"
    r"marketing|mailer|digest|updates?|jira|confluence|github|gitlab|jenkins|builds?|ci|monitoring|nagios|"
    r"zabbix|calendar|reports?|automated|system|bot|info|hello|team|promo|offers|deals)([._+-]|@|$)")
AUTOMATED_DOMAINS = frozenset({
    "github.com", "atlassian.net", "linkedin.com", "facebookmail.com", "twitter.com", "x.com", "mailchimp.com",
    "slack.com", "teams.microsoft.com", "email.teams.microsoft.com", "yammer.com", "servicenow.com",
    "service-now.com", "zendesk.com", "amazon.com", "marketo.com", "hubspot.com", "substack.com", "medium.com",
})
SYSTEM_HIDDEN_RULES = re.compile(r"^(junk e-?mail rule|microsoft\.exchange\.oof\..*|.*schedule\+ ems interface.*)$",
                                 re.IGNORECASE)


@dataclass(frozen=True)
class FolderRef:
    ref: str
    display_name: str | None
    well_known: str | None
    kind: str  # lowvis | nonmail | custom | inbox | unresolved | unknown (folders not collected)
    parent_lowvis: bool = False

    @property
    def low_visibility(self) -> bool:
        return self.kind in ("lowvis", "nonmail", "unresolved") or self.parent_lowvis

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"folder": visible(self.display_name or self.ref), "folder_kind": self.kind}
        if self.well_known:
            out["folder_well_known"] = self.well_known
        return out


@dataclass(frozen=True)
class RuleView:
    rule: InboxRule
    artefact: str
    destinations: tuple[DomainVerdict, ...]
    move: FolderRef | None
    copy: FolderRef | None
    delete: bool
    permanent_delete: bool
    mark_as_read: bool
    stop_processing: bool
    conditions_empty: bool
    keywords: tuple[str, ...]  # normalised text condition values
    raw_keywords: tuple[str, ...]
    senders: tuple[str, ...]  # fromAddresses / senderContains values (normalised)
    obfuscation: tuple[str, ...]  # reasons the conditions are crafted to match everything or read differently
    summary: str
    security_hits: tuple[str, ...] = ()
    financial_hits: tuple[str, ...] = ()
    ndr_hits: tuple[str, ...] = ()
    notice_hits: tuple[str, ...] = ()
    spam_tag: bool = False
    flags: Mapping[str, Any] = field(default_factory=dict)

    @property
    def external_destinations(self) -> tuple[DomainVerdict, ...]:
        return tuple(d for d in self.destinations if d.external)

    @property
    def hides(self) -> bool:
        """Destructive or hiding action: delete, permanent delete, or a move to a low-visibility folder."""
        return self.delete or self.permanent_delete or bool(self.move and self.move.low_visibility)

    @property
    def hides_or_marks_read(self) -> bool:
        return self.hides or self.mark_as_read

    @property
    def keyed_on_automated_sender(self) -> bool:
        return bool(self.senders) and all(is_automated_sender(s) for s in self.senders) and not self.security_senders

    @property
    def security_senders(self) -> tuple[str, ...]:
        return tuple(s for s in self.senders if SECURITY_SENDERS.search(s))

    @property
    def purpose_named_folder(self) -> bool:
        """The move target is a custom folder whose name matches a rule keyword or sender (Invoices <- invoice)."""
        if not self.move or self.move.kind != "custom" or not self.move.display_name:
            return False
        name = fold(self.move.display_name)
        tokens = {t for t in re.split(r"[^a-z0-9]+", name) if len(t) >= 3}
        words = set()
        for k in self.keywords + self.senders:
            words |= {t for t in re.split(r"[^a-z0-9]+", fold(k)) if len(t) >= 3}
        return any(t in words or any(w.startswith(t) or t.startswith(w) for w in words) for t in tokens)

    def evidence(self) -> dict[str, Any]:
        r = self.rule
        ev: dict[str, Any] = {
            "rule_id": r.id, "rule_name": visible(r.display_name or ""), "conditions": self.summary,
            "enabled": r.is_enabled, "hidden": r.hidden, "source": r.source,
        }
        acts = self.action_summary()
        if acts:
            ev["actions"] = acts
        if r.exchange_identity:
            ev["exchange_identity"] = r.exchange_identity
        if r.has_error:
            ev["has_error"] = True
        return ev

    def action_summary(self) -> str:
        parts = []
        for d in self.destinations:
            parts.append(f"forward to {d.address} ({d.domain_class})")
        if self.move:
            parts.append(f"move to {visible(self.move.display_name or self.move.ref)}")
        if self.copy:
            parts.append(f"copy to {visible(self.copy.display_name or self.copy.ref)}")
        if self.delete:
            parts.append("delete")
        if self.permanent_delete:
            parts.append("permanently delete")
        if self.mark_as_read:
            parts.append("mark as read")
        if self.stop_processing:
            parts.append("stop processing more rules")
        return "; ".join(parts)


def recipients(actions: Any, key: str) -> list[str]:
    """SMTP addresses of a forward/redirect action, tolerating malformed values (a string, junk types)."""
    if not isinstance(actions, Mapping):
        return []
    value = actions.get(key)
    if isinstance(value, str | dict):
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    return [a for a in (address_of(v) for v in value) if a]


def is_automated_sender(s: str) -> bool:
    s = s.lower()
    local, _, dom = s.partition("@")
    if dom and any(dom == d or dom.endswith("." + d) for d in AUTOMATED_DOMAINS):
        return True
    return bool(AUTOMATED_SENDERS.search(local if dom else s))


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for v in value:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict):
                a = address_of(v)
                if a:
                    out.append(a)
        return out
    return []


def _truthy(v: Any) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, list | tuple | dict | str):
        return len(v) > 0
    return True


def fingerprint(rule: InboxRule) -> str:
    body = json.dumps({"c": rule.conditions, "x": rule.exceptions, "a": rule.actions, "e": rule.is_enabled},
                      sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def rule_artefact(rule: InboxRule) -> str:
    return f"rule:{rule.id}:{fingerprint(rule)}"


def resolve_folder(ref: Any, folders: tuple[MailFolder, ...] | None) -> FolderRef | None:
    if not ref or not isinstance(ref, str):
        return None
    if folders is None:
        # Folders were not collected: only well-known names can be resolved; the rest is unknown, not suspicious.
        wk = ref.strip().strip("\\/:").replace(" ", "").lower()
        if wk in LOW_VIS_WELL_KNOWN:
            return FolderRef(ref, LOW_VIS_WELL_KNOWN[wk], wk, "nonmail" if wk in NON_MAIL_WELL_KNOWN else "lowvis")
        return FolderRef(ref, None, None, "unknown")
    by_id = {f.id: f for f in folders}
    f = by_id.get(ref)
    if f is None:
        # Exchange rules may name the folder by path ("\\Junk Email", ":\\RSS Feeds") or well-known name.
        key = ref.strip().strip("\\/:")
        wk = key.replace(" ", "").lower()
        for cand in folders:
            if (cand.well_known_name or "").lower() == wk or fold(cand.display_name) == fold(key):
                f = cand
                break
        if f is None:
            if wk in LOW_VIS_WELL_KNOWN:
                return FolderRef(ref, LOW_VIS_WELL_KNOWN[wk], wk, "nonmail" if wk in NON_MAIL_WELL_KNOWN else "lowvis")
            return FolderRef(ref, None, None, "unresolved")
    wk = (f.well_known_name or "").lower() or None
    parent_lowvis = False
    seen = set()
    p = by_id.get(f.parent_folder_id or "")
    while p is not None and p.id not in seen:
        seen.add(p.id)
        pwk = (p.well_known_name or "").lower()
        if pwk in LOW_VIS_WELL_KNOWN or fold(p.display_name) in LOW_VIS_NAMES:
            parent_lowvis = True
            break
        p = by_id.get(p.parent_folder_id or "")
    if wk == "inbox":
        kind = "inbox"
    elif wk in NON_MAIL_WELL_KNOWN:
        kind = "nonmail"
    elif wk in LOW_VIS_WELL_KNOWN or fold(f.display_name) in LOW_VIS_NAMES or f.is_hidden:
        kind = "lowvis"
    else:
        kind = "custom"
    return FolderRef(ref, f.display_name, wk, kind, parent_lowvis)


def _size_range(v: Any) -> tuple[float | None, float | None] | None:
    if not isinstance(v, dict):
        return None
    def num(x: Any) -> float | None:
        try:
            return float(x) if x is not None else None
        except (TypeError, ValueError):
            return None
    return num(v.get("minimumSize")), num(v.get("maximumSize"))


def _obfuscation(conditions: Mapping[str, Any], raw_keywords: list[str]) -> list[str]:
    out: list[str] = []
    for k in raw_keywords:
        stripped = strip_invisible(k).strip()
        if "\x00" in k:
            out.append("NUL character in a condition (matches every message)")
        elif not stripped or not re.search(r"\w", stripped):
            out.append(f"condition {visible(k)!s} has no visible letters")
        elif has_invisible(k):
            out.append(f"invisible characters in condition {visible(k)}")
        elif has_mixed_script(k):
            out.append(f"mixed-script look-alike characters in condition {visible(k)}")
    letters = [norm(k) for k in raw_keywords if len(norm(k)) == 1 and norm(k).isalpha()]
    if letters and len(letters) >= max(1, len(raw_keywords) // 2):
        out.append(f"single-letter conditions {', '.join(sorted(set(letters)))} (match almost every message)")
    for k in raw_keywords:
        parts = [p.strip() for p in norm(k).split(";") if p.strip()]
        if len(parts) >= 3 and all(len(p) == 1 for p in parts):
            out.append(f"semicolon letter list {visible(k)} (matches every message)")
    sr = _size_range(conditions.get("withinSizeRange"))
    if sr is not None:
        lo, hi = sr
        # Graph sizeRange is in KB; a minimum under 1 KB with a wide or open maximum matches practically all mail.
        if (lo is None or lo < 1) and (hi is None or hi >= 1024):
            out.append(f"size range {lo or 0:g}-{hi if hi is not None else '∞'} KB (matches every message)")
    return list(dict.fromkeys(out))


def summarise_conditions(conditions: Mapping[str, Any]) -> str:
    parts = []
    for key, value in conditions.items():
        if not _truthy(value):
            continue
        if key in TEXT_CONDITIONS or key in ADDRESS_CONDITIONS:
            vals = ", ".join(repr(visible(s, 80)) for s in _strings(value)[:10])
            parts.append(f"{key} {vals}")
        elif key == "withinSizeRange" and isinstance(value, dict):
            parts.append(f"size {value.get('minimumSize')}-{value.get('maximumSize')} KB")
        else:
            parts.append(f"{key}={visible(str(value), 80)}")
    return "; ".join(parts) or "(none: applies to every message)"


def analyse(rule: InboxRule, account: AccountSnapshot, ctx: ScanContext,
            folders: tuple[MailFolder, ...] | None = None) -> RuleView:
    cond = rule.conditions or {}
    acts = rule.actions or {}
    dests: list[DomainVerdict] = []
    seen: set[str] = set()
    for key in FORWARD_ACTIONS:
        for a in recipients(acts, key):
            if a not in seen:
                seen.add(a)
                dests.append(classify(a, ctx.tenant.domains, ctx.allowlist, ctx.now))
    raw_keywords: list[str] = []
    for key in TEXT_CONDITIONS:
        raw_keywords += _strings(cond.get(key))
    senders = [norm(s) for s in _strings(cond.get("fromAddresses")) + _strings(cond.get("senderContains"))]
    keywords = [keyword_fold(k) for k in raw_keywords if k not in _strings(cond.get("senderContains"))]
    text = " | ".join(keywords)
    sec = sorted({m.group(0) for m in SECURITY_WORDS.finditer(text)})
    fin = sorted({m.group(0) for m in FINANCIAL_WORDS.finditer(text)})
    ndr = sorted({m.group(0) for m in NDR_WORDS.finditer(text + " | " + " | ".join(senders))})
    if cond.get("isNonDeliveryReport") is True:
        ndr.append("isNonDeliveryReport")
    if cond.get("isAutomaticReply") is True:
        ndr.append("isAutomaticReply")
    notice = sorted({m.group(0) for m in SECURITY_NOTICE_WORDS.finditer(text)})
    spam_tag = bool(SPAM_WORD.search(text))
    empty = not any(_truthy(v) for v in cond.values())
    move = resolve_folder(acts.get("moveToFolder"), folders)
    copy = resolve_folder(acts.get("copyToFolder"), folders)
    return RuleView(
        rule=rule, artefact=rule_artefact(rule), destinations=tuple(dests), move=move, copy=copy,
        delete=acts.get("delete") is True, permanent_delete=acts.get("permanentDelete") is True,
        mark_as_read=acts.get("markAsRead") is True, stop_processing=acts.get("stopProcessingRules") is True,
        conditions_empty=empty, keywords=tuple(keywords), raw_keywords=tuple(raw_keywords), senders=tuple(senders),
        obfuscation=tuple(_obfuscation(cond, raw_keywords)), summary=summarise_conditions(cond),
        security_hits=tuple(sec), financial_hits=tuple(fin), ndr_hits=tuple(ndr), notice_hits=tuple(notice),
        spam_tag=spam_tag,
    )


# The last account's analysed rules: a dozen rule detectors ask for the same account's rules in a row, and the analysis
# (domain classification, keyword folding, folder resolution) is pure. The entry holds the objects themselves and
# matches them by identity, so a new snapshot, context or folder list is always analysed afresh.
_last_analysis: tuple[object, object, object, tuple[RuleView, ...]] | None = None


def rules_of(account: AccountSnapshot, ctx: ScanContext, *, need_folders: bool = False) -> list[RuleView]:
    """Analysed rules of the account (raises NotCollectedError if the rules — or, when needed, folders — failed)."""
    global _last_analysis
    rules = account.require("inbox_rules")
    folders = account.require("folders") if need_folders else account.get("folders")
    last = _last_analysis
    if last is not None and last[0] is account and last[1] is ctx and last[2] is folders:
        return list(last[3])
    views = tuple(analyse(r, account, ctx, folders) for r in rules if not is_system_rule(r))
    _last_analysis = (account, ctx, folders, views)
    return list(views)


def is_system_rule(rule: InboxRule) -> bool:
    """Exchange's own hidden rules (junk filter, OOF, calendar-delegate forwarding) — not user back-doors (§0.7)."""
    return rule.hidden and bool(SYSTEM_HIDDEN_RULES.match(norm(rule.display_name or "")))


def is_junk_name(name: str) -> bool:
    raw = name or ""
    if has_invisible(raw) or has_mixed_script(raw):
        return True
    n = norm(raw)
    if not n:
        return True
    if not re.search(r"[a-z0-9]", fold(n)) and not re.search(r"\w", n):
        return True  # punctuation only: ".", "...", ",;", "-"
    if len(n) <= 2:
        return True
    letters = re.sub(r"[^a-z]", "", n)
    return len(set(n.replace(" ", ""))) == 1 or (len(letters) >= 2 and len(set(letters)) == 1 and len(n) <= 4)
