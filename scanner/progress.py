"""Progress of a sweep, per collector: a rich display on a terminal, a log line every few seconds otherwise.

The protocol :class:`Progress` is what ``run_scan(..., progress=...)`` calls:

- ``start(collector, total)`` once a collector knows how many units it will do (``total=None`` when unknown, e.g.
  while paging ``/users``; call ``start`` again with the number once it is known — it updates, it does not reset);
- ``advance(collector, n=1)`` after each unit (a mailbox, a page of users, a ``$batch`` of 20 → ``n=20``);
- ``finish(collector)`` when the collector is done (also after a failure: progress is not a result).

Calls come from the event loop thread; implementations are cheap (no I/O on ``advance`` except the rate-limited log
line) and never raise — a broken progress display must not break a scan. ``make_progress()`` picks the display.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, runtime_checkable

log = logging.getLogger("m365sweep.progress")


@runtime_checkable
class Progress(Protocol):
    def start(self, collector: str, total: int | None) -> None: ...

    def advance(self, collector: str, n: int = 1) -> None: ...

    def finish(self, collector: str) -> None: ...


class NullProgress:
    """Does nothing (library use, tests, ``--quiet``)."""

    def start(self, collector: str, total: int | None) -> None:
        return None

    def advance(self, collector: str, n: int = 1) -> None:
        return None

    def finish(self, collector: str) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class _Counter:
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        r = self.rate(now)
        if self.total is None or r <= 0 or self.finished:
            return None
        return max(self.total - self.done, 0) / r


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LogProgress:
    """Without a terminal (cron, systemd, containers): one INFO line per collector at most every ``interval``
    seconds, plus one when it finishes. ``clock`` is injectable so tests do not sleep."""

    def __init__(self, interval: float = 5.0, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic, tenant: str | None = None) -> None:
        self.interval = interval
        self.log = logger or log
        self.clock = clock
        self.tenant = tenant
        self._c: dict[str, _Counter] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def _line(self, collector: str, c: _Counter, now: float, done: bool = False) -> None:
        total = "?" if c.total is None else str(c.total)
        prefix = f"{self.tenant}: " if self.tenant else ""
        if done and not c.done and c.total is None:  # a step without units (e.g. tenant-wide reads)
            self.log.info("%s%s: done in %.1fs", prefix, collector, now - c.started)
        elif done:
            self.log.info("%s%s: done %d/%s in %.1fs (%.1f/s)", prefix, collector, c.done, total,
                          now - c.started, c.rate(now))
        else:
            self.log.info("%s%s: %d/%s (%.1f/s, eta %s)", prefix, collector, c.done, total, c.rate(now),
                          _fmt_eta(c.eta(now)))

    def start(self, collector: str, total: int | None) -> None:
        with self._lock:
            now = self.clock()
            c = self._c.get(collector)
            if c is None:
                self._c[collector] = _Counter(total=total, started=now)
                self._last[collector] = now
            else:
                c.total = total

    def advance(self, collector: str, n: int = 1) -> None:
        with self._lock:
            now = self.clock()
            c = self._c.setdefault(collector, _Counter(total=None, started=now))
            c.done += n
            if now - self._last.get(collector, now) >= self.interval:
                self._last[collector] = now
                self._line(collector, c, now)

    def finish(self, collector: str) -> None:
        with self._lock:
            now = self.clock()
            c = self._c.setdefault(collector, _Counter(total=None, started=now))
            if not c.finished:
                c.finished = True
                self._line(collector, c, now, done=True)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: {"done": c.done, "total": c.total, "finished": c.finished} for k, c in self._c.items()}

    def close(self) -> None:
        return None


class RichProgress:
    """On a terminal: one rich bar per collector with done/total, rate and ETA. ``close()`` stops the live display."""

    def __init__(self, stream: TextIO | None = None, tenant: str | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as _RichProgress,
        )

        self._console = Console(file=stream or sys.stderr)
        title = f"[bold]{_rich_escape(tenant)}[/bold] " if tenant else ""
        self._progress = _RichProgress(
            TextColumn(title + "{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
            refresh_per_second=4,
        )
        self._tasks: dict[str, Any] = {}
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def _task(self, collector: str, total: int | None = None) -> Any:
        tid = self._tasks.get(collector)
        if tid is None:
            tid = self._progress.add_task(_rich_escape(collector), total=total, rate="")
            self._tasks[collector] = tid
            self._counters[collector] = _Counter(total=total)
        return tid

    def start(self, collector: str, total: int | None) -> None:
        try:
            with self._lock:
                tid = self._task(collector, total)
                self._counters[collector].total = total
                self._progress.update(tid, total=total)
        except Exception:  # noqa: BLE001 - a display problem must never break a scan
            log.debug("progress display failed", exc_info=True)

    def advance(self, collector: str, n: int = 1) -> None:
        try:
            with self._lock:
                tid = self._task(collector)
                c = self._counters[collector]
                c.done += n
                # rich's own task.speed is a sliding window that reads 0 between bursts; a mean rate is steadier.
                self._progress.update(tid, advance=n, rate=f"{c.rate(time.monotonic()):.1f}/s")
        except Exception:  # noqa: BLE001
            log.debug("progress display failed", exc_info=True)

    def finish(self, collector: str) -> None:
        try:
            with self._lock:
                tid = self._task(collector)
                c = self._counters[collector]
                c.finished = True
                if c.total is None:
                    self._progress.update(tid, total=c.done, completed=c.done)
                self._progress.stop_task(tid)
        except Exception:  # noqa: BLE001
            log.debug("progress display failed", exc_info=True)

    def close(self) -> None:
        try:
            self._progress.stop()
        except Exception:  # noqa: BLE001
            log.debug("progress display failed", exc_info=True)


def _rich_escape(text: str | None) -> str:
    # Collector names are ours, tenant labels come from config; escape rich markup either way.
    from rich.markup import escape

    return escape(text or "")


def make_progress(stream: TextIO | None = None, *, quiet: bool = False, tenant: str | None = None,
                  interval: float = 5.0) -> RichProgress | LogProgress | NullProgress:
    """Rich on a TTY, log lines otherwise, nothing when ``quiet``. Call ``close()`` on the result when done."""
    if quiet:
        return NullProgress()
    s = stream or sys.stderr
    if getattr(s, "isatty", lambda: False)():
        return RichProgress(s, tenant=tenant)
    return LogProgress(interval=interval, tenant=tenant)
