"""Tenant-wide rows (Get-Mailbox, Get-CASMailbox, the registration report) streamed into the scan database instead of
held in memory: at 100,000 mailboxes the in-memory directory + name indexes were most of the scan's RSS, and the one
JSON blob in ``tenant_data`` had to be built (and read back on ``--resume``) whole.

One scratch table per scan, ``scan_rows_<scan id>(kind, key, row)`` with a unique (kind, key) index: point lookups
per account (a chunk's 20 users) cost a few microseconds each. Rows are kept until the scan finishes (``--resume``
reuses them) and then dropped (:meth:`RowStore.drop_scan`). First write wins per key (``INSERT OR IGNORE``), which is the
``dict.setdefault`` semantics of the in-memory indexes they replace.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson

from scanner.collectors.exchange import DirectoryLookups, row_names

_KIND_IDS = {"mbx": 1, "mbn": 2, "casr": 3, "casn": 4, "reg": 5}
REF_KINDS = frozenset({"mbn", "casn"})  # name indexes: the value is a row key (text), not JSON


class RowStore:
    """One table per scan (``scan_rows_<scan id>``): dropping it when the scan ends is instant, where deleting a
    million rows from a shared table is not; a rowid table with a unique (kind, key) index inserts ~2x faster than a
    WITHOUT ROWID table keyed by (scan id, kind, key)."""

    def __init__(self, conn: sqlite3.Connection, scan_id: str) -> None:
        self.conn = conn
        self.scan_id = scan_id
        self.table = "scan_rows_" + "".join(ch for ch in scan_id if ch.isalnum())
        conn.execute(f"create table if not exists {self.table} (kind integer not null, key text not null, row blob)")
        conn.execute(f"create unique index if not exists {self.table}_k on {self.table} (kind, key)")
        t = self.table
        self._get = f"select row from {t} where kind = ? and key = ?"  # noqa: S608 - table name from alnum chars
        self._put = f"insert or ignore into {t} (kind, key, row) values (?, ?, ?)"  # noqa: S608

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One real transaction: the store's connection is in autocommit mode (``isolation_level=None``), where
        ``with conn:`` begins nothing, so an ``executemany`` committed every row on its own (a Get-Mailbox page of
        1,000 mailboxes and ~9,000 names was ~10,000 commits: most of the sweep's start on a big tenant)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("begin")
        try:
            yield
        except BaseException:
            self.conn.execute("rollback")
            raise
        self.conn.execute("commit")

    def clear(self, kinds: Iterable[str]) -> None:
        with self._transaction():
            for k in kinds:
                self.conn.execute(f"delete from {self.table} where kind = ?", (_KIND_IDS[k],))  # noqa: S608

    def drop_scan(self) -> None:
        self.conn.execute(f"drop table if exists {self.table}")

    def put(self, kind: str, items: Iterable[tuple[str, Any]]) -> None:
        kid = _KIND_IDS[kind]
        if kind in REF_KINDS:
            rows = [(kid, k, v) for k, v in items]
        else:
            rows = [(kid, k, orjson.dumps(v)) for k, v in items]
        with self._transaction():
            self.conn.executemany(self._put, rows)

    def get(self, kind: str, key: str) -> Any:
        r = self.conn.execute(self._get, (_KIND_IDS[kind], key)).fetchone()
        if r is None:
            return None
        return r[0] if kind in REF_KINDS else orjson.loads(r[0])

    def has(self, kind: str, key: str) -> bool:
        return self.conn.execute(self._get, (_KIND_IDS[kind], key)).fetchone() is not None

    def count(self, kind: str) -> int:
        return self.conn.execute(f"select count(*) from {self.table} where kind = ?",  # noqa: S608
                                 (_KIND_IDS[kind],)).fetchone()[0]

    def keys(self, kind: str) -> Iterator[str]:
        for (k,) in self.conn.execute(f"select key from {self.table} where kind = ?",  # noqa: S608
                                      (_KIND_IDS[kind],)):
            yield k


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


class StoredMailboxDirectory(DirectoryLookups):
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
            names.extend((n.lower(), key) for n in row_names(row))
        rows.put("mbx", mbx)
        rows.put("mbn", names)

