"""Tenant-wide rows (Get-Mailbox, Get-CASMailbox, the registration report) streamed into the scan database instead of
held in memory: at 100,000 mailboxes the in-memory directory + name indexes were most of the scan's RSS, and the one
JSON blob in ``tenant_data`` had to be built (and read back on ``--resume``) whole.

One scratch table, ``scan_rows(scan_id, kind, key, row)``, primary key (scan_id, kind, key): point lookups per
account (a chunk's 20 users) cost a few microseconds each. Rows are kept until the scan finishes (``--resume`` reuses
them) and then dropped (:meth:`RowStore.drop_scan`). First write wins per key (``INSERT OR IGNORE``), which is the
``dict.setdefault`` semantics of the in-memory indexes they replace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from scanner.collectors._util import parse_recipient

_SCHEMA = """create table if not exists scan_rows (
    scan_id text not null, kind text not null, key text not null, row blob not null,
    primary key (scan_id, kind, key)) without rowid"""


class RowStore:
    def __init__(self, conn: sqlite3.Connection, scan_id: str) -> None:
        self.conn = conn
        self.scan_id = scan_id
        conn.execute(_SCHEMA)

    def clear(self, kinds: Iterable[str]) -> None:
        with self.conn:
            for k in kinds:
                self.conn.execute("delete from scan_rows where scan_id = ? and kind = ?", (self.scan_id, k))

    def drop_scan(self) -> None:
        with self.conn:
            self.conn.execute("delete from scan_rows where scan_id = ?", (self.scan_id,))

    def put(self, kind: str, items: Iterable[tuple[str, Any]]) -> None:
        sid = self.scan_id
        with self.conn:
            self.conn.executemany("insert or ignore into scan_rows (scan_id, kind, key, row) values (?, ?, ?, ?)",
                                  ((sid, kind, k, orjson.dumps(v)) for k, v in items))

    def get(self, kind: str, key: str) -> Any:
        r = self.conn.execute("select row from scan_rows where scan_id = ? and kind = ? and key = ?",
                              (self.scan_id, kind, key)).fetchone()
        return orjson.loads(r[0]) if r is not None else None

    def has(self, kind: str, key: str) -> bool:
        return self.conn.execute("select 1 from scan_rows where scan_id = ? and kind = ? and key = ?",
                                 (self.scan_id, kind, key)).fetchone() is not None

    def count(self, kind: str) -> int:
        return self.conn.execute("select count(*) from scan_rows where scan_id = ? and kind = ?",
                                 (self.scan_id, kind)).fetchone()[0]

    def keys(self, kind: str) -> Iterator[str]:
        for (k,) in self.conn.execute("select key from scan_rows where scan_id = ? and kind = ?",
                                      (self.scan_id, kind)):
            yield k

    def values(self, kind: str) -> Iterator[Any]:
        for (r,) in self.conn.execute("select row from scan_rows where scan_id = ? and kind = ?",
                                      (self.scan_id, kind)):
            yield orjson.loads(r)


class RowMap(Mapping[str, Any]):
    """A read-only mapping over one kind of rows (what ``dict`` lookups in the collectors expect)."""

    def __init__(self, rows: RowStore, kind: str) -> None:
        self.rows, self.kind = rows, kind

    def __getitem__(self, key: str) -> Any:
        v = self.rows.get(self.kind, key)
        if v is None:
            raise KeyError(key)
        return v

    def get(self, key: str, default: Any = None) -> Any:
        v = self.rows.get(self.kind, key)
        return default if v is None else v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.rows.has(self.kind, key)

    def __iter__(self) -> Iterator[str]:
        return self.rows.keys(self.kind)

    def __len__(self) -> int:
        return self.rows.count(self.kind)


class RowIndex(Mapping[str, dict[str, Any]]):
    """name (lower case) -> row, through a name index kind (name -> row key) and a row kind (row key -> row)."""

    def __init__(self, rows: RowStore, index: str = "mbn", kind: str = "mbx") -> None:
        self.rows, self.index, self.kind = rows, index, kind

    def __getitem__(self, key: str) -> dict[str, Any]:
        ref = self.rows.get(self.index, key)
        row = self.rows.get(self.kind, ref) if ref is not None else None
        if row is None:
            raise KeyError(key)
        return row

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.rows.has(self.index, key)

    def __iter__(self) -> Iterator[str]:
        return self.rows.keys(self.index)

    def __len__(self) -> int:
        return self.rows.count(self.index)


class StoredMailboxDirectory:
    """:class:`scanner.collectors.exchange.MailboxDirectory`'s interface over streamed rows."""

    def __init__(self, rows: RowStore) -> None:
        self.rows = rows
        self.by_id = RowMap(rows, "mbx")
        self.by_name = RowIndex(rows)

    @staticmethod
    def add_page(rows: RowStore, page: list[dict[str, Any]], seq: int) -> None:
        mbx: list[tuple[str, Any]] = []
        names: list[tuple[str, str]] = []
        for i, row in enumerate(page):
            key = row["id"] or f"#{seq}.{i}"  # a mailbox without an Entra id is still found by its names
            mbx.append((key, row))
            for n in (row.get("upn"), row.get("primary"), *row.get("names", []), *row.get("addresses", [])):
                if n:
                    names.append((n.lower(), key))
        rows.put("mbx", mbx)
        rows.put("mbn", names)

    def for_user(self, user_id: str, upn: str) -> dict[str, Any] | None:
        return self.by_id.get(user_id.lower()) or self.by_name.get(upn.lower())

    def resolve(self, identity: str | None) -> str | None:
        name, address = parse_recipient(identity)
        if address:
            return address
        if not name:
            return None
        row = self.by_name.get(name.lower())
        if row is None:
            return None
        return row.get("primary") or row.get("upn")

    def find(self, identity: str | None) -> dict[str, Any] | None:
        if not identity:
            return None
        name, address = parse_recipient(identity)
        return self.by_name.get((address or name or "").lower())
