"""Making attacker-controlled tenant strings legible and inert.

Rule names, display names and addresses come from the tenant, so an attacker chooses them. HTML escaping (jinja2
autoescape) makes them inert; this module makes them *legible*: characters that are invisible or reorder text
(zero-width spaces, bidi overrides such as U+202E, control characters, odd blanks) are shown as visible markers like
``⟦U+202E⟧`` so a rule named ``"\u202etxt.exe"`` or ``"\u200b"`` cannot pass for something else (Permiso
"Inboxfuscation").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

# Blank-looking code points outside the Cf/Zs/Cc categories.
_BLANKS = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E, 0x034F}


def is_hidden_char(ch: str) -> bool:
    cp = ord(ch)
    if ch == " ":
        return False
    if cp in _BLANKS or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0xE0000 <= cp <= 0xE007F:
        return True  # variation selectors and tag characters render as nothing
    cat = unicodedata.category(ch)
    # Cf: format (ZWSP, ZWJ, LRM/RLM, LRE..RLO, LRI..PDI, BOM, soft hyphen); Cc: controls (incl. NUL, tab, newline);
    # Zs other than the ASCII space (NBSP, en/em spaces ...), line/paragraph separators; unassigned and private use.
    return cat in ("Cf", "Cc", "Zs", "Zl", "Zp", "Co", "Cn", "Cs")


def marker(ch: str) -> str:
    return f"⟦U+{ord(ch):04X}⟧"


@dataclass(frozen=True)
class Segment:
    text: str
    hidden: bool  # True: a marker standing for an invisible character


def segments(value: object) -> list[Segment]:
    """Split a string into plain runs and markers for invisible characters (for templates)."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():  # the common case, and the only one at 100k-account scale
        return [Segment(text, False)] if text else []
    out: list[Segment] = []
    buf: list[str] = []
    for ch in text:
        if is_hidden_char(ch):
            if buf:
                out.append(Segment("".join(buf), False))
                buf = []
            out.append(Segment(marker(ch), True))
        else:
            buf.append(ch)
    if buf:
        out.append(Segment("".join(buf), False))
    return out


def reveal(value: object) -> str:
    """The string with every invisible/bidi character replaced by a visible ``⟦U+XXXX⟧`` marker."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(marker(ch) if is_hidden_char(ch) else ch for ch in text)


def has_hidden(value: object) -> bool:
    return any(is_hidden_char(ch) for ch in ("" if value is None else str(value)))


def safe_url(value: object) -> str | None:
    """The URL when it is a plain http(s) URL with a host, else None (never ``javascript:``, ``data:`` …)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if has_hidden(url) or any(c in url for c in "<>\"'`\\ "):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


_TECHNIQUE = re.compile(r"^T(\d{4})(?:\.(\d{3}))?$")


def attack_url(technique: object) -> str | None:
    """The MITRE ATT&CK page of a validated technique id (``T1114.003`` → …/techniques/T1114/003/), else None.

    Built only from the digits the pattern captured, never from the raw string.
    """
    if not isinstance(technique, str):
        return None
    m = _TECHNIQUE.match(technique.strip())
    if not m:
        return None
    base, sub = m.groups()
    return f"https://attack.mitre.org/techniques/T{base}/{sub}/" if sub else f"https://attack.mitre.org/techniques/T{base}/"
