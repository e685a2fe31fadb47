"""Retention: keep the last N scans or D days (either rule keeps a scan); the newest finished scan and a resumable
unfinished one are never deleted; deleted scans leave no rows behind; snapshots are stored zlib-compressed."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scanner.retention import apply_retention, plan_retention
from scanner.snapshot import AccountSnapshot, User
from scanner.store import Store

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TENANT = "contoso.onmicrosoft.com"


def snap(upn: str) -> AccountSnapshot:
    return AccountSnapshot(user=User(id=f"id-{upn}", user_principal_name=upn, mailbox_type="UserMailbox",
                                     display_name="A " * 200))


def add_scan(store: Store, days_ago: float, *, finished: bool = True) -> str:
    sid = store.begin_scan(TENANT)
    store.put_accounts(sid, [snap("alice@contoso.com"), snap("bob@contoso.com")])
    store.put_findings(sid, [{"id": f"f-{sid}", "account": "alice@contoso.com", "detector": "d", "technique": "T1",
                              "severity": "high", "title": "t", "evidence": {}}])
    store.add_error(sid, "bob@contoso.com", "inbox_rules", "boom")
    store.put_tenant_data(sid, "roles", {"x": 1})
    if finished:
        store.finish_scan(sid, "complete")
    started = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store.db["scans"].update(sid, {"started": started})
    return sid


def rows(store: Store, table: str, sid: str) -> int:
    return store.db.execute(f"select count(*) from {table} where scan_id = ?", [sid]).fetchone()[0]


def test_keep_last_n_scans(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        ids = [add_scan(store, d) for d in (50, 40, 30, 20, 10)]  # oldest first
        res = apply_retention(store, keep_scans=2, keep_days=None, now=NOW)
        assert set(res.deleted) == set(ids[:3]) and set(res.kept) == set(ids[3:])
        assert [s["id"] for s in store.scans()] == ids[3:]
        for sid in ids[:3]:
            for table in ("accounts", "findings", "errors", "tenant_data"):
                assert rows(store, table, sid) == 0, table
        assert rows(store, "accounts", ids[4]) == 2 and rows(store, "findings", ids[4]) == 1


def test_keep_days_and_either_rule_keeps(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        ids = [add_scan(store, d) for d in (50, 40, 30, 20, 10)]
        assert set(apply_retention(store, keep_scans=None, keep_days=25, now=NOW).deleted) == set(ids[:3])
    with Store(tmp_path / "db2.sqlite") as store:
        ids = [add_scan(store, d) for d in (50, 40, 30, 20, 10)]
        # 4 by count, 2 by age: the union (4) is kept.
        res = apply_retention(store, keep_scans=4, keep_days=25, now=NOW)
        assert res.deleted == (ids[0],)


def test_never_deletes_newest_finished_or_resumable_scan(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        old_unfinished = add_scan(store, 100, finished=False)
        newest_finished = add_scan(store, 90)
        resumable = add_scan(store, 80, finished=False)
        res = apply_retention(store, keep_scans=None, keep_days=1, now=NOW)
        assert res.deleted == (old_unfinished,)
        assert set(res.kept) == {newest_finished, resumable}


def test_deleted_scans_leave_no_scratch_tables(tmp_path: Path) -> None:
    # A scan killed before it dropped its tenant-wide scratch table (scan_rows_<id>) leaves it behind; once that scan
    # is deleted (or finished) the table goes too. A resumable scan keeps its rows.
    from scanner.collectors.tenant_rows import RowStore

    with Store(tmp_path / "db.sqlite") as store:
        old_unfinished = add_scan(store, 100, finished=False)
        add_scan(store, 90)
        resumable = add_scan(store, 80, finished=False)
        for sid in (old_unfinished, resumable):
            RowStore(store.db.conn, sid).put("mbx", [("k", {"a": 1})])
        scratch = {RowStore(store.db.conn, sid).table: sid for sid in (old_unfinished, resumable)}
        apply_retention(store, keep_scans=None, keep_days=1, now=NOW)
        left = {n for n in store.db.table_names() if n.startswith("scan_rows_")}
        assert left == {t for t, sid in scratch.items() if sid == resumable}
        assert RowStore(store.db.conn, resumable).get("mbx", "k") == {"a": 1}


def test_nothing_configured_deletes_nothing() -> None:
    scans = [{"id": "a", "tenant_id": "t", "started": "2000-01-01T00:00:00.000000Z", "finished": "x"},
             {"id": "b", "tenant_id": "t", "started": "2001-01-01T00:00:00.000000Z", "finished": "x"}]
    assert plan_retention(scans, keep_scans=None, keep_days=None, now=NOW) == ([], ["a", "b"])


def test_retention_is_per_tenant() -> None:
    scans = [{"id": f"{t}{i}", "tenant_id": t, "started": f"2026-01-0{i}T00:00:00.000000Z", "finished": "x"}
             for t in ("A", "B") for i in (1, 2, 3)]
    delete, _ = plan_retention(scans, keep_scans=1, keep_days=None, now=NOW)
    assert sorted(delete) == ["A1", "A2", "B1", "B2"]


def test_snapshots_are_stored_compressed(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite") as store:
        sid = add_scan(store, 1)
        blob = store.db.execute("select snapshot from accounts where scan_id = ? and upn = ?",
                                [sid, "alice@contoso.com"]).fetchone()[0]
        assert isinstance(blob, bytes) and not blob.lstrip().startswith(b"{")
        text = zlib.decompress(blob).decode("utf-8")  # raises if it were not zlib
        assert json.loads(text)["user"]["user_principal_name"] == "alice@contoso.com"
        assert len(blob) < len(text) / 4  # the 400-char display name compresses well
        td = store.db.execute("select data from tenant_data where scan_id = ?", [sid]).fetchone()[0]
        assert json.loads(zlib.decompress(td)) == {"x": 1}
