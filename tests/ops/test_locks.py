"""One scan per tenant: the lock file refuses a second holder with a message naming the holder, and a holder killed
with SIGKILL leaves no stale lock behind (the kernel drops flock locks with the process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.locks import TenantBusyError, TenantLock, lock_path_for, tenant_lock
from scanner.store import StoreError


def test_second_lock_of_same_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with tenant_lock(db, "Contoso"):
        with pytest.raises(TenantBusyError) as exc:
            TenantLock(db, "Contoso").acquire()
        msg = str(exc.value)
        assert "another scan of tenant Contoso is already running" in msg
        assert f"pid {os.getpid()}" in msg and str(lock_path_for(db)) in msg
        assert isinstance(exc.value, StoreError)  # the CLI's "database cannot be used" path: exit 2
        with tenant_lock(tmp_path / "other.db", "Fabrikam"):  # other tenants are independent
            pass
    with tenant_lock(db, "Contoso") as lock:  # released: free again
        assert lock.held


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
