"""String normalisation for keyword and name tests (detections.md §0.8).

Tenant strings are attacker-controlled and Permiso's "Inboxfuscation" research shows rules whose keywords read
differently from how they execute: NFKC, zero-width / bidi / variation-selector stripping, homoglyph folding and case
folding happen before any keyword or name comparison. ``visible()`` renders a string for evidence so an invisible
character is shown as ``<U+200B>`` instead of vanishing in a report.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Characters that render as nothing (or reorder text) but survive in rule conditions.
INVISIBLE = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010))  # zero-width space/joiners, LRM/RLM
    + list(range(0x202A, 0x202F))  # bidi embeddings/overrides
    + list(range(0x2060, 0x2070))  # word joiner, invisible operators, bidi isolates
    + list(range(0xFE00, 0xFE10))  # variation selectors
    + list(range(0xE0000, 0xE0080))  # tag characters
)

# Cyrillic / Greek letters that look like Latin ones, plus digit substitutions. Applied to both sides of a comparison.
_CHAR_FOLD = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "к": "k", "м": "m", "т": "t",
    "н": "h", "в": "b", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ո": "n", "ս": "u",
    "α": "a", "ο": "o", "ρ": "p", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "χ": "x", "υ": "u",
    "0": "o", "1": "l", "i": "l", "|": "l", "3": "e", "5": "s", "$": "s", "@": "a",
}
_SEQ_FOLD = (("rn", "m"), ("vv", "w"))


def _char_class(codes: frozenset[int]) -> str:
    return "".join(re.escape(chr(c)) for c in sorted(codes))


# One character class instead of a Python loop per character (detection runs these on every rule, folder and name of
# every mailbox). Control characters are Unicode category Cc: U+0000-U+001F and U+007F-U+009F.
_CONTROL = frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0xA0))
_HIDDEN_RE = re.compile(f"[{_char_class(INVISIBLE | (_CONTROL - {0x09, 0x0A, 0x0D}))}]")
_SHOWN_AS_CODE_RE = re.compile(f"[{_char_class(INVISIBLE | _CONTROL)}]")


def strip_invisible(s: str) -> str:
    return _HIDDEN_RE.sub("", s)


def has_invisible(s: str) -> bool:
    return _HIDDEN_RE.search(s) is not None


def has_mixed_script(s: str) -> bool:
    """Latin text containing Cyrillic/Greek letters (a classic homoglyph trick in keywords and names)."""
    scripts = set()
    for ch in s:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts.add(name.split(" ")[0])
    return "LATIN" in scripts and bool(scripts & {"CYRILLIC", "GREEK"})


@lru_cache(maxsize=65536)  # the same folder, rule and domain names recur across thousands of mailboxes
def norm(s: str) -> str:
    """NFKC, invisible characters removed, whitespace collapsed, case-folded (no homoglyph folding)."""
    s = unicodedata.normalize("NFKC", s)
    s = strip_invisible(s)
    return re.sub(r"\s+", " ", s).strip().casefold()


@lru_cache(maxsize=65536)
def fold(s: str) -> str:
    """``norm`` plus homoglyph folding: for comparing a string against a brand or a keyword list."""
    s = norm(s)
    s = "".join(_CHAR_FOLD.get(ch, ch) for ch in s)
    for a, b in _SEQ_FOLD:
        s = s.replace(a, b)
    return s


@lru_cache(maxsize=65536)
def keyword_fold(s: str) -> str:
    """Folding for keyword matching: Cyrillic/Greek look-alikes only (digits stay digits: 'W2', '1099')."""
    s = norm(s)
    return "".join(_CHAR_FOLD.get(ch, ch) if not ch.isascii() else ch for ch in s)


def visible(s: str, limit: int = 200) -> str:
    """Render a tenant string for evidence: invisible and control characters become ``<U+XXXX>``."""
    text = _SHOWN_AS_CODE_RE.sub(lambda m: f"<U+{ord(m.group()):04X}>", s)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def matches_any(text: str, patterns: tuple[re.Pattern[str], ...]) -> list[str]:
    return [p.pattern for p in patterns if p.search(text)]
