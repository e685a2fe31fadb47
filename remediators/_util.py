"""Helpers shared by the steps: Exchange's loose types, and which artefacts the account's findings name.

Findings come from ``store.findings(scan_id, upn)``; detectors put the ids of what they saw in ``evidence``. The key
names are read liberally (``rule_id`` / ``ruleId`` / ``rule: {id: …}`` / lists of them) so a detector's choice of
spelling does not silently turn a remediation into a no-op. Suppressed (allow-listed) findings never drive a step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

# Exchange's loosely typed values (string booleans, single values for lists) are read the same way as the scanner's.
from scanner.collectors._util import as_bool, as_list  # noqa: F401 - re-exported for the steps


def strip_smtp(value: Any) -> str | None:
    """ForwardingSmtpAddress reads back in ProxyAddress form ("smtp:user@domain")."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    return text or None


def seg(value: str) -> str:
    """A URL path segment (ids are opaque: rule ids end in '=', FIDO ids contain '-' and '_')."""
    return quote(str(value), safe="@")


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def active_findings(findings: Sequence[Mapping[str, Any]], step: str) -> list[Mapping[str, Any]]:
    """Findings that name ``step`` in their remediation and are not suppressed by the allow-list."""
    return [f for f in findings if not f.get("suppressed") and step in (f.get("remediation") or [])]


def _walk(obj: Any, parent: str = "") -> Iterator[tuple[str, str, Any]]:
    """(parent key, key, value) for every key in nested dicts/lists, keys normalised."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            nk = _norm(str(k))
            yield parent, nk, v
            yield from _walk(v, nk)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _walk(v, parent)


def evidence_ids(findings: Iterable[Mapping[str, Any]], *, direct: set[str], containers: set[str]) -> list[str]:
    """Ids named by evidence: values of any key in ``direct`` (str or list), or ``id`` inside a ``containers`` dict."""
    out: list[str] = []
    for f in findings:
        for parent, key, value in _walk(f.get("evidence") or {}):
            if key in direct or (key == "id" and parent in containers):
                for v in as_list(value):
                    if isinstance(v, str | int) and str(v) not in out:
                        out.append(str(v))
    return out


def evidence_dicts(findings: Iterable[Mapping[str, Any]], containers: set[str]) -> list[Mapping[str, Any]]:
    """Dicts found under any key in ``containers`` (or the evidence itself when it has the fields)."""
    out: list[Mapping[str, Any]] = []
    for f in findings:
        ev = f.get("evidence") or {}
        out.append(ev)
        for _parent, key, value in _walk(ev):
            if key in containers:
                for v in as_list(value):
                    if isinstance(v, Mapping):
                        out.append(v)
    return out


def get_norm(d: Mapping[str, Any], *names: str) -> Any:
    wanted = {_norm(n) for n in names}
    for k, v in d.items():
        if _norm(str(k)) in wanted and v not in (None, ""):
            return v
    return None
