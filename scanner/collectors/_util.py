"""Helpers shared by collectors: turning API failures into NotCollected reasons, coercing Exchange's loose types."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from scanner.graph.client import ApiError, BatchResult
from scanner.permissions import least
from scanner.snapshot import NotCollected

# Licence errors: the tenant lacks Entra ID P1/P2; the source does not exist there (not a permission problem).
LICENCE_CODES = frozenset({"Authentication_RequestFromNonPremiumTenantOrB2CTenant", "AadPremiumLicenseRequired",
                           "Authentication_RequestFromUnsupportedUserRole"})


def gap(err: ApiError, collector: str, *, service: str | None = None) -> NotCollected:
    """A NotCollected for a failed read; names the missing permission on 403."""
    if err.code in LICENCE_CODES:
        return NotCollected(reason=f"not available in this tenant (licence): {err.message}", code=err.code)
    if err.is_permission:
        svc = service or err.service
        perm = least(collector, "exchange" if svc == "exchange" else "graph")
        return NotCollected(reason=f"access denied; the app needs {perm}" if perm else "access denied",
                            code=err.code or str(err.status), permission=perm or None)
    return NotCollected(reason=err.short(), code=err.code or (str(err.status) if err.status else None))


def batch_error(res: BatchResult, path: str) -> ApiError:
    return res.error(path)


def no_mailbox() -> NotCollected:
    return NotCollected(reason="the account has no Exchange Online mailbox", code="no_mailbox", not_applicable=True)


def as_bool(value: Any) -> bool | None:
    """Exchange returns some booleans as strings ("False"), graph-api.md §3.2."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "$true"):
        return True
    if text in ("false", "0", "no", "$false", ""):
        return False
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None and v != ""]
    if isinstance(value, str) and not value.strip():
        return []
    return [value]


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    # Graph sends up to 7 fractional digits; fromisoformat accepts at most 6 before Python 3.11's relaxed parser.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    if text[-1:] in ("Z", "z"):  # RFC 3339 allows a lowercase "z"
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


_SMTP_IN_BRACKETS = re.compile(r"\[\s*smtp:([^\]\s]+)\s*\]", re.I)
_ADDRESS = re.compile(r"[^\s<>\"'\[\]:;,]+@[^\s<>\"'\[\]:;,]+")
# A recipient of the organisation as Get-InboxRule prints it: '"Name" [EX:/o=ExchangeLabs/.../cn=Recipients/cn=…]'
# (its legacyExchangeDN; X500 for one carried over from on-premises), or the bare DN.
_DN_IN_BRACKETS = re.compile(r"\[\s*(?:ex|x500):(/o=[^\]]*?)\s*\]\s*$", re.I)


def strip_smtp(value: Any) -> str | None:
    """``"smtp:attacker@evil.example"`` -> ``"attacker@evil.example"`` (ForwardingSmtpAddress reads back prefixed)."""
    text = as_str(value)
    if text is None:
        return None
    if text.lower().startswith("smtp:"):
        text = text[5:]
    return text.strip() or None


def legacy_dn(value: Any) -> str | None:
    """The legacyExchangeDN in an Exchange recipient string (``"Name" [EX:/o=…]``, ``EX:/o=…``, ``/o=…``), else None."""
    text = as_str(value) if not isinstance(value, dict) else None
    if text is None:
        return None
    m = _DN_IN_BRACKETS.search(text)
    if m:
        return m.group(1)
    bare = re.sub(r"^(?:ex|x500):", "", text.strip('"').strip(), flags=re.I)
    return bare if bare.lower().startswith("/o=") else None


def parse_recipient(value: Any) -> tuple[str | None, str | None]:
    """(name, address) from an Exchange recipient string: ``"Name" [SMTP:addr]``, ``addr``, ``Name``, or a dict.

    A recipient of the organisation named by its legacyExchangeDN (``"Name" [EX:/o=…]``) has no address here: its
    display name comes back, and :func:`legacy_dn` gives the DN to look the mailbox up by."""
    if isinstance(value, dict):
        ea = value.get("emailAddress") if isinstance(value.get("emailAddress"), dict) else value
        return as_str(ea.get("name") or ea.get("Name") or ea.get("DisplayName")), \
            as_str(ea.get("address") or ea.get("Address") or ea.get("PrimarySmtpAddress"))
    text = as_str(value)
    if text is None:
        return None, None
    m = _SMTP_IN_BRACKETS.search(text)
    if m:
        name = text[: m.start()].strip().strip('"').strip() or None
        return name, m.group(1)
    m = _DN_IN_BRACKETS.search(text)
    if m:
        return text[: m.start()].strip().strip('"').strip() or None, None
    if legacy_dn(text):
        return None, None
    if text.lower().startswith("smtp:"):
        return None, text[5:].strip()
    m = _ADDRESS.fullmatch(text.strip('"').strip())
    if m:
        return None, m.group(0)
    return text.strip('"'), None
