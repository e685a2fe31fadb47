"""Machine-readable exports of a stored scan: ``findings.json`` (interface.md shape) and ``findings.csv``.

Both are written streaming: accounts are read from SQLite in pages and written one JSON object at a time, so a
100,000-account tenant never sits in memory as one big document.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detectors.engine import manual_fix
from reports.evidence import evidence_text
from reports.text import reveal
from scanner.store import Store

# Spreadsheet apps treat a cell starting with one of these as a formula (CSV injection, OWASP). Full-width forms are
# included because some spreadsheet apps normalise them before parsing.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")

CSV_COLUMNS = (
    "id", "account", "detector", "technique", "severity", "title", "summary", "evidence", "new_since_last_scan",
    "status", "suppressed", "score", "first_seen", "remediation", "tenant_level", "manual_fix",
)


def neutralise_cell(value: Any) -> str:
    """A CSV cell that no spreadsheet evaluates: a leading formula character is prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def iter_account_rows(store: Store, scan_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
    """Every scanned account of the scan as ``{"userPrincipalName", "verdict", "score", ...}``, streamed in upn
    order (docs/interface.md: plus ``privileged``, ``coverage_gaps`` and ``reasons``, why the verdict)."""
    # Store.accounts() builds the whole list; at 100k accounts this cursor keeps memory flat.
    cur = store.db.execute(
        "select upn, verdict, score, privileged, has_gaps, reasons from accounts where scan_id = ? order by upn",
        [scan_id])
    while True:
        rows = cur.fetchmany(page)
        if not rows:
            return
        for upn, verdict, score, privileged, has_gaps, reasons in rows:
            yield {"userPrincipalName": upn, "verdict": verdict or "clean", "score": int(score or 0),
                   "privileged": bool(privileged), "coverage_gaps": bool(has_gaps),
                   "reasons": [str(r) for r in json.loads(reasons or "[]")]}


def scan_header(store: Store, scan_id: str) -> dict[str, Any]:
    """The ``scan`` object of findings.json."""
    scan = store.scan(scan_id)
    tenant = json.loads(scan["tenant"]) if scan.get("tenant") else {}
    errors = [{"account": e.get("upn"), "collector": e.get("collector"), "message": e.get("message") or "",
               "code": e.get("code"), "permission": e.get("permission")} for e in store.errors(scan_id)]
    return {
        "id": scan["id"],
        "started": scan["started"],
        "finished": scan["finished"],
        "tenant_id": scan["tenant_id"],
        # The stored account rows are the truth (the scan row's count is only set when the scan finishes).
        "accounts_scanned": int(store.db.execute("select count(*) from accounts where scan_id = ?",
                                                 [scan_id]).fetchone()[0]),
        "errors": errors,
        "status": scan.get("status"),
        "label": scan.get("label") or None,
        "tenant_name": tenant.get("display_name"),
        "previous_scan_id": store.previous_scan_id(scan_id),
    }


def finding_json(f: dict[str, Any], tenant_level: bool = False) -> dict[str, Any]:
    """One stored finding in the findings.json shape (required keys first, additive keys after).

    ``tenant_level``: the finding is about a tenant object (``account`` is a pseudo-account such as
    ``serviceprincipal:<displayName> (<appId>)``), not a scanned account; it stays in ``findings`` and never gets an
    ``accounts`` row.
    """
    return {
        "id": f["id"],
        "account": f["account"],
        "detector": f["detector"],
        "technique": f["technique"],
        "severity": f["severity"],
        "title": f["title"],
        "evidence": f.get("evidence") or {},
        "new_since_last_scan": bool(f.get("new_since_last_scan")),
        "status": f.get("status") or "active",
        "suppressed": f.get("suppressed"),
        "score": int(f.get("score") or 0),
        "remediation": list(f.get("remediation") or []),
        "first_seen": f.get("first_seen"),
        "summary": evidence_text(f["detector"], f.get("evidence") or {}),
        "tenant_level": tenant_level,
        # tenant-level findings: no m365sweep step acts on a tenant object; this says how to fix it by hand
        "manual_fix": manual_fix(f["detector"]) if tenant_level else None,
    }


def scanned_upns(store: Store, scan_id: str) -> set[str]:
    """Lower-cased UPNs of the scan's account rows (what tells a pseudo-account finding from an account's)."""
    return {str(u).lower() for (u,) in store.db.execute("select upn from accounts where scan_id = ?", [scan_id])}


def write_json(store: Store, scan_id: str, path: Path, findings: list[dict[str, Any]] | None = None) -> Path:
    findings = store.findings(scan_id) if findings is None else findings
    header = scan_header(store, scan_id)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write('{"scan": ')
        header_json = json.dumps(header, ensure_ascii=False, default=str)
        fh.write(header_json)
        fh.write(',\n"accounts": [')
        upns: set[str] = set()
        for i, acc in enumerate(iter_account_rows(store, scan_id)):
            upns.add(acc["userPrincipalName"].lower())
            fh.write(("\n" if i == 0 else ",\n") + json.dumps(acc, ensure_ascii=False))
        fh.write('\n],\n"findings": [')
        for i, f in enumerate(findings):
            row = finding_json(f, tenant_level=str(f["account"]).lower() not in upns)
            fh.write(("\n" if i == 0 else ",\n") + json.dumps(row, ensure_ascii=False, default=str))
        fh.write("\n]}\n")
    tmp.replace(path)
    return path


def write_csv(store: Store, scan_id: str, path: Path, findings: list[dict[str, Any]] | None = None) -> Path:
    findings = store.findings(scan_id) if findings is None else findings
    upns = scanned_upns(store, scan_id)
    tmp = path.with_name(path.name + ".tmp")
    # Plain UTF-8 with no byte-order mark: scripts and SIEM pipelines read the header as "id", not "\ufeffid" (a BOM
    # only helps Excel's double-click; Excel's Data > From Text/CSV reads UTF-8 as such).
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        w.writerow(CSV_COLUMNS)
        for f in findings:
            row = finding_json(f, tenant_level=str(f["account"]).lower() not in upns)
            row["account"] = reveal(row["account"])  # a pseudo-account label carries an app's display name
            # Invisible / bidi characters shown as markers: a spreadsheet cell must read as what it is.
            row["evidence"] = reveal(json.dumps(row["evidence"], ensure_ascii=False, sort_keys=True, default=str))
            row["title"] = reveal(row["title"])
            row["suppressed"] = reveal(row["suppressed"]) if row["suppressed"] else None
            row["remediation"] = " ".join(row["remediation"])
            w.writerow([neutralise_cell(row.get(c)) for c in CSV_COLUMNS])
    tmp.replace(path)
    return path
