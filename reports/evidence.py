"""Evidence in words: one plain-English sentence per finding, from the detector id family and its evidence keys.

Detectors choose their own evidence keys, so every renderer reads keys defensively (several spellings, any may be
missing) and the generic fallback turns whatever is there into a readable "key: value" list. The output is plain text;
the template escapes it and the HTML layer marks invisible characters (``reports.text``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reports.text import reveal

Renderer = Callable[[str, "Ev"], str | None]


class Ev:
    """Read-only, forgiving access to an evidence mapping."""

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}

    def get(self, *keys: str) -> Any:
        for k in keys:
            if "." in k:
                cur: Any = self.data
                for part in k.split("."):
                    cur = cur.get(part) if isinstance(cur, Mapping) else None
                if cur not in (None, "", [], {}):
                    return cur
            elif k in self.data and self.data[k] not in (None, "", [], {}):
                return self.data[k]
        return None

    def text(self, *keys: str) -> str | None:
        v = self.get(*keys)
        if v is None:
            return None
        if isinstance(v, (list, tuple, set)):
            return join_words([str(x) for x in v if x not in (None, "")]) or None
        if isinstance(v, Mapping):
            return None
        return str(v)

    def items(self, *keys: str) -> list[str]:
        v = self.get(*keys)
        if v is None:
            return []
        if isinstance(v, (list, tuple, set)):
            out = []
            for x in v:
                if isinstance(x, Mapping):
                    x = x.get("address") or x.get("emailAddress", {}).get("address") if isinstance(
                        x.get("emailAddress"), Mapping) else x.get("address") or x.get("name")
                if x not in (None, ""):
                    out.append(str(x))
            return out
        if isinstance(v, Mapping):
            return [str(v.get("address") or v.get("name") or "")] if (v.get("address") or v.get("name")) else []
        if isinstance(v, str) and ";" in v:
            return [p.strip() for p in v.split(";") if p.strip()]
        return [str(v)]

    def flag(self, *keys: str) -> bool:
        v = self.get(*keys)
        return v is True or (isinstance(v, str) and v.lower() in ("true", "yes", "1"))


def _s(value: object) -> str:
    """A tenant string as-is: sentences keep the raw text; :func:`evidence_text` and the template make invisible
    characters visible (the template styles the markers)."""
    return "" if value is None else str(value)


def q(value: object) -> str:
    """A tenant string quoted for a sentence."""
    return f"'{_s(value)}'"


def join_words(parts: Iterable[str], conj: str = "and") -> str:
    p = [x for x in parts if x]
    if not p:
        return ""
    if len(p) == 1:
        return p[0]
    if len(p) > 6:
        return ", ".join(p[:5]) + f" {conj} {len(p) - 5} more"
    return ", ".join(p[:-1]) + f" {conj} " + p[-1]


def _addr_list(addrs: list[str]) -> str:
    return join_words([_s(a) for a in addrs])


def _destination_note(ev: Ev) -> str:
    """', a look-alike of contoso.com' / ', a free-mail address' / ', an external address' (when the evidence says)."""
    kind = (ev.text("destination_kind", "classification", "domain_class", "kind", "category") or "").lower()
    like = ev.text("lookalike_of", "look_alike_of", "lookalike", "resembles", "impersonates")
    if like or "look" in kind:
        return f", a look-alike of {_s(like)}" if like else ", a look-alike of the organisation's domain"
    if "free" in kind:
        return ", a free-mail address"
    if "extern" in kind or ev.flag("external"):
        return ", an external address"
    if "intern" in kind:
        return ", an internal address"
    return ""


# ---- families ------------------------------------------------------------------------------------------------------

_COND_LABELS = {
    "subjectContains": "whose subject contains", "bodyContains": "whose body contains",
    "bodyOrSubjectContains": "whose subject or body contains", "senderContains": "whose sender contains",
    "headerContains": "whose headers contain", "recipientContains": "whose recipients contain",
    "fromAddresses": "from", "sentToAddresses": "sent to", "subjectOrBodyContains": "whose subject or body contains",
}
_PY_STR_SRC = r"'(?:[^'\\]|\\.)*'" + '|' + r'"(?:[^"\\]|\\.)*"'
_PY_STR = re.compile(_PY_STR_SRC)
_SUMMARY_PART = re.compile(r"(?:^|;\s*)([A-Za-z]+)\s+((?:(?:" + _PY_STR_SRC + r")(?:,\s*)?)+)")


_SIZE = re.compile(r"\bsize (\S+?)-(\S+?) KB")


def parse_condition_summary(summary: str) -> dict[str, list[str]]:
    """The detectors' condition summary (``subjectContains 'invoice', 'wire'; fromAddresses 'a@b'``) back into
    key → values. Values are Python string literals; anything that does not parse is left out."""
    out: dict[str, list[str]] = {}
    for m in _SUMMARY_PART.finditer(summary):
        vals = []
        for lit in _PY_STR.findall(m.group(2)):
            try:
                v = ast.literal_eval(lit)
            except (ValueError, SyntaxError):
                continue
            if isinstance(v, str):
                vals.append(v)
        if vals:
            out.setdefault(m.group(1), []).extend(vals)
    return out


def _conditions_phrase(ev: Ev) -> str:
    """'mail whose subject contains 'invoice'' / 'mail from x' / 'all mail' from Graph messageRulePredicates or the
    detectors' condition summary string."""
    cond = ev.get("conditions", "rule.conditions", "rule_conditions")
    if isinstance(cond, str):
        if cond.startswith("(none"):
            return "all mail"
        parsed: dict[str, Any] = dict(parse_condition_summary(cond))
        size = _SIZE.search(cond)
        if size:
            parsed["withinSizeRange"] = {"minimumSize": size.group(1), "maximumSize": size.group(2)}
        for flag in ("isAutomaticReply", "isNonDeliveryReport"):
            if f"{flag}=True" in cond:
                parsed[flag] = True
        if not parsed:
            return f"mail matching {cond}"
        c = Ev(parsed)
    else:
        c = Ev(cond if isinstance(cond, Mapping) else ev.data)
    bits: list[str] = []
    for key, label in _COND_LABELS.items():
        words = c.items(key)
        if not words:
            continue
        if key in ("fromAddresses", "sentToAddresses"):
            bits.append(f"{label} " + join_words([_s(w) for w in words], "or"))
        else:
            bits.append(f"{label} " + join_words([q(w) for w in words], "or"))
    if c.flag("isAutomaticReply"):
        bits.append("that is an automatic reply")
    if c.flag("isNonDeliveryReport"):
        bits.append("that is a non-delivery report")
    size = c.get("withinSizeRange")
    if isinstance(size, Mapping) and size.get("minimumSize") is not None:
        hi = size.get("maximumSize")
        bits.append(f"between {size.get('minimumSize')} and {hi} KB in size" if hi not in (None, "None") else
                    f"of at least {size.get('minimumSize')} KB")
    kws = ev.items("keywords", "matched_keywords")
    if not bits and kws:
        bits.append("matching " + join_words([q(w) for w in kws], "or"))
    if not bits:
        if (isinstance(cond, Mapping) and not cond) or ev.flag("match_all", "no_conditions", "conditions_empty"):
            return "all mail"
        return "mail"
    return "mail " + " and ".join(bits)


_CLASS_NOTE = {"freemail": ", a free-mail address", "external": ", an external address",
               "partner": ", an allow-listed partner", "internal": ", an internal address"}


def _destinations(ev: Ev, a: Ev) -> list[str]:
    """Forward targets in words: 'x@y.com, a look-alike of contoso.com'."""
    out: list[str] = []
    dests = ev.get("destinations")
    if isinstance(dests, list) and dests:
        for d in dests:
            if isinstance(d, Mapping):
                de = Ev(d)
                addr = de.text("destination", "address")
                if not addr:
                    continue
                like = de.text("lookalike_of")
                cls = (de.text("domain_class") or "").lower()
                out.append(_s(addr) + (f", a look-alike of {_s(like)}" if like else _CLASS_NOTE.get(cls, "")))
            elif d:
                out.append(_s(d))
        return out
    addrs = a.items("forwardTo") + a.items("redirectTo") + a.items("forwardAsAttachmentTo")
    if not addrs:
        # The detectors' action summary: "forward to x@y.com (lookalike); move to RSS Feeds; mark as read".
        for tok in _action_tokens(ev, lower=False):
            m = _FWD_TOKEN.match(tok)
            if m:
                cls = (m.group(2) or "").lower()
                like = ev.text("lookalike_of") if cls == "lookalike" else None
                out.append(_s(m.group(1)) + (f", a look-alike of {_s(like)}" if like else
                                             ", a look-alike domain" if cls == "lookalike" else
                                             _CLASS_NOTE.get(cls, "")))
        if out:
            return out
    if not addrs:
        addrs = ev.items("destination", "external_addresses", "addresses", "address")
    note = _destination_note(ev)
    return [_s(x) for x in addrs[:-1]] + [_s(addrs[-1]) + note] if addrs else []


_FWD_TOKEN = re.compile(r"^(?:forward(?: as attachment)?|redirect) to (\S+?)(?: \(([a-z]+)\))?$", re.I)


def _action_tokens(ev: Ev, lower: bool = True) -> list[str]:
    acts = ev.get("actions", "rule.actions")
    if isinstance(acts, str):
        return [(p.strip().lower() if lower else p.strip()) for p in acts.split(";") if p.strip()]
    return []


_WELL_KNOWN_NAMES = {"Archive", "Conversation History", "Deleted Items", "Junk Email", "RSS Feeds",
                     "RSS Subscriptions", "Notes", "Sync Issues", "Calendar", "Inbox", "Outbox", "Tasks", "Contacts"}


def render_rule(detector: str, ev: Ev) -> str | None:
    actions_raw = ev.get("actions", "rule.actions")
    a = Ev(actions_raw if isinstance(actions_raw, Mapping) else {})
    tokens = _action_tokens(ev)
    what = _conditions_phrase(ev)
    verbs: list[str] = []
    targets = _destinations(ev, a)
    redirect = bool(a.get("redirectTo")) or any(t.startswith("redirect") for t in tokens)
    if targets:
        verbs.append(("Redirects " if redirect else "Forwards ") + what + " to " + join_words(targets))
    folder = ev.get("folder", "move_to_folder_name", "folder_name", "target_folder")
    if folder is None and isinstance(ev.data.get("folder"), str):
        folder = ev.data["folder"]  # a blank name ("  ") is itself the point: keep it
    if folder is None:
        for tok in _action_tokens(ev, lower=False):
            if tok.lower().startswith("move to "):
                folder = tok[8:]
    if folder is None and a.text("moveToFolder"):
        folder = f"an unresolved folder ({_s(a.text('moveToFolder'))[:24]})"
    if folder:
        kind = (ev.text("folder_kind") or "").lower()
        well_known = ev.text("folder_well_known") or (str(folder) in _WELL_KNOWN_NAMES and kind != "custom")
        name = _s(folder) if well_known else f"the folder {q(folder)}"
        where = name + (" (an unresolved folder id)" if kind == "unresolved" else
                              ", which is not a mail folder" if kind == "nonmail" else "")
        verbs.append(("Moves " + what if not verbs else "moves it") + " to " + where)
    if a.flag("permanentDelete") or "permanently delete" in tokens:
        verbs.append(("Permanently deletes " + what) if not verbs else "permanently deletes it")
    elif a.flag("delete") or "delete" in tokens:
        verbs.append(("Deletes " + what) if not verbs else "deletes it")
    if a.flag("markAsRead") or "mark as read" in tokens:
        verbs.append(("Marks " + what + " as read") if not verbs else "marks it as read")
    if not verbs:
        if isinstance(actions_raw, str) and actions_raw:
            verbs.append(f"Applies to {what}: {actions_raw}")
        else:
            return None
    if len(verbs) == 1:
        out = verbs[0]
    else:  # serial comma when a clause already has one, so "a look-alike of x" never reads as an action
        sep = ", and " if len(verbs) > 2 or any("," in v for v in verbs[:-1]) else " and "
        out = ", ".join(verbs[:-1]) + sep + verbs[-1]
    name = ev.get("rule_name", "display_name", "displayName", "name", "rule.display_name", "rule.displayName")
    extras = []
    if name is not None:
        extras.append(f"rule {q(name)}")
    if ev.flag("hidden", "rule.hidden"):
        extras.append("hidden: only Exchange shows it, not Outlook or Graph")
    if ev.get("enabled", "is_enabled", "isEnabled") is False:
        extras.append("currently disabled")
    if "stop processing more rules" in tokens or a.flag("stopProcessingRules"):
        extras.append("stops later rules")
    if extras:
        out += " (" + "; ".join(extras) + ")"
    out += "."
    # The obfuscation notes carry their own parentheses ("... (matches every message)"): a sentence of their own
    # instead of a nested parenthesis.
    obf = ev.items("obfuscation")
    if obf:
        note = join_words(obf)
        out += " " + note[:1].upper() + note[1:] + "."
    return out


def render_forwarding(detector: str, ev: Ev) -> str | None:
    addr = ev.text("destination", "forwarding_smtp_address", "forwardingSmtpAddress", "address",
                   "forwarding_address_resolved", "forwarding_address", "forwardingAddress")
    if not addr:
        return None
    keep = ev.get("kept_copy", "deliver_to_mailbox_and_forward", "deliverToMailboxAndForward")
    note = _destination_note(ev)
    copy = ("," if note else "") + " and keeps no copy in the mailbox" if keep is False else ""
    setting = ev.text("setting")
    via = f" (mailbox setting {setting})" if setting else ""
    verb = "Redirects" if keep is False else "Forwards"
    shared = ev.items("other_accounts")
    tail = f"; {join_words([_s(x) for x in shared])} forward{'s' if len(shared) == 1 else ''} there too" if shared \
        else ""
    return f"{verb} all mail to {_s(addr)}{note}{copy}{via}{tail}."


def render_auth_method(detector: str, ev: Ev) -> str | None:
    mtype = ev.text("method_type", "type", "methodType", "method.method_type")
    if not mtype:
        return None
    friendly = {
        "phoneAuthenticationMethod": "phone", "microsoftAuthenticatorAuthenticationMethod": "Microsoft Authenticator",
        "softwareOathAuthenticationMethod": "software OATH token", "fido2AuthenticationMethod": "FIDO2 security key",
        "emailAuthenticationMethod": "email", "temporaryAccessPassAuthenticationMethod": "Temporary Access Pass",
        "windowsHelloForBusinessAuthenticationMethod": "Windows Hello for Business",
        "platformCredentialAuthenticationMethod": "platform credential",
    }.get(mtype, mtype)
    detail = ev.text("phone_number", "phoneNumber", "email_address", "emailAddress", "display_name", "displayName",
                     "device_tag")
    when = ev.text("created_date_time", "createdDateTime", "created")
    s = f"A {friendly} sign-in method" + (f" ({_s(detail)})" if detail else "")
    s += " was registered" + (f" at {when}" if when else " since the last scan")
    if "remov" in detector:
        s = f"A {friendly} sign-in method" + (f" ({_s(detail)})" if detail else "") + " was removed"
    if ev.flag("is_usable", "isUsable") and "temporaryAccessPass" in mtype:
        s += "; it is usable now"
    shared = ev.items("shared_with", "also_on", "other_accounts")
    if shared:
        s += "; the same number is registered on " + _addr_list(shared)
    return s + "."


def render_role(detector: str, ev: Ev) -> str | None:
    role = ev.text("role_name", "role", "roleName", "role_definition_id")
    if not role:
        return None
    kind = ev.text("kind")
    return f"Holds the {_s(role)} directory role" + (f" ({kind})" if kind else "") + "."


def render_delegate(detector: str, ev: Ev) -> str | None:
    who = ev.text("trustee_address", "trustee", "delegate", "user")
    if not who:
        return None
    right = ev.text("access_right", "accessRights", "right", "access_rights") or "access"
    s = f"{_s(who)} has {_s(right)} on this mailbox"
    if ev.flag("trustee_is_guest", "guest"):
        s += " (a guest account)"
    return s + "."


def render_sending(detector: str, ev: Ev) -> str | None:
    if ev.flag("blocked_from_sending", "blockedFromSending", "blocked"):
        return "Microsoft has restricted this account from sending mail (outbound spam limits)."
    sent = ev.get("sent_last_24h", "sent", "count")
    if sent is not None:
        base = ev.get("baseline", "median", "baseline_median")
        return f"Sent {sent} messages in the last 24 hours" + (f", against a usual {base}" if base is not None
                                                              else "") + "."
    return None


def render_contact(detector: str, ev: Ev) -> str | None:
    field = ev.text("field", "attribute", "property")
    old, new = ev.text("old", "before", "previous"), ev.text("new", "after", "value", "current")
    if field and new:
        return f"{_s(field)} changed" + (f" from {_s(old)}" if old else "") + f" to {_s(new)}."
    return None


def render_protocols(detector: str, ev: Ev) -> str | None:
    enabled = ev.items("enabled", "protocols", "enabled_protocols")
    if enabled:
        return "Legacy mail protocols are enabled: " + join_words([_s(p) for p in enabled]) + "."
    return None


def _method_name(ev: Ev) -> str:
    mtype = ev.text("method_type", "type", "methodType") or ""
    label = ev.text("method")
    friendly = _METHOD_NAMES.get(mtype)
    if label and friendly:
        extra = label.split(" ", 1)[1] if " " in label else ""
        return f"{friendly}" + (f" ({_s(extra)})" if extra else "")
    return _s(label) if label else (friendly or _s(mtype) or "sign-in method")


_METHOD_NAMES = {
    "phoneAuthenticationMethod": "phone", "microsoftAuthenticatorAuthenticationMethod": "Microsoft Authenticator",
    "softwareOathAuthenticationMethod": "software OATH token", "fido2AuthenticationMethod": "FIDO2 security key",
    "emailAuthenticationMethod": "email", "temporaryAccessPassAuthenticationMethod": "Temporary Access Pass",
    "windowsHelloForBusinessAuthenticationMethod": "Windows Hello for Business",
    "platformCredentialAuthenticationMethod": "platform credential", "passwordAuthenticationMethod": "password",
}


_LABEL_PREFIX = {"microsoftAuthenticator": "Microsoft Authenticator", "fido2": "FIDO2 security key",
                 "phone": "phone", "softwareOath": "software OATH token", "email": "email",
                 "temporaryAccessPass": "Temporary Access Pass", "windowsHelloForBusiness": "Windows Hello for Business",
                 "platformCredential": "platform credential"}


def _label(value: str) -> str:
    """'microsoftAuthenticator Galaxy A14' → 'Microsoft Authenticator (Galaxy A14)'."""
    head, _, rest = str(value).partition(" ")
    name = _LABEL_PREFIX.get(head)
    if name is None:
        return _s(value)
    return f"{name} ({_s(rest)})" if rest else name


def _r_new_method(d: str, ev: Ev) -> str | None:
    if not ev.get("method", "method_type"):
        return None
    s = f"A new {_method_name(ev)} sign-in method was registered"
    when = ev.text("created", "created_date_time")
    s += f" at {when}" if when else " since the last scan"
    if ev.get("had_prior_methods") is True:
        s += ", added next to the methods the user already had"
    n = ev.get("new_count")
    if isinstance(n, int) and n > 1:
        s += f" ({n} new methods at once)"
    return s + "."


def _r_method_removed(d: str, ev: Ev) -> str | None:
    if not ev.get("method", "method_type"):
        return None
    s = f"The {_method_name(ev)} sign-in method was removed since the last scan"
    rep = ev.get("replaced")
    if rep is True:
        s += " (replaced by a similar one)"
    return s + "."


def _r_priv_method(d: str, ev: Ev) -> str | None:
    roles = ev.items("roles")
    added, removed = ev.items("added"), ev.items("removed")
    if not (added or removed):
        return None
    parts = []
    if added:
        parts.append("added " + join_words([_label(x) for x in added]))
    if removed:
        parts.append("removed " + join_words([_label(x) for x in removed]))
    who = f"holds {join_words([_s(r) for r in roles])}" if roles else "is privileged"
    return f"Sign-in methods changed on an account that {who}: " + " and ".join(parts) + "."


def _r_tap(d: str, ev: Ev) -> str | None:
    usable = ev.get("is_usable")
    s = "A Temporary Access Pass is " + ("usable now" if usable else "registered" if usable is None else
                                         "registered (no longer usable)")
    life = ev.get("lifetime_in_minutes")
    if life:
        s += f", valid for {life} minutes"
    if ev.text("start"):
        s += f" from {ev.text('start')}"
    if ev.get("privileged"):
        s += "; the account is privileged"
    if ev.get("new_hire"):
        s += "; the account is new (onboarding is the usual reason)"
    return s + "."


def _r_shared_phone(d: str, ev: Ev) -> str | None:
    phone = ev.text("phone", "phone_number")
    others = ev.items("other_accounts")
    if not phone:
        return None
    return f"The sign-in phone {_s(phone)} is also registered on " + (
        join_words([_s(o) for o in others]) if others else "other accounts") + "."


def _r_app_password(d: str, ev: Ev) -> str | None:
    protos = ev.items("protocols")
    if protos:
        return "Legacy mail protocols were turned on since the last scan: " + join_words([_s(p) for p in protos]) + "."
    sig = ev.text("signal")
    return (sig[0].upper() + sig[1:] + ".") if sig else None


def _r_oauth(d: str, ev: Ev) -> str | None:
    app = ev.text("app", "app_display_name", "appDisplayName", "app_name", "app_id")
    if not app:
        return None
    s = f"Consented to the app {q(app)}"
    pub = ev.text("verified_publisher")
    if pub:
        s += f" (verified publisher {_s(pub)})"
    elif "verified_publisher" in ev.data:
        named = ev.text("publisher", "publisher_name")
        s += f" (publisher {q(named)}, not verified)" if named else " (unverified publisher)"
    scopes = ev.items("mail_scopes") or ev.items("scopes", "scope")
    if scopes:
        s += ", which can use " + join_words([_s(x) for x in scopes[:8]])
    if ev.get("offline_access") is True:
        s += " with offline access (a refresh token that outlives a password reset)"
    if (ev.text("consent_type", "consentType") or "") == "AllPrincipals" or ev.get("tenant_wide") is True:
        s += ", on behalf of every user in the tenant"
    if ev.get("tool"):
        s += "; this app is known BEC mailbox-export tooling"
    return s + "."


def _r_role_new(d: str, ev: Ev) -> str | None:
    role = ev.text("role", "role_name")
    if not role:
        return None
    s = f"Was given the {_s(role)} role since the last scan"
    if ev.get("via_group"):
        s += " (through a group)"
    if ev.text("job_title_mismatch"):
        s += f", which does not fit the job title {q(ev.text('job_title_mismatch'))}"
    return s + "."


def _r_exo_role_group(d: str, ev: Ev) -> str | None:
    group = ev.text("role_group")
    if not group:
        return None
    roles = ev.items("roles")
    if ev.get("direct_assignment") is True or ev.text("role_group_type") == "DirectAssignment":
        role = _s(roles[0]) if roles else "an Exchange management"
        s = f"Was given the Exchange management role {role} directly (assignment {q(group)}) since the last scan"
        if ev.text("job_title_mismatch"):
            s += f"; this does not fit the job title {q(ev.text('job_title_mismatch'))}"
        return s + ". Neither Entra ID admin roles nor Exchange role groups show it."
    s = f"Became a member of the Exchange role group {q(group)} since the last scan"
    if roles:
        shown = join_words([_s(r) for r in roles[:5]]) + (f" and {len(roles) - 5} more" if len(roles) > 5 else "")
        s += f", which grants Exchange admin roles ({shown})"
    if ev.get("via_group"):
        s += f" (through the group {q(ev.text('via_group'))})" if isinstance(ev.get("via_group"), str) else \
            " (through a group)"
    if ev.text("job_title_mismatch"):
        s += f"; this does not fit the job title {q(ev.text('job_title_mismatch'))}"
    return s + ". Entra ID admin roles do not show it."


def _r_guest_priv(d: str, ev: Ev) -> str | None:
    role = ev.text("role")
    return f"A guest account holds the {_s(role)} role." if role else None


def _r_priv_backdoor(d: str, ev: Ev) -> str | None:
    roles, found = ev.items("roles"), ev.items("backdoors")
    if not found:
        return None
    return (f"An account that holds {join_words([_s(r) for r in roles]) or 'a privileged role'} also carries "
            + join_words([_s(x) for x in found]) + ".")


def _r_disabled(d: str, ev: Ev) -> str | None:
    found = ev.items("artefacts")
    if not found:
        return None
    return "The account is disabled, yet it still carries " + join_words([_s(x) for x in found]) + "."


def _r_protected(d: str, ev: Ev) -> str | None:
    ch = ev.get("changes")
    if isinstance(ch, Mapping) and ch:
        return "A protected (break-glass) account changed since the last scan: " + join_words(
            [str(k) for k in ch]) + "."
    if isinstance(ch, list) and ch:
        return "A protected (break-glass) account changed since the last scan: " + join_words(
            [_s(x) for x in ch]) + "."
    return None


def _r_contact(d: str, ev: Ev) -> str | None:
    f = ev.text("field")
    linked = ev.items("linked_to")
    tail = f"; the same value appears on {join_words([_s(x) for x in linked])}" if linked else ""
    if f == "otherMails" and ev.text("added"):
        free = ", a free-mail address" if ev.get("freemail") else ""
        return f"The alternate e-mail address {_s(ev.text('added'))}{free} was added since the last scan{tail}."
    if f and ev.get("new") is not None:
        old = ev.text("old")
        return f"{_s(f)} changed" + (f" from {_s(old)}" if old else "") + f" to {_s(ev.text('new'))}{tail}."
    return None


def _r_delegate(d: str, ev: Ev) -> str | None:
    who = ev.text("trustee_address", "trustee")
    if not who:
        return None
    s = f"{_s(who)} has {_s(ev.text('access_right') or 'access')} on this mailbox"
    if ev.get("guest_or_external") or ev.get("trustee_is_guest"):
        s += "; the delegate is a guest or outside the organisation"
    if ev.get("new") is True:
        s += " (new since the last scan)"
    return s + "."


def _r_volume(d: str, ev: Ev) -> str | None:
    n = ev.get("sent_last_24h")
    if n is None:
        return None
    base = ev.get("baseline_median")
    return f"Sent {n} messages in the last 24 hours" + (
        f", against a usual {base}" if base is not None else " with no earlier baseline") + "."


def _r_blocked(d: str, ev: Ev) -> str | None:
    n = ev.get("sent_last_24h")
    return "Microsoft has restricted this account from sending mail (outbound spam limits)" + (
        f" after {n} messages in the last 24 hours" if n else "") + "."


_MICROSOFT_TENANTS = {"f8cdef31-a31e-4b4a-93e4-5f571e91255a", "72f988bf-86f1-41af-91ab-2d7cd011db47"}


def _r_sp_role(d: str, ev: Ev) -> str | None:
    """roles.service_principal_privileged: an app (not a user) holding a directory role."""
    role = ev.text("role", "role_name", "role_template_id")
    if not role:
        return None
    name = ev.text("service_principal", "display_name", "app_display_name")
    app_id = ev.text("app_id", "appId")
    who = f"The app {q(name)}" if name else "An app"
    if app_id:
        who += f" (appId {_s(app_id)})"
    owner = (ev.text("app_owner_organization_id") or "").lower()
    kind = (ev.text("service_principal_type") or "").lower()
    if ev.flag("home_tenant_app"):
        who += ", registered in this tenant,"
    elif kind == "managedidentity":
        who += ", a managed identity,"
    elif owner and owner not in _MICROSOFT_TENANTS:
        who += f", published by another organisation (tenant {_s(owner)}),"
    scope = ev.text("scope", "directory_scope_id") or "/"
    where = "over the whole directory" if scope == "/" else f"scoped to {_s(scope)}"
    when = "; it was assigned since the last scan" if ev.flag("new") else ""
    return (f"{who} holds the {_s(role)} role {where}{when}. It acts with that role through its own secret or "
            "certificate, which no user password reset or sign-out revokes.")


# Exact detector ids first (the catalogue as it stands), then the families below for ids added later.
SPECIFIC: dict[str, Renderer] = {
    "auth.new_method": _r_new_method, "auth.method_removed": _r_method_removed,
    "auth.privileged_method_change": _r_priv_method, "auth.temporary_access_pass": _r_tap,
    "auth.shared_phone": _r_shared_phone, "auth.app_password_legacy_auth": _r_app_password,
    "oauth.known_bec_tool": _r_oauth, "oauth.mail_consent_unverified_app": _r_oauth,
    "oauth.tenant_wide_mail_grant": _r_oauth, "roles.privileged_role_new": _r_role_new,
    "roles.exchange_role_group_new": _r_exo_role_group,
    "roles.guest_privileged": _r_guest_priv, "roles.service_principal_privileged": _r_sp_role, "roles.privileged_account_backdoor": _r_priv_backdoor,
    "account.disabled_account_backdoor": _r_disabled, "account.protected_account_change": _r_protected,
    "contact.contact_info_changed": _r_contact, "delegates.new_mailbox_delegate": _r_delegate,
    "sending.volume_spike": _r_volume, "sending.blocked_from_sending": _r_blocked,
}


# Detector id → renderer: the first entry whose tokens all occur in the id wins (ids describe the bad state).
FAMILIES: list[tuple[tuple[str, ...], Renderer]] = [
    (("rule",), render_rule),
    (("forward",), render_forwarding),
    (("temporary_access",), _r_tap),
    (("auth",), lambda d, ev: render_auth_method(d, ev)),
    (("mfa",), lambda d, ev: render_auth_method(d, ev)),
    (("method",), lambda d, ev: render_auth_method(d, ev)),
    (("role",), lambda d, ev: render_role(d, ev)),
    (("admin",), lambda d, ev: render_role(d, ev)),
    (("oauth",), _r_oauth),
    (("consent",), _r_oauth),
    (("grant",), _r_oauth),
    (("app",), _r_oauth),
    (("delegat",), lambda d, ev: render_delegate(d, ev)),
    (("permission",), lambda d, ev: render_delegate(d, ev)),
    (("send",), lambda d, ev: render_sending(d, ev)),
    (("spam",), lambda d, ev: render_sending(d, ev)),
    (("volume",), lambda d, ev: render_sending(d, ev)),
    (("blocked",), lambda d, ev: render_sending(d, ev)),
    (("contact",), lambda d, ev: render_contact(d, ev)),
    (("phone",), lambda d, ev: render_contact(d, ev)),
    (("profile",), lambda d, ev: render_contact(d, ev)),
    (("protocol",), lambda d, ev: render_protocols(d, ev)),
    (("legacy",), lambda d, ev: render_protocols(d, ev)),
]


def _generic(ev: Ev) -> str:
    parts = []
    for k, v in list(ev.data.items())[:8]:
        if v in (None, "", [], {}):
            continue
        label = str(k).replace("_", " ")
        if isinstance(v, Mapping):
            inner = ", ".join(f"{ik}: {_short(iv)}" for ik, iv in list(v.items())[:6] if iv not in (None, "", []))
            parts.append(f"{label}: {inner}" if inner else "")
        else:
            parts.append(f"{label}: {_short(v)}")
    return ("; ".join(p for p in parts if p) + ".") if parts else "No further evidence recorded."


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return join_words([_short(x) for x in v[:6]])
    if isinstance(v, bool):
        return "yes" if v else "no"
    text = _s(v)
    return text if len(text) <= 160 else text[:157] + "…"


def evidence_sentence(detector: str, evidence: Mapping[str, Any] | None) -> str:
    """One readable sentence for a finding; never raises, whatever the evidence holds."""
    ev = Ev(evidence)
    return _sentence(detector, ev) + _delivery_note(ev)


def _delivery_note(ev: Ev) -> str:
    """What the outbound policy does to an external forward (detectors/_outbound.py), as trailing sentences."""
    detail = ev.text("delivery_detail")
    if not detail or isinstance(ev.get("delivery_detail"), Mapping):
        return ""
    out = f" Auto-forwarding {_s(detail).rstrip('.')}."
    exc = ev.text("outbound_exception")
    if exc and ev.flag("outbound_exception_new"):
        out += f" An exception exists ({_s(exc)}), but it is new since the last scan, so it is not trusted."
    elif exc and (ev.text("domain_class") or "").lower() in ("freemail", "lookalike"):
        out += f" An exception exists ({_s(exc)}), but a free-mail or look-alike destination is reported regardless."
    return out


def _sentence(detector: str, ev: Ev) -> str:
    explicit = ev.text("summary", "description", "sentence")
    if explicit and isinstance(ev.get("summary", "description", "sentence"), str):
        return explicit
    det = (detector or "").lower()
    fn0 = SPECIFIC.get(det)
    if fn0 is not None:
        try:
            out0 = fn0(det, ev)
        except (TypeError, ValueError, AttributeError, KeyError):
            out0 = None
        if out0:
            return out0
    for keys, fn in FAMILIES:
        if all(k in det for k in keys):
            try:
                out = fn(det, ev)
            except (TypeError, ValueError, AttributeError, KeyError):
                out = None
            if out:
                return out
    return _generic(ev)


def evidence_text(detector: str, evidence: Mapping[str, Any] | None) -> str:
    """:func:`evidence_sentence` with invisible characters shown as markers (for CSV / JSON / plain text)."""
    return reveal(evidence_sentence(detector, evidence))
