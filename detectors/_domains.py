"""Address and domain classification: internal / partner / freemail / lookalike / external (detections.md §0.3-0.4).

*Internal* is exact: the domain equals a tenant (accepted) domain or is a dot-separated subdomain of one — never a
string suffix (``hr-contoso.com`` and ``mycontoso.com`` end with ``contoso.com`` and are *not* internal).
*Look-alike* is judged on the registrable domain (a small built-in public-suffix list covers ``co.uk``, ``com.au`` …)
after homoglyph folding: the tenant's brand label contained in it or within Damerau-Levenshtein distance 2 (1 for short
brands). A brand inside a subdomain of a known SaaS vendor (``contoso.zendesk.com``) is not a look-alike; the tenant's
full domain used as a prefix of a foreign host (``contoso.com-secure.net``, ``contoso.com.evil.net``) is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from detectors._model import AllowEntry, Allowlist
from detectors._text import fold, norm, strip_invisible

# Multi-label public suffixes (a deliberately small list; single-label TLDs need no entry).
MULTI_SUFFIXES = frozenset("""
co.uk org.uk me.uk ltd.uk plc.uk ac.uk gov.uk net.uk sch.uk nhs.uk
com.au net.au org.au edu.au gov.au asn.au id.au
co.nz org.nz net.nz govt.nz ac.nz
co.jp ne.jp or.jp ac.jp go.jp
co.za org.za gov.za
com.br net.br org.br gov.br
com.mx org.mx gob.mx
co.in net.in org.in firm.in gen.in ind.in
com.cn net.cn org.cn gov.cn
com.sg edu.sg gov.sg com.hk org.hk com.tw org.tw com.my com.ph com.vn co.th or.th co.id or.id
com.tr org.tr gen.tr com.ar com.co com.pe com.ve com.ec com.uy com.py
co.il org.il ac.il co.kr or.kr com.sa com.eg com.ng com.pk co.ke
com.es nom.es org.es com.pl net.pl org.pl com.pt com.ua co.at or.at ac.at
""".split())

FREEMAIL = frozenset("""
gmail.com googlemail.com outlook.com hotmail.com live.com msn.com passport.com windowslive.com
yahoo.com ymail.com rocketmail.com aol.com aim.com icloud.com me.com mac.com
proton.me protonmail.com protonmail.ch pm.me tutanota.com tutanota.de tuta.io tutamail.com
gmx.com gmx.net gmx.de gmx.at gmx.ch web.de t-online.de freenet.de mail.com email.com
yandex.com yandex.ru ya.ru mail.ru inbox.ru list.ru bk.ru rambler.ru
zoho.com zohomail.com fastmail.com fastmail.fm hushmail.com mailfence.com runbox.com posteo.de
qq.com 163.com 126.com sina.com yeah.net 139.com naver.com daum.net hanmail.net
rediffmail.com seznam.cz wp.pl o2.pl interia.pl libero.it virgilio.it laposte.net orange.fr free.fr sfr.fr
btinternet.com sky.com virginmedia.com comcast.net verizon.net att.net sbcglobal.net cox.net
guerrillamail.com mailinator.com sharklasers.com 10minutemail.com temp-mail.org yopmail.com cock.li
""".split())
# Brands whose every country domain is free-mail (hotmail.co.uk, yahoo.fr, outlook.de ...).
FREEMAIL_LABELS = frozenset({"hotmail", "outlook", "live", "yahoo", "gmx", "yandex", "aol", "gmail", "protonmail"})

# SaaS vendors whose customer subdomains carry the customer's brand (support@contoso.zendesk.com).
SAAS_VENDORS = frozenset("""
zendesk.com freshdesk.com freshservice.com salesforce.com force.com my.salesforce.com service-now.com servicenow.com
atlassian.net atlassian.com jira.com slack.com hubspot.com hs-inbox.com helpscoutapp.com helpscout.net intercom.io
intercom-mail.com desk.com kayako.com happyfox.com zohodesk.com zoho.com sharepoint.com onmicrosoft.com
office365.com outlook.office365.com dynamics.com crm.dynamics.com mailchimp.com mandrillapp.com sendgrid.net
amazonses.com docusign.net box.com dropbox.com workday.com myworkday.com bamboohr.com greenhouse.io lever.co
smartsheet.com monday.com asana.com trello.com github.com gitlab.com pagerduty.com opsgenie.com statuspage.io
efax.com myfax.com ringcentral.com 8x8.com twilio.com
""".split())

_ADDR_RE = re.compile(r"[^\s<>\"']+@[^\s<>\"']+")


def address_of(value: object) -> str | None:
    """An SMTP address from a Graph recipient dict, an ``smtp:`` string, or a bare address; lower case."""
    if isinstance(value, dict):
        ea = value.get("emailAddress") if isinstance(value.get("emailAddress"), dict) else value
        raw = ea.get("address") if isinstance(ea, dict) else None
        if not isinstance(raw, str) or not raw:
            name = ea.get("name") if isinstance(ea, dict) else None
            raw = name if isinstance(name, str) else None
        if not raw:
            return None
        value = raw
    if not isinstance(value, str):
        return None
    s = strip_invisible(value).strip()
    if s.lower().startswith("smtp:"):
        s = s[5:]
    m = _ADDR_RE.search(s)
    if not m:
        return None
    return m.group(0).strip(".,;").lower()


def domain_of(address: str) -> str:
    host = address.rsplit("@", 1)[-1].strip().strip(".").lower()
    return _idna_decode(host)


def _idna_decode(host: str) -> str:
    labels = []
    for label in host.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def registrable_domain(host: str) -> str:
    labels = [x for x in host.lower().strip(".").split(".") if x]
    if len(labels) <= 2:
        return ".".join(labels)
    if ".".join(labels[-2:]) in MULTI_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def registrable_label(host: str) -> str:
    """The registrable domain without its public suffix: ``contoso`` for ``mail.contoso.co.uk``."""
    reg = registrable_domain(host)
    labels = reg.split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in MULTI_SUFFIXES:
        return labels[0]
    return labels[0] if labels else ""


def is_internal(domain: str, tenant_domains: Iterable[str]) -> bool:
    d = domain.lower().strip(".")
    for t in tenant_domains:
        t = t.lower().strip(".")
        if t and (d == t or d.endswith("." + t)):
            return True
    return False


def _is_under(domain: str, parent: str) -> bool:
    parent = parent.lower().strip(".").lstrip("@")
    return bool(parent) and (domain == parent or domain.endswith("." + parent))


def is_freemail(domain: str) -> bool:
    reg = registrable_domain(domain)
    return reg in FREEMAIL or domain in FREEMAIL or registrable_label(domain) in FREEMAIL_LABELS


def is_saas_vendor(domain: str) -> bool:
    return any(_is_under(domain, v) for v in SAAS_VENDORS)


def brands(tenant_domains: Iterable[str]) -> tuple[str, ...]:
    """Brand tokens of the tenant: registrable labels of its domains (the onmicrosoft.com label included)."""
    out: list[str] = []
    for d in tenant_domains:
        d = d.lower().strip(".")
        if d.endswith(".onmicrosoft.com") or d.endswith(".mail.onmicrosoft.com"):
            label = d.split(".")[0]
        else:
            label = registrable_label(d)
        label = fold(label)
        if len(label) >= 4 and label not in out:
            out.append(label)
    return tuple(out)


def damerau(a: str, b: str, limit: int = 3) -> int:
    """Optimal-string-alignment distance, early exit above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def lookalike_of(domain: str, tenant_domains: Iterable[str]) -> str | None:
    """The tenant domain ``domain`` imitates, or None. ``domain`` must already be known not to be internal."""
    tenant_domains = tuple(tenant_domains)
    host = domain.lower().strip(".")
    reg = registrable_domain(host)
    if is_saas_vendor(host) or is_freemail(host):
        return None
    # The tenant's full domain used as the start of a foreign host: contoso.com-secure.net, contoso.com.evil.net.
    for t in tenant_domains:
        t = t.lower()
        if t.endswith(".onmicrosoft.com"):
            continue
        if host.startswith(t + "-") or host.startswith(t + "."):
            return t
    label = fold(registrable_label(reg)) if reg else ""
    if not label:
        return None
    squashed = label.replace("-", "")
    for t in tenant_domains:
        for brand in brands((t,)):
            if brand in squashed or brand in label:
                return t
            limit = 2 if len(brand) >= 6 else 1
            if damerau(label, brand, limit) <= limit or damerau(squashed, brand, limit) <= limit:
                return t
    return None


@dataclass(frozen=True)
class DomainVerdict:
    address: str
    domain: str
    domain_class: str  # internal | partner | freemail | lookalike | external
    lookalike_of: str | None = None
    allow_entry: AllowEntry | None = None

    @property
    def external(self) -> bool:
        return self.domain_class != "internal"

    def evidence(self) -> dict[str, object]:
        out: dict[str, object] = {"destination": self.address, "domain": self.domain, "domain_class": self.domain_class}
        if self.lookalike_of:
            out["lookalike_of"] = self.lookalike_of
        if self.allow_entry is not None:
            out["allowlisted"] = self.allow_entry.value
            if self.allow_entry.reason:
                out["allowlist_reason"] = self.allow_entry.reason
        return out


def allow_match(entries: tuple[AllowEntry, ...], value: str, now: datetime, *, domain: bool = False) -> AllowEntry | None:
    v = norm(value)
    for e in entries:
        if e.expires is not None and e.expires <= now:
            continue
        ev = norm(e.value).lstrip("@")
        if v == ev or (domain and _is_under(v, ev)):
            return e
    return None


def classify(address: str, tenant_domains: Iterable[str], allowlist: Allowlist | None = None,
             now: datetime | None = None) -> DomainVerdict:
    tenant_domains = tuple(d.lower() for d in tenant_domains)
    addr = address.lower()
    dom = domain_of(addr)
    if is_internal(dom, tenant_domains):
        return DomainVerdict(addr, dom, "internal")
    entry = None
    if allowlist is not None and now is not None:
        entry = allow_match(allowlist.forwarding_addresses, addr, now) or allow_match(
            allowlist.forwarding_domains, dom, now, domain=True)
    if entry is not None:
        return DomainVerdict(addr, dom, "partner", allow_entry=entry)
    look = lookalike_of(dom, tenant_domains)
    if look:
        return DomainVerdict(addr, dom, "lookalike", lookalike_of=look)
    if is_freemail(dom):
        return DomainVerdict(addr, dom, "freemail")
    return DomainVerdict(addr, dom, "external")


def mailbox_forward_addresses(fwd: object | None) -> list[str]:
    """The normalised destinations of a mailbox's forwarding (ForwardingSmtpAddress, resolved ForwardingAddress)."""
    if fwd is None:
        return []
    out: list[str] = []
    for raw in (getattr(fwd, "forwarding_smtp_address", None), getattr(fwd, "forwarding_address_resolved", None)):
        a = address_of(raw or "")
        if a and a not in out:
            out.append(a)
    return out


def external_mailbox_forwards(fwd: object | None, tenant_domains: Iterable[str], allowlist: Allowlist | None = None,
                              now: datetime | None = None) -> list[DomainVerdict]:
    """Mailbox forwarding destinations outside the tenant and not an allow-listed partner."""
    verdicts = (classify(a, tenant_domains, allowlist, now) for a in mailbox_forward_addresses(fwd))
    return [dv for dv in verdicts if dv.external and dv.domain_class != "partner"]
