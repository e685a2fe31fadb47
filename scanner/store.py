"""SQLite storage (sqlite-utils): scans, per-account snapshots, findings with history, coverage gaps, the journal.

WAL, one writer, UTC ISO-8601 timestamps. Snapshots are stored zlib-compressed (one row per account per scan), so a
scan streams to disk instead of holding the tenant in memory, and a killed scan resumes from what is stored. Schema
changes go through :data:`MIGRATIONS` (``pending()`` is read-only, ``apply()`` idempotent).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from scanner.snapshot import AccountSnapshot


class StoreError(Exception):
    """The database cannot be used (damaged, locked, not ours): a clear one-line message, exit 2."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None = None) -> str:
    return (dt or utcnow()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _m1(db: sqlite_utils.Database) -> None:
    db["scans"].create(
        {
            "id": str, "tenant_id": str, "label": str, "started": str, "finished": str, "status": str,
            "accounts_scanned": int, "stats": str, "options": str, "tenant": str,
        },
        pk="id", if_not_exists=True,
    )
    db["accounts"].create(
        {
            "scan_id": str, "upn": str, "user_id": str, "snapshot": bytes, "verdict": str, "score": int,
            "reasons": str, "privileged": int, "has_gaps": int,
        },
        pk=("scan_id", "upn"), if_not_exists=True,
    )
    db["findings"].create(
        {
            "scan_id": str, "id": str, "upn": str, "detector": str, "technique": str, "severity": int,
            "title": str, "evidence": str, "artefact": str, "suppressed": str, "new_since_last_scan": int,
            "status": str, "score": int, "remediation": str, "first_seen": str,
        },
        pk=("scan_id", "id"), if_not_exists=True,
    )
    db["finding_history"].create(
        {
            "id": str, "upn": str, "detector": str, "artefact": str, "first_seen": str, "last_seen": str,
            "first_scan_id": str, "last_scan_id": str, "resolved": str, "severity": int, "title": str,
        },
        pk="id", if_not_exists=True,
    )
    db["errors"].create(
        {
            "scan_id": str, "upn": str, "collector": str, "message": str, "code": str, "permission": str,
            "time": str,
        },
        if_not_exists=True,
    )
    db["tenant_data"].create({"scan_id": str, "name": str, "data": bytes}, pk=("scan_id", "name"),
                             if_not_exists=True)
    db["journal"].create(
        {
            "seq": int, "action_id": str, "run_id": str, "time": str, "actor": str, "mode": str, "upn": str,
            "step": str, "target": str, "status": str, "before": str, "after": str, "detail": str,
            "scan_id": str,
        },
        pk="seq", if_not_exists=True,
    )
    db["accounts"].create_index(["scan_id", "verdict"], if_not_exists=True)
    db["findings"].create_index(["scan_id", "upn"], if_not_exists=True)
    db["errors"].create_index(["scan_id"], if_not_exists=True)
    db["journal"].create_index(["action_id"], if_not_exists=True)
    db["journal"].create_index(["upn"], if_not_exists=True)


def _m2(db: sqlite_utils.Database) -> None:
    # UPN lookups are case-insensitive; without NOCASE indexes each lookup scans the table (O(n^2) at 100k accounts).
    db.execute("create index if not exists idx_accounts_upn_nocase on accounts (scan_id, upn collate nocase)")
    db.execute("create index if not exists idx_findings_upn_nocase on findings (scan_id, upn collate nocase)")
    db.execute("create index if not exists idx_history_upn on finding_history (upn collate nocase)")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _m1),
    ("0002_upn_nocase_indexes", _m2),
]


def pending(db: sqlite_utils.Database) -> list[str]:
    if "_migrations" not in db.table_names():
        return [name for name, _ in MIGRATIONS]
    done = {r["name"] for r in db["_migrations"].rows}
    return [name for name, _ in MIGRATIONS if name not in done]


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    todo = pending(db)
    if not todo:
        return []
    db["_migrations"].create({"name": str, "applied": str}, pk="name", if_not_exists=True)
    for name, fn in MIGRATIONS:
        if name in todo:
            with db.atomic():
                fn(db)
                db["_migrations"].insert({"name": name, "applied": iso()}, replace=True)
    return todo


def pack(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), 6)


def _finding_row(r: Any) -> dict[str, Any]:
    r = dict(r)
    r["evidence"] = json.loads(r["evidence"] or "{}")
    r["remediation"] = json.loads(r["remediation"] or "[]")
    r["new_since_last_scan"] = bool(r["new_since_last_scan"])
    r["severity"] = _SEV_LABELS[r["severity"]]
    r["account"] = r.pop("upn")
    return r


def unpack(blob: bytes | None) -> str:
    return zlib.decompress(blob).decode("utf-8") if blob else ""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.execute("PRAGMA foreign_keys=ON")
            apply_migrations(self.db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database {self.path} cannot be used: {exc}") from None
        except OSError as exc:
            raise StoreError(f"database {self.path} cannot be opened: {exc.strerror}") from None

    def close(self) -> None:
        self.db.conn.close()

    def transaction(self) -> Any:
        """``with store.transaction():`` — one SQLite transaction (nested ones are savepoints)."""
        return self.db.atomic()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- scans ---------------------------------------------------------------------------------------------------
    def begin_scan(self, tenant_id: str, label: str = "", options: dict[str, Any] | None = None) -> str:
        scan_id = f"{utcnow().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
        self.db["scans"].insert({
            "id": scan_id, "tenant_id": tenant_id, "label": label, "started": iso(), "finished": None,
            "status": "running", "accounts_scanned": 0, "stats": "{}", "options": json.dumps(options or {}),
            "tenant": None,
        })
        return scan_id

    def set_tenant(self, scan_id: str, tenant: dict[str, Any]) -> None:
        self.db["scans"].update(scan_id, {"tenant": json.dumps(tenant)})

    def finish_scan(self, scan_id: str, status: str, stats: dict[str, Any] | None = None) -> None:
        n = self.db.execute("select count(*) from accounts where scan_id = ?", [scan_id]).fetchone()[0]
        self.db["scans"].update(scan_id, {"finished": iso(), "status": status, "accounts_scanned": n,
                                          "stats": json.dumps(stats or {})})

    def scan(self, scan_id: str) -> dict[str, Any]:
        try:
            row = self.db["scans"].get(scan_id)
        except sqlite_utils.db.NotFoundError:
            raise StoreError(f"no scan with id {scan_id!r} in {self.path}") from None
        return dict(row)

    def scans(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        where, args = ("tenant_id = ?", [tenant_id]) if tenant_id else (None, None)
        return [dict(r) for r in self.db["scans"].rows_where(where, args, order_by="started")]

    def latest_scan_id(self, *, complete_only: bool = True) -> str | None:
        sql = "select id from scans where finished is not null order by started desc limit 1" if complete_only \
            else "select id from scans order by started desc limit 1"
        row = self.db.execute(sql).fetchone()
        return row[0] if row else None

    def previous_scan_id(self, scan_id: str) -> str | None:
        """The last finished scan of the same tenant that started before ``scan_id``."""
        cur = self.scan(scan_id)
        row = self.db.execute(
            "select id from scans where tenant_id = ? and started < ? and finished is not null "
            "and status in ('complete', 'partial') order by started desc limit 1",
            [cur["tenant_id"], cur["started"]],
        ).fetchone()
        return row[0] if row else None

    def unfinished_scan_id(self, tenant_id: str) -> str | None:
        row = self.db.execute(
            "select id from scans where tenant_id = ? and finished is null order by started desc limit 1",
            [tenant_id],
        ).fetchone()
        return row[0] if row else None

    # ---- tenant-level data (for resume) --------------------------------------------------------------------------
    def put_tenant_data(self, scan_id: str, name: str, data: Any) -> None:
        self.db["tenant_data"].insert({"scan_id": scan_id, "name": name, "data": pack(json.dumps(data))},
                                      replace=True)

    def get_tenant_data(self, scan_id: str, name: str) -> Any:
        row = self.db.execute("select data from tenant_data where scan_id = ? and name = ?",
                              [scan_id, name]).fetchone()
        return json.loads(unpack(row[0])) if row else None

    # ---- account snapshots ---------------------------------------------------------------------------------------
    def put_accounts(self, scan_id: str, snapshots: Iterable[AccountSnapshot]) -> None:
        rows = [{
            "scan_id": scan_id, "upn": s.upn, "user_id": s.user.id, "snapshot": pack(s.to_json()),
            "verdict": None, "score": None, "reasons": None, "privileged": None, "has_gaps": int(bool(s.gaps())),
        } for s in snapshots]
        if rows:
            with self.db.atomic():
                self.db["accounts"].insert_all(rows, replace=True)

    def count_accounts(self, scan_id: str) -> int:
        return int(self.db.execute("select count(*) from accounts where scan_id = ?", [scan_id]).fetchone()[0])

    def done_upns(self, scan_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("select upn from accounts where scan_id = ?", [scan_id])}

    def iter_accounts(self, scan_id: str) -> Iterator[AccountSnapshot]:
        cur = self.db.execute("select snapshot from accounts where scan_id = ? order by upn", [scan_id])
        while True:
            rows = cur.fetchmany(500)
            if not rows:
                return
            for (blob,) in rows:
                yield AccountSnapshot.from_json(unpack(blob))

    def get_account(self, scan_id: str, upn: str) -> AccountSnapshot | None:
        return self.get_accounts(scan_id, [upn]).get(upn.lower())

    def _by_upns(self, sql: str, scan_id: str, upns: Iterable[str], chunk: int) -> Iterator[sqlite3.Cursor]:
        """One cursor of ``sql`` (a query on ``scan_id = ?`` with ``{marks}`` in a case-insensitive ``upn in (...)``)
        per ``chunk`` UPNs of ``upns``."""
        wanted = list(dict.fromkeys(upns))
        for i in range(0, len(wanted), chunk):
            part = wanted[i:i + chunk]
            yield self.db.execute(sql.format(marks=",".join("?" * len(part))), [scan_id, *part])

    def get_accounts(self, scan_id: str, upns: Iterable[str], fields: Iterable[str] | None = None,
                     chunk: int = 500) -> dict[str, AccountSnapshot]:
        """Snapshots of ``upns`` (matched case-insensitively, ``chunk`` to a query) keyed by lower-case UPN; absent
        accounts are left out. ``fields``: parse only these collections besides ``user`` (the others read as absent)
        — for callers that need a few of them from many accounts (the incremental sweep's reuse)."""
        keep = None if fields is None else ("user", *fields)
        out: dict[str, AccountSnapshot] = {}
        sql = "select upn, snapshot from accounts where scan_id = ? and upn collate nocase in ({marks})"
        for cur in self._by_upns(sql, scan_id, upns, chunk):
            for upn, blob in cur:
                if keep is None:
                    out[upn.lower()] = AccountSnapshot.from_json(unpack(blob))
                else:
                    data = orjson.loads(unpack(blob))
                    out[upn.lower()] = AccountSnapshot.model_validate({k: data[k] for k in keep if k in data})
        return out

    def set_verdict(self, scan_id: str, upn: str, verdict: str, score: int, reasons: list[str],
                    privileged: bool) -> None:
        self.set_verdicts(scan_id, [(upn, verdict, score, reasons, privileged)])

    def set_verdicts(self, scan_id: str, verdicts: Iterable[tuple[str, str, int, list[str], bool]]) -> None:
        """``(upn, verdict, score, reasons, privileged)`` per account, in one transaction."""
        with self.db.atomic():
            self.db.conn.executemany(
                "update accounts set verdict = ?, score = ?, reasons = ?, privileged = ? where scan_id = ? and upn = ?",
                [(verdict, score, json.dumps(reasons), int(privileged), scan_id, upn)
                 for upn, verdict, score, reasons, privileged in verdicts])

    def accounts(self, scan_id: str) -> list[dict[str, Any]]:
        return [
            {"upn": r[0], "user_id": r[1], "verdict": r[2] or "clean", "score": r[3] or 0,
             "reasons": json.loads(r[4] or "[]"), "privileged": bool(r[5]), "has_gaps": bool(r[6])}
            for r in self.db.execute(
                "select upn, user_id, verdict, score, reasons, privileged, has_gaps from accounts "
                "where scan_id = ? order by upn", [scan_id])
        ]

    # ---- findings ------------------------------------------------------------------------------------------------
    def put_findings(self, scan_id: str, rows: list[dict[str, Any]]) -> None:
        """Rows as produced by ``Finding.to_json()`` plus ``first_seen``."""
        out = [{
            "scan_id": scan_id, "id": f["id"], "upn": f["account"], "detector": f["detector"],
            "technique": f["technique"], "severity": _sev(f["severity"]), "title": f["title"],
            "evidence": json.dumps(f.get("evidence") or {}, default=str), "artefact": f.get("artefact", ""),
            "suppressed": f.get("suppressed"), "new_since_last_scan": int(bool(f.get("new_since_last_scan"))),
            "status": f.get("status", "active"), "score": int(f.get("score") or 0),
            "remediation": json.dumps(f.get("remediation") or []), "first_seen": f.get("first_seen"),
        } for f in rows]
        if out:
            with self.db.atomic():
                self.db["findings"].insert_all(out, replace=True)

    def findings(self, scan_id: str, upn: str | None = None) -> list[dict[str, Any]]:
        if upn:
            return self.findings_by_account(scan_id, [upn]).get(upn.lower(), [])
        sql = "select * from findings where scan_id = ? order by severity desc, upn, detector"
        return [_finding_row(r) for r in self.db.execute_returning_dicts(sql, [scan_id])]

    def findings_by_account(self, scan_id: str, upns: Iterable[str], chunk: int = 500) -> dict[str, list[dict[str, Any]]]:
        """``findings(scan_id, upn)`` for many accounts, ``chunk`` to a query, keyed by lower-case UPN."""
        out: dict[str, list[dict[str, Any]]] = {}
        sql = ("select * from findings where scan_id = ? and upn collate nocase in ({marks})"
               " order by severity desc, upn, detector")
        for cur in self._by_upns(sql, scan_id, upns, chunk):
            cols = [d[0] for d in cur.description]
            for values in cur:
                row = _finding_row(dict(zip(cols, values, strict=True)))
                out.setdefault(row["account"].lower(), []).append(row)
        return out

    def history(self, finding_id: str) -> dict[str, Any] | None:
        row = self.db.execute_returning_dicts("select * from finding_history where id = ?", [finding_id])
        return dict(row[0]) if row else None

    def record_history(self, scan_id: str, started: str, rows: list[dict[str, Any]]) -> None:
        """First / last seen per finding id, for a batch of findings (one transaction, one lookup per 500 ids)."""
        if not rows:
            return
        ids = list(dict.fromkeys(f["id"] for f in rows))
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            known.update(r[0] for r in self.db.execute(
                f"select id from finding_history where id in ({','.join('?' * len(part))})", part))  # noqa: S608
        fresh: dict[str, dict[str, Any]] = {}
        for f in rows:
            if f["id"] not in known:
                fresh[f["id"]] = {
                    "id": f["id"], "upn": f["account"], "detector": f["detector"],
                    "artefact": f.get("artefact", ""), "first_seen": started, "last_seen": started,
                    "first_scan_id": scan_id, "last_scan_id": scan_id, "resolved": None,
                    "severity": _sev(f["severity"]), "title": f["title"],
                }
        with self.db.atomic():
            if fresh:
                self.db["finding_history"].insert_all(fresh.values(), replace=True)
            if known:
                self.db.conn.executemany(
                    "update finding_history set last_seen = ?, last_scan_id = ?, resolved = null where id = ?",
                    [(started, scan_id, i) for i in ids if i in known])

    def resolve_missing(self, scan_id: str, started: str, seen_ids: set[str]) -> int:
        """Mark history entries not seen in this scan as resolved (for accounts this scan read)."""
        n = 0
        with self.db.atomic():
            for r in self.db.execute_returning_dicts(
                    "select h.id from finding_history h join accounts a on a.upn = h.upn and a.scan_id = ? "
                    "where h.resolved is null", [scan_id]):
                if r["id"] not in seen_ids:
                    self.db["finding_history"].update(r["id"], {"resolved": started})
                    n += 1
        return n

    # ---- coverage gaps -------------------------------------------------------------------------------------------
    def add_error(self, scan_id: str, upn: str | None, collector: str, message: str, code: str | None = None,
                  permission: str | None = None) -> None:
        self.db["errors"].insert({"scan_id": scan_id, "upn": upn, "collector": collector, "message": message[:1000],
                                  "code": code, "permission": permission, "time": iso()})

    def errors(self, scan_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db["errors"].rows_where("scan_id = ?", [scan_id], order_by="rowid")]

    # ---- remediation journal (append-only) -----------------------------------------------------------------------
    def journal_append(self, entry: dict[str, Any]) -> int:
        row = {
            "action_id": entry.get("action_id") or uuid.uuid4().hex[:12], "run_id": entry.get("run_id"),
            "time": entry.get("time") or iso(), "actor": entry.get("actor"), "mode": entry.get("mode", "manual"),
            "upn": entry.get("upn"), "step": entry.get("step"), "target": entry.get("target"),
            "status": entry["status"], "before": json.dumps(entry.get("before"), default=str),
            "after": json.dumps(entry.get("after"), default=str), "detail": entry.get("detail"),
            "scan_id": entry.get("scan_id"),
        }
        with self.db.atomic():
            return int(self.db["journal"].insert(row).last_pk)

    def journal(self, *, upn: str | None = None, action_id: str | None = None,
                run_id: str | None = None) -> list[dict[str, Any]]:
        clauses, args = [], []
        for col, val in (("upn", upn), ("action_id", action_id), ("run_id", run_id)):
            if val:
                clauses.append(f"{col} = ?")
                args.append(val)
        where = " and ".join(clauses) or None
        out = []
        for r in self.db["journal"].rows_where(where, args or None, order_by="seq"):
            r = dict(r)
            r["before"] = json.loads(r["before"]) if r["before"] else None
            r["after"] = json.loads(r["after"]) if r["after"] else None
            out.append(r)
        return out

    # ---- retention -----------------------------------------------------------------------------------------------
    def delete_scan(self, scan_id: str) -> None:
        with self.db.atomic():
            for table in ("accounts", "findings", "errors", "tenant_data"):
                self.db.execute(f"delete from {table} where scan_id = ?", [scan_id])  # noqa: S608 - fixed names
            self.db.execute("delete from scans where id = ?", [scan_id])
        self.drop_orphan_rows()

    def drop_orphan_rows(self) -> list[str]:
        """Drop the tenant-wide scratch tables (``scan_rows_<scan id>``, scanner.collectors.tenant_rows) of scans that
        are finished or gone: only an unfinished scan still needs its rows (``scan --resume``). A scan killed before it
        could drop its own table leaves one behind until then."""
        live = {"scan_rows_" + "".join(ch for ch in str(r["id"]) if ch.isalnum())
                for r in self.db.execute_returning_dicts("select id from scans where finished is null")}
        dropped = []
        for name in self.db.table_names():
            if name.startswith("scan_rows_") and name not in live and name.replace("_", "").isalnum():
                self.db.execute(f"drop table if exists [{name}]")
                dropped.append(name)
        return dropped


_SEV_LABELS = ["info", "low", "medium", "high", "critical"]


def _sev(value: Any) -> int:
    if isinstance(value, int):
        return value
    return _SEV_LABELS.index(str(value).lower())
