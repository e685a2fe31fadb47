"""Deterministic, targeted fault injection (tests) and seeded random faults (benchmarks, demos)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

KINDS = ("status", "throttle", "reset", "malformed", "truncated", "loop_nextlink", "empty", "expire_tokens")


@dataclass
class FaultRule:
    match: str                     # regex searched in the Graph path (without query) or an exact cmdlet name
    kind: str = "status"
    status: int = 500
    times: int | None = 1          # None = forever
    upn: str | None = None         # only requests that target this user / mailbox
    method: str | None = None      # only this HTTP method (Graph)
    retry_after: str | None = "1"  # header value for status/throttle; None = no Retry-After header
    code: str | None = None
    message: str | None = None
    hits: int = 0
    _rx: re.Pattern | None = field(default=None, repr=False)

    @property
    def is_cmdlet(self) -> bool:
        return bool(re.fullmatch(r"[A-Z][A-Za-z]+-[A-Za-z]+", self.match))

    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultSet:
    """``tenant.faults.add("/messageRules", kind="status", status=500, times=1, upn="x@contoso.com")``."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, match: str, kind: str = "status", *, status: int | None = None, times: int | None = 1,
            upn: str | None = None, method: str | None = None, retry_after: str | int | float | None = "1",
            code: str | None = None, message: str | None = None) -> FaultRule:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        if status is None:
            status = 429 if kind == "throttle" else 500
        r = FaultRule(match=match, kind=kind, status=status, times=times, upn=upn.lower() if upn else None,
                      method=method.upper() if method else None,
                      retry_after=None if retry_after is None else str(retry_after), code=code, message=message)
        if not r.is_cmdlet:
            r._rx = re.compile(match)
        self.rules.append(r)
        return r

    def clear(self) -> None:
        self.rules.clear()

    def check_graph(self, method: str, path: str, upn: str | None) -> FaultRule | None:
        for r in self.rules:
            if r.is_cmdlet or r.exhausted():
                continue
            if r.method and r.method != method:
                continue
            if r.upn and (upn or "").lower() != r.upn:
                continue
            if r._rx is not None and r._rx.search(path):
                r.hits += 1
                return r
        return None

    def check_cmdlet(self, cmdlet: str, upn: str | None) -> FaultRule | None:
        for r in self.rules:
            if not r.is_cmdlet or r.exhausted() or r.match.lower() != cmdlet.lower():
                continue
            if r.upn and (upn or "").lower() != r.upn:
                continue
            r.hits += 1
            return r
        return None


class RandomFaults:
    """Seeded random faults: 503/504 with Retry-After, connection resets, malformed and truncated JSON."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)

    def draw(self) -> FaultRule | None:
        if self.rate <= 0 or self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(("503", "504", "503", "reset", "malformed", "truncated"))
        if kind in ("503", "504"):
            return FaultRule(match="", kind="status", status=int(kind), retry_after="1",
                             code="serviceNotAvailable" if kind == "503" else "UnknownError",
                             message="Service Unavailable" if kind == "503" else "Gateway Timeout")
        return FaultRule(match="", kind=kind)
