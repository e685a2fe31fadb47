"""Microsoft's published Graph limits (graph-api.md §9.2), enforced per simulated app when throttle=True."""

from __future__ import annotations

import time
from collections import Counter, deque

OUTLOOK_CONCURRENCY = 4
OUTLOOK_WINDOW_S = 600
OUTLOOK_REQUESTS = 10_000
DIRECTORY_WINDOW_S = 10
REPORTS_WINDOW_S = 10
REPORTS_REQUESTS = 5


def directory_budget(user_count: int) -> int:
    """Resource units per 10 s for an app+tenant pair: S (<50 users) 3,500; M (50-500) 5,000; L (>500) 8,000."""
    if user_count < 50:
        return 3500
    if user_count <= 500:
        return 5000
    return 8000


def resource_units(method: str, path: str, query: dict) -> int:
    """Cost per request (base 1; GET users/oauth2PermissionGrants/appRoleAssignments/appRoleAssignedTo 2; $select -1; $expand +1; $top<20 -1)."""
    if method != "GET":
        return 1
    segs = [s for s in path.split("/") if s]
    cost = 1
    if segs and segs[0] in ("users", "oauth2PermissionGrants", "applications"):
        cost = 2
    if "appRoleAssignments" in segs or "appRoleAssignedTo" in segs or "memberOf" in segs or "licenseDetails" in segs:
        cost = 2
    if "members" in segs:
        cost = 3
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    try:
        if int(query.get("$top", "100")) < 20:
            cost -= 1
    except ValueError:
        pass
    return max(1, cost)


class Throttler:
    def __init__(self, user_count: int, clock=time.monotonic) -> None:
        self.clock = clock
        self.budget = directory_budget(user_count)
        self.ru_log: deque[tuple[float, int]] = deque()
        self.ru_used = 0
        self.reports_log: deque[float] = deque()
        self.mailbox_log: dict[str, deque[float]] = {}
        self.inflight: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()   # by class: directory / outlook / reports / exchange / batch
        self.throttled: Counter[str] = Counter()

    def directory(self, cost: int) -> bool:
        now = self.clock()
        log = self.ru_log
        while log and log[0][0] <= now - DIRECTORY_WINDOW_S:
            self.ru_used -= log.popleft()[1]
        if self.ru_used + cost > self.budget:
            self.throttled["directory"] += 1
            return False
        log.append((now, cost))
        self.ru_used += cost
        return True

    def reports(self) -> bool:
        now = self.clock()
        log = self.reports_log
        while log and log[0] <= now - REPORTS_WINDOW_S:
            log.popleft()
        if len(log) >= REPORTS_REQUESTS:
            self.throttled["reports"] += 1
            return False
        log.append(now)
        return True

    def outlook_enter(self, mailbox: str) -> str | None:
        """Returns None when admitted (call outlook_exit later) or the 429 message."""
        if self.inflight[mailbox] >= OUTLOOK_CONCURRENCY:
            self.throttled["outlook"] += 1
            return "Application is over its MailboxConcurrency limit."
        now = self.clock()
        log = self.mailbox_log.setdefault(mailbox, deque())
        while log and log[0] <= now - OUTLOOK_WINDOW_S:
            log.popleft()
        if len(log) >= OUTLOOK_REQUESTS:
            self.throttled["outlook"] += 1
            return "Application is over its MailboxRequests limit."
        log.append(now)
        self.inflight[mailbox] += 1
        return None

    def outlook_exit(self, mailbox: str) -> None:
        self.inflight[mailbox] -= 1
        if self.inflight[mailbox] <= 0:
            del self.inflight[mailbox]
