"""One running scan per tenant: an advisory lock file next to the tenant's database.

``fcntl.flock`` is held on an open file for the life of the scan. The kernel drops it when the process exits, however
it exits (``kill -9`` included), so a crashed scan never leaves a stale lock behind and ``scan --resume`` can start at
once; the pid written into the file is informational only (it names the holder in the error message). Two configs
pointing at the same database share one lock, which is what we want: they would write the same scans table.

The lock is per database, not per process: the scheduler's own ``max_instances=1`` covers overlapping cron fires, and
this covers a manual ``m365sweep scan`` started while the nightly job is running (or two schedulers by mistake).

It is re-entrant for the thread that holds it: ``run_tenant`` holds it across scan → remediation → notification and
``run_scan`` (which locks too, so every caller is covered) acquires it again inside. Another thread of the same
process is refused like another process (flock alone would refuse the same thread too: each ``open`` is a separate
lock owner on Linux).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from scanner.store import StoreError


class TenantBusyError(StoreError):
    """Another scan of this tenant holds the lock. A StoreError ("database locked"), so the CLI exits 2 with the
    message."""


def lock_path_for(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


# resolved lock path -> [owning thread id, fd, depth]; guarded by _REG_LOCK.
_HELD: dict[str, list[int]] = {}
_REG_LOCK = threading.Lock()


class TenantLock:
    """Non-blocking exclusive lock; ``acquire()`` raises :class:`TenantBusyError` naming the holder."""

    def __init__(self, database: Path, label: str = "") -> None:
        self.path = lock_path_for(Path(database))
        self.label = label or str(database)
        self._fd: int | None = None
        self._key = ""

    def acquire(self) -> TenantLock:
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # [storage] database under a file, or on a read-only file system: exit 2, one line
            raise StoreError(f"cannot create the database directory {self.path.parent}: "
                             f"{exc.strerror or exc}") from None
        key = str(self.path.resolve())
        me = threading.get_ident()
        with _REG_LOCK:
            held = _HELD.get(key)
            if held is not None:
                if held[0] != me:
                    raise TenantBusyError(
                        f"another scan of tenant {self.label} is already running (pid {os.getpid()}, in this "
                        f"process); wait for it to finish (lock file {self.path})")
                held[2] += 1
                self._fd, self._key = held[1], key
                return self
            fd = self._lock_file()
            _HELD[key] = [me, fd, 1]
            self._fd, self._key = fd, key
        return self

    def _lock_file(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise TenantBusyError(
                f"another scan of tenant {self.label} is already running{who}; wait for it to finish "
                f"(lock file {self.path})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with _REG_LOCK:
            held = _HELD.get(self._key)
            if held is not None:
                held[2] -= 1
                if held[2] > 0:
                    return
                del _HELD[self._key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        # Closing the descriptor releases the flock. The file itself stays: unlinking it would race with another
        # process that has opened it but not yet locked it (it would lock an orphaned inode).
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> TenantLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(raw) if raw.isdigit() else None
    except OSError:
        return None


@contextlib.contextmanager
def tenant_lock(database: Path, label: str = "") -> Iterator[TenantLock]:
    """``with tenant_lock(cfg.database_path, cfg.label): run the scan``."""
    lock = TenantLock(database, label)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
