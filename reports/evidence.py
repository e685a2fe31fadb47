"""Evidence in words: one plain-English sentence per finding, from the detector id family and its evidence keys.

Detectors choose their own evidence keys, so every renderer reads keys defensively (several spellings, any may be
missing) and the generic fallback turns whatever is there into a readable "key: value" list. The output is plain text;
the template escapes it and the HTML layer marks invisible characters (``reports.text``).
"""

from __future__ import annotations

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

def _conditions_phrase(ev: Ev) -> str:
    """'whose subject contains 'invoice'' / 'from x' / 'all mail' from Graph messageRulePredicates or flattened keys."""
    cond = ev.get("conditions", "rule.conditions")
    c = Ev(cond if isinstance(cond, Mapping) else ev.data)
    bits: list[str] = []
    for key, label in (("subjectContains", "whose subject contains"), ("bodyContains", "whose body contains"),
                       ("bodyOrSubjectContains", "whose subject or body contains"),
                       ("senderContains", "whose sender contains"), ("headerContains", "whose headers contain"),
                       ("recipientContains", "whose recipients contain")):
        words = c.items(key)
        if words:
            bits.append(f"{label} " + join_words([q(w) for w in words], "or"))
    senders = c.items("fromAddresses")
    if senders:
        bits.append("from " + join_words([_s(s) for s in senders], "or"))
    if c.flag("isAutomaticReply"):
        bits.append("that is an automatic reply")
    if c.flag("isNonDeliveryReport"):
        bits.append("that is a non-delivery report")
    size = c.get("withinSizeRange")
    if isinstance(size, Mapping) and size.get("minimumSize") is not None:
        bits.append(f"of at least {size.get('minimumSize')} KB")
    kws = ev.items("keywords", "matched_keywords")
    if not bits and kws:
        bits.append("matching " + join_words([q(w) for w in kws], "or"))
    if not bits:
        if isinstance(cond, Mapping) and not cond or ev.flag("match_all", "no_conditions", "empty_conditions"):
            return "all mail"
        return "mail"
    return "mail " + " and ".join(bits)


def _folder_name(ev: Ev, key_names: tuple[str, ...], id_keys: tuple[str, ...]) -> str | None:
    name = ev.text(*key_names)
    if name:
        return _s(name)
    fid = ev.text(*id_keys)
    return f"an unknown folder ({_s(fid)[:24]}…)" if fid else None


def render_rule(detector: str, ev: Ev) -> str | None:
    actions_raw = ev.get("actions", "rule.actions")
    a = Ev(actions_raw if isinstance(actions_raw, Mapping) else ev.data)
    what = _conditions_phrase(ev)
    verbs: list[str] = []
    fwd = a.items("forwardTo") + a.items("redirectTo") + a.items("forwardAsAttachmentTo")
    dest = ev.items("destinations", "destination", "external_addresses", "addresses", "address")
    targets = fwd or dest
    note = _destination_note(ev) if targets else ""
    if a.get("redirectTo"):
        verbs.append("Redirects " + what + " to " + _addr_list(a.items("redirectTo")) + note)
    elif targets:
        verbs.append("Forwards " + what + " to " + _addr_list(targets) + note)
    folder = _folder_name(ev, ("move_to_folder_name", "folder_name", "folder", "moveToFolderName",
                               "target_folder"), ("moveToFolder",)) or _folder_name(a, (), ("moveToFolder",))
    if folder:
        verbs.append(("Moves " + what if not verbs else "moves it") + " to " + folder)
    if a.flag("permanentDelete"):
        verbs.append(("Permanently deletes " + what) if not verbs else "permanently deletes it")
    elif a.flag("delete"):
        verbs.append(("Deletes " + what) if not verbs else "deletes it")
    if a.flag("markAsRead"):
        verbs.append(("Marks " + what + " as read") if not verbs else "marks it as read")
    if not verbs:
        return None
    sentence = join_words(verbs)
    name = ev.get("rule_name", "display_name", "displayName", "name", "rule.display_name", "rule.displayName")
    extras = []
    if name is not None:
        extras.append(f"rule {q(name)}")
    if ev.flag("hidden", "rule.hidden"):
        extras.append("hidden from Outlook and Graph")
    if ev.get("is_enabled", "isEnabled") is False:
        extras.append("currently disabled")
    out = sentence
    if extras:
        out += " (" + "; ".join(extras) + ")"
    return out + "."


def render_forwarding(detector: str, ev: Ev) -> str | None:
    addr = ev.text("forwarding_smtp_address", "forwardingSmtpAddress", "address", "destination",
                   "forwarding_address_resolved", "forwarding_address", "forwardingAddress")
    if not addr:
        return None
    keep = ev.get("deliver_to_mailbox_and_forward", "deliverToMailboxAndForward")
    copy = " without keeping a copy in the mailbox" if keep is False else ""
    return f"Forwards all mail to {_s(addr)}{_destination_note(ev)}{copy}."


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


def render_oauth(detector: str, ev: Ev) -> str | None:
    app = ev.text("app_display_name", "appDisplayName", "app", "app_name", "client_display_name", "app_id")
    if not app:
        return None
    scopes = ev.items("scopes", "scope", "mail_scopes")
    publisher = ev.text("verified_publisher", "publisher_name", "publisher")
    s = f"Consented to the app {q(app)}"
    s += f" (publisher {_s(publisher)})" if publisher else " (unverified publisher)" if "verified_publisher" in \
        ev.data else ""
    if scopes:
        s += " with " + join_words([_s(x) for x in scopes[:8]])
    if (ev.text("consent_type", "consentType") or "") == "AllPrincipals":
        s += ", on behalf of every user in the tenant"
    return s + "."


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


FAMILIES: list[tuple[tuple[str, ...], Renderer]] = [
    (("rule",), render_rule),
    (("mailbox_forward", "forwarding", "smtp_forward"), render_forwarding),
    (("auth", "mfa", "method", "tap", "temporary_access"), render_auth_method),
    (("role", "admin"), render_role),
    (("oauth", "consent", "grant", "app"), render_oauth),
    (("delegate", "delegation", "permission"), render_delegate),
    (("send", "sending", "spam", "volume", "blocked"), render_sending),
    (("contact", "phone", "other_mail", "profile"), render_contact),
    (("protocol", "legacy"), render_protocols),
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
    explicit = ev.text("summary", "description", "sentence")
    if explicit and isinstance(ev.get("summary", "description", "sentence"), str):
        return explicit
    det = (detector or "").lower()
    for keys, fn in FAMILIES:
        if any(k in det for k in keys):
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
