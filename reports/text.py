"""Making attacker-controlled tenant strings legible and inert.

Rule names, display names and addresses come from the tenant, so an attacker chooses them. HTML escaping (jinja2
autoescape) makes them inert; this module makes them *legible*: characters that are invisible or reorder text
(zero-width spaces, bidi overrides such as U+202E, control characters, odd blanks) are shown as visible markers like
``⟦U+202E⟧`` so a rule named ``"\u202etxt.exe"`` or ``"\u200b"`` cannot pass for something else (Permiso
"Inboxfuscation").

Detectors already write some evidence through ``detectors._text.visible``, which turns an invisible character into
the *text* ``<U+200B>``. That textual form is recognised here too (only for code points that really are invisible, so
a literal ``<U+0041>`` stays text): whether the report receives the raw character or the detector's rendering, it
shows the same ``⟦U+200B⟧`` marker, in HTML and in CSV/JSON alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

# Blank-looking code points outside the Cf/Zs/Cc categories (Hangul fillers, braille blank, Mongolian vowel
# separator, combining grapheme joiner, Khmer inherent vowels).
_BLANKS = {0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x180E, 0x034F, 0x17B4, 0x17B5}
# detectors._text.visible() writes an invisible character as "<U+200B>"; 4 to 6 hex digits (tag characters: U+E0041).
_TEXT_MARK = re.compile(r"<U\+([0-9A-Fa-f]{4,6})>")


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


def _textual_hidden(m: re.Match[str]) -> str | None:
    """The invisible character a ``<U+XXXX>`` text stands for, or None when it names a visible one."""
    cp = int(m.group(1), 16)
    if cp > 0x10FFFF:
        return None
    ch = chr(cp)
    return ch if is_hidden_char(ch) else None


def _plain(text: str) -> bool:
    """Nothing to mark: the common case, and the only one at 100k-account scale."""
    return text.isascii() and text.isprintable() and "<U+" not in text and "<u+" not in text


def _pieces(text: str) -> list[tuple[str, bool]]:
    """(run, hidden) pieces: plain runs, and markers for raw invisible characters and their ``<U+XXXX>`` text."""
    out: list[tuple[str, bool]] = []
    buf: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        hidden: str | None = None
        width = 1
        if ch == "<" and text.startswith(("<U+", "<u+"), i):
            m = _TEXT_MARK.match(text, i)
            if m:
                hidden = _textual_hidden(m)
                width = m.end() - i
        elif is_hidden_char(ch):
            hidden = ch
        if hidden is None:
            buf.append(ch)
            i += 1
            continue
        if buf:
            out.append(("".join(buf), False))
            buf = []
        out.append((marker(hidden), True))
        i += width
    if buf:
        out.append(("".join(buf), False))
    return out


def segments(value: object) -> list[Segment]:
    """Split a string into plain runs and markers for invisible characters (for templates)."""
    text = "" if value is None else str(value)
    if _plain(text):
        return [Segment(text, False)] if text else []
    return [Segment(t, h) for t, h in _pieces(text)]


def reveal(value: object) -> str:
    """The string with every invisible/bidi character (raw, or as the detectors' ``<U+XXXX>`` text) replaced by a
    visible ``⟦U+XXXX⟧`` marker."""
    text = "" if value is None else str(value)
    if _plain(text):
        return text
    return "".join(t for t, _ in _pieces(text))


def strip_hidden(value: object) -> str:
    """The string without invisible characters or their ``<U+XXXX>`` text (for search: "invoice" finds
    "in<U+200B>voice")."""
    text = "" if value is None else str(value)
    if _plain(text):
        return text
    return "".join(t for t, h in _pieces(text) if not h)


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
