"""One scan per tenant: the lock file refuses a second holder with a message naming the holder, and a holder killed
with SIGKILL leaves no stale lock behind (the kernel drops flock locks with the process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scanner.locks import TenantBusyError, TenantLock, lock_path_for, tenant_lock
from scanner.store import StoreError


def _acquire_in_thread(db: Path) -> BaseException | None:
    """Try the lock from another thread (another scheduler job); return what it raised."""
    box: list[BaseException | None] = [None]

    def attempt() -> None:
        try:
            TenantLock(db, "Contoso").acquire().release()
        except BaseException as exc:  # noqa: BLE001
            box[0] = exc

    t = threading.Thread(target=attempt)
    t.start()
    t.join(timeout=10)
    return box[0]


def test_second_lock_of_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with tenant_lock(db, "Contoso"):
        err = _acquire_in_thread(db)
        assert isinstance(err, TenantBusyError)
        msg = str(err)
        assert "another scan of tenant Contoso is already running" in msg
        assert f"pid {os.getpid()}" in msg and str(lock_path_for(db)) in msg
        assert isinstance(err, StoreError)  # the CLI's "database cannot be used" path: exit 2
        # Re-entrant in the holding thread: run_tenant holds it and run_scan locks again inside.
        with tenant_lock(db, "Contoso"):
            pass
        assert isinstance(_acquire_in_thread(db), TenantBusyError)  # still held by the outer lock
        with tenant_lock(tmp_path / "other.db", "Fabrikam"):  # other tenants are independent
            pass
    assert _acquire_in_thread(db) is None  # released: free again


def test_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    code = ("import sys, time; from scanner.locks import TenantLock; TenantLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(TenantBusyError, match=f"pid {proc.pid}"):
            TenantLock(db, "x").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with tenant_lock(db, "x"):
        pass
