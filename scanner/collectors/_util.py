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


# Exchange's JSON serializer can print a date as "/Date(1733277600000)/" or "/Date(1733277600000+0000)/" (ms since epoch).
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
# An Exchange RBAC miss can come back as "the term 'Get-X' is not recognized as a name of a cmdlet" (the cmdlet is not
# in the session the app's roles build), not only as a 403.
_NOT_IN_ROLE = re.compile(r"CommandNotFoundException|is not recognized as (?:the |a )?name of a cmdlet", re.I)


def parse_dt(value: Any) -> datetime | None:
    """An ISO-8601 / RFC 3339 timestamp (Graph, Exchange) or Exchange's ``/Date(ms)/`` form, as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    m = _MS_DATE.match(text)
    if m:
        return datetime.fromtimestamp(int(m.group(1)) / 1000, UTC)
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


def iso(value: Any) -> str | None:
    """:func:`parse_dt` as an ISO-8601 string (None when it is not a date)."""
    d = parse_dt(value)
    return d.isoformat() if d else None


def as_int(value: Any) -> int | None:
    """An Exchange integer that may arrive as a number, a float or a string (with a typographic minus)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(str(value).strip().replace("\u2212", "-"))
    except ValueError:
        return None


def recipient_values(value: Any) -> list[str]:
    """A multi-valued recipient property (``"Name" [SMTP:addr]``, bare addresses or names, dicts) as strings: the SMTP
    address where one can be read, else the name; duplicates dropped."""
    out: list[str] = []
    for item in as_list(value):
        name, address = parse_recipient(item)
        v = address or name
        if v and v not in out:
            out.append(v)
    return out


def is_exchange_refusal(err: ApiError) -> bool:
    """An Exchange cmdlet the app may not run: a 403, or the cmdlet missing from the session its RBAC roles build."""
    return err.is_permission or bool(_NOT_IN_ROLE.search(err.message or ""))


def exchange_refusal_gap(cmdlet: str, err: ApiError, role: str, consequence: str = "") -> NotCollected | None:
    """The coverage gap for an Exchange cmdlet the app may not run (:func:`is_exchange_refusal`), naming the role it
    needs; None when the failure is something else."""
    if not is_exchange_refusal(err):
        return None
    return NotCollected(
        reason=f"access denied to {cmdlet}; the app needs Exchange.ManageAsApp and {role} ({err.short()})"
               + (f". {consequence}" if consequence else ""),
        code=err.code or (str(err.status) if err.status else None),
        permission=f"Exchange.ManageAsApp + {role}")


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
