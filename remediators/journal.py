"""The remediation journal: append-only rows in the database (``scanner.store.Store.journal_append``).

One *action* is one target of one step (a rule, a role assignment, the mailbox's forwarding). Its rows, in order:
``started`` (written BEFORE the change, with the before-image) → ``applied`` | ``failed`` → ``verified`` |
``verify_failed`` → possibly ``undo_started`` → ``undone`` | ``undo_failed``. Decisions that change nothing are rows
too: ``skipped`` (nothing to do, not allowed, synced account ...), ``pending`` (over the per-run cap),
``protected`` and ``dry_run``. A state change is always a new row; rows are never updated.

Nothing secret is ever written: the reset_password step journals "password reset, delivered to <where>", never the
password (a test greps the database file for it).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scanner.store import Store

STATUSES = ("started", "applied", "failed", "verified", "verify_failed", "skipped", "pending", "protected",
            "dry_run", "undo_started", "undone", "undo_failed")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class RunJournal:
    """The journal of one remediation run (one ``run_id``, one actor, one mode)."""

    store: Store
    run_id: str
    actor: str
    mode: str = "manual"  # manual | auto
    scan_id: str | None = None

    @classmethod
    def begin(cls, store: Store, *, actor: str | None = None, mode: str = "manual",
              scan_id: str | None = None) -> RunJournal:
        return cls(store=store, run_id=new_id(), actor=actor or os_user(), mode=mode, scan_id=scan_id)

    def _append(self, action_id: str, step: str | None, upn: str | None, target: str | None, status: str, *,
                before: Any = None, after: Any = None, detail: str | None = None) -> str:
        if status not in STATUSES:  # a real check, not an assert: `python -O` must not journal a bad status
            raise ValueError(f"unknown journal status {status!r}")
        self.store.journal_append({
            "action_id": action_id, "run_id": self.run_id, "actor": self.actor, "mode": self.mode, "upn": upn,
            "step": step, "target": target, "status": status, "before": before, "after": after,
            "detail": detail, "scan_id": self.scan_id,
        })
        return action_id

    def started(self, step: str, upn: str, target: str, *, before: Mapping[str, Any], planned: Mapping[str, Any],
                label: str = "", data: Mapping[str, Any] | None = None, user_id: str | None = None) -> str:
        """Written before acting: the before-image (for undo), what the change will be and how it is made."""
        return self._append(new_id(), step, upn, target, "started", before=dict(before),
                            after={"planned": dict(planned), "label": label, "data": dict(data or {}),
                                   "user_id": user_id})

    def record(self, action_id: str, step: str, upn: str, target: str | None, status: str, *,
               after: Any = None, detail: str | None = None, before: Any = None) -> str:
        return self._append(action_id, step, upn, target, status, before=before, after=after, detail=detail)

    def decision(self, upn: str | None, status: str, detail: str, *, step: str | None = None,
                 target: str | None = None, after: Any = None) -> str:
        """A decision that changes nothing (skipped / pending / protected / dry_run): its own action id."""
        return self._append(new_id(), step, upn, target, status, after=after, detail=detail)


def action_rows(store: Store, action_id: str) -> list[dict[str, Any]]:
    return store.journal(action_id=action_id)


def action_state(rows: list[dict[str, Any]]) -> str:
    """The latest state of one action: the status of its last row ('' when there are none)."""
    return rows[-1]["status"] if rows else ""


def done_since(store: Store, upn: str, since: str | None) -> dict[str, str]:
    """step -> time of the latest ``applied`` row for ``upn`` at or after ``since`` (for containment idempotency).

    Rows whose action was later undone do not count.
    """
    if not since:
        return {}
    rows = store.journal(upn=upn)
    undone = {r["action_id"] for r in rows if r["status"] == "undone"}
    out: dict[str, str] = {}
    for r in rows:
        if r["status"] == "applied" and r["time"] >= since and r["action_id"] not in undone and r["step"]:
            out[r["step"]] = r["time"]
    return out


def undo_entry(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a step's undo needs, from an action's rows: the before-image, how it was changed, what it became."""
    started = next((r for r in rows if r["status"] == "started"), None)
    applied = next((r for r in rows if r["status"] == "applied"), None)
    first = rows[0]
    info = (started or {}).get("after") or {}
    return {"action_id": first["action_id"], "step": first["step"], "upn": first["upn"], "target": first["target"],
            "user_id": info.get("user_id"), "data": info.get("data") or {}, "label": info.get("label", ""),
            "before": (started or {}).get("before") or {}, "after": (applied or {}).get("after") or {}}


def unconfirmed_since(store: Store, upn: str, since: str | None) -> dict[str, dict[str, str]]:
    """step -> {target -> action id}: changes applied to ``upn`` at or after ``since`` whose read-back is not confirmed
    yet (the action's last row is ``applied`` or ``verify_failed``; undone or verified ones are settled).

    Exchange writes lag reads (graph-api.md §3.2): a later run that still reads the old value must re-check these, not
    apply them again from a stale read.
    """
    if not since:
        return {}
    last: dict[str, dict[str, Any]] = {}
    applied_at: dict[str, str] = {}
    for r in store.journal(upn=upn):
        last[r["action_id"]] = r
        if r["status"] == "applied":
            applied_at[r["action_id"]] = r["time"]
    out: dict[str, dict[str, str]] = {}
    for aid, r in last.items():
        if aid in applied_at and applied_at[aid] >= since and r["status"] in ("applied", "verify_failed") \
                and r.get("step") and r.get("target"):
            out.setdefault(r["step"], {})[r["target"]] = aid
    return out
