"""Mail folders: the top-level list with ``includeHiddenFolders=true`` (attackers hide target folders), plus the
folders inbox rules point at (``moveToFolder`` / ``copyToFolder`` ids) when they are deeper than the top level.

v1.0 ``mailFolder`` has no ``wellKnownName`` (graph-api.md §2.4). Well-known names are derived, cheapest first:
1. top-level folders (children of the message root, which the list returns with hidden ones) whose display name is the
   English default name of a well-known folder: default folders cannot share a name with a sibling, so in an
   English mailbox the list alone names them (no extra request);
2. only when a rule target (or one of its ancestors) is a folder neither named that way nor by an English default
   name — i.e. it could be a *localised* default folder — the well-known names that could still matter and were not
   derived are looked up by ``GET mailFolders/{name}?$select=id`` and matched by id (see :func:`wanted_lookups`).
Rule targets deeper than the top level are fetched by id, and their missing ancestors too (a few rounds), so a rule
into ``Archive\\2024`` sees its low-visibility parent. RSS Subscriptions / Notes have no v1.0 well-known name: they
are found by display name (localised names are a known gap).
Folders named by Exchange (``Get-InboxRule`` prints paths, not ids) that cannot be matched get a synthetic id
``exo-path:<path>`` so a rule never points at nothing.
"""

from __future__ import annotations

from typing import Any

from scanner.snapshot import MailFolder

FOLDER_SELECT = "id,displayName,parentFolderId,isHidden,childFolderCount"
FOLDER_LIST_PARAMS = "includeHiddenFolders=true&$top=250&$select=" + FOLDER_SELECT
# The well-known names a rule target is compared with (the rest cannot be rule targets in practice).
WELL_KNOWN = ("inbox", "deleteditems", "junkemail", "archive", "conversationhistory", "sentitems", "drafts",
              "outbox", "syncissues", "recoverableitemsdeletions", "scheduled", "clutter")
# Well-known names whose knowledge can change how a rule target is classified (inbox vs. low-visibility folders);
# sentitems/drafts read as ordinary mail folders either way. Those outside the message-root tree:
MATTERS = frozenset({"inbox", "deleteditems", "junkemail", "archive", "conversationhistory", "outbox", "syncissues",
                     "recoverableitemsdeletions", "scheduled", "clutter"})
OUTSIDE_ROOT = frozenset({"recoverableitemsdeletions"})
ENGLISH_CORE = frozenset({"inbox", "sentitems", "deleteditems", "drafts"})
# English display names of folders without a v1.0 well-known name (attacker favourites, detections.md).
NAMED = {"rss feeds": "rssfeeds", "rss subscriptions": "rsssubscriptions", "notes": "notes"}
_ENGLISH_WELL_KNOWN = {"inbox": "inbox", "deleted items": "deleteditems", "junk email": "junkemail",
                       "junk e-mail": "junkemail", "archive": "archive", "conversation history": "conversationhistory",
                       "sent items": "sentitems", "drafts": "drafts", "outbox": "outbox", "sync issues": "syncissues",
                       "scheduled": "scheduled", "clutter": "clutter", **NAMED}


def parse_folder(raw: dict[str, Any], well_known: str | None = None) -> MailFolder | None:
    fid = raw.get("id")
    if not isinstance(fid, str):
        return None
    name = raw.get("displayName") or ""
    return MailFolder(id=fid, display_name=name, parent_folder_id=raw.get("parentFolderId"),
                      well_known_name=well_known or NAMED.get(name.strip().lower()),
                      is_hidden=bool(raw.get("isHidden")))


def rule_folder_ids(rules: list[dict[str, Any]]) -> set[str]:
    out = set()
    for r in rules:
        actions = r.get("actions") or {}
        for key in ("moveToFolder", "copyToFolder"):
            v = actions.get(key)
            if isinstance(v, str) and v and not v.startswith("exo-path:"):
                out.add(v)
    return out


class FolderSet:
    """Folders of one mailbox, by id, with well-known names applied."""

    def __init__(self, folders: list[MailFolder]) -> None:
        self.by_id: dict[str, MailFolder] = {f.id: f for f in folders}

    def add(self, folder: MailFolder) -> None:
        self.by_id.setdefault(folder.id, folder)

    def apply_well_known(self, ids_by_name: dict[str, str]) -> None:
        for name, fid in ids_by_name.items():
            f = self.by_id.get(fid)
            if f is not None and f.well_known_name != name:
                self.by_id[fid] = f.model_copy(update={"well_known_name": name})

    def top_level_parent(self) -> str | None:
        """The message root's id: the parent shared by the top-level list (None when the list was empty)."""
        parents = {f.parent_folder_id for f in self.by_id.values() if f.parent_folder_id and
                   not f.id.startswith("exo-path:")}
        # The top-level list's parent is the one parent id that is not itself a listed folder.
        roots = [p for p in parents if p not in self.by_id]
        return roots[0] if len(roots) == 1 else None

    def derive_well_known(self, root: str | None) -> dict[str, str]:
        """Well-known ids named by the English default display name of a top-level folder (see module docstring)."""
        out: dict[str, str] = {}
        if root is None:
            return out
        for f in self.by_id.values():
            if f.parent_folder_id != root:
                continue
            name = _ENGLISH_WELL_KNOWN.get(f.display_name.strip().lower())
            if name in WELL_KNOWN and name not in out:
                out[name] = f.id
        return out

    def missing_ancestors(self, ids: set[str], root: str | None) -> set[str]:
        """Ids (targets or their parents) not known yet, walking each target's known chain up to the root."""
        out: set[str] = set()
        for fid in ids:
            cur, seen = fid, set()
            while cur and cur not in seen and cur != root:
                seen.add(cur)
                f = self.by_id.get(cur)
                if f is None:
                    out.add(cur)
                    break
                cur = f.parent_folder_id or ""
        return out

    def wanted_lookups(self, ids: set[str], root: str | None, known: dict[str, str]) -> set[str]:
        """Well-known names worth a ``GET mailFolders/{name}`` for these rule targets: only when some folder of a
        target's chain has no well-known name and no English default name (it could be a localised default folder),
        and only the names that matter and are not known yet. A chain that never reaches the message root (e.g. a
        Recoverable Items folder fetched by id) asks for the names outside the root too."""
        want: set[str] = set()
        todo = MATTERS - set(known)
        if not todo:
            return want
        # Default folder names follow the mailbox language: when the core ones carry their English names, every
        # default folder does, so the top-level names not found by name are folders this mailbox does not have.
        english = ENGLISH_CORE <= set(known)
        for fid in ids:
            cur, seen, reached = fid, set(), False
            ambiguous = False
            while cur and cur not in seen:
                if cur == root:
                    reached = True
                    break
                seen.add(cur)
                f = self.by_id.get(cur)
                if f is None:
                    break
                # Only a top-level folder can be a default folder of the message root (its children are not).
                if not english and f.parent_folder_id == root and f.id not in known.values() and \
                        f.well_known_name is None and _ENGLISH_WELL_KNOWN.get(f.display_name.strip().lower()) is None:
                    ambiguous = True
                cur = f.parent_folder_id or ""
            if fid not in self.by_id:
                continue  # unresolvable id: no well-known name can make it resolve
            if ambiguous or not reached:
                want |= todo if not reached else todo - OUTSIDE_ROOT
        return want

    def resolve_path(self, path: str) -> str:
        """Folder id for an Exchange folder path (last segment by display name), or a synthetic folder."""
        parts = [p for p in path.replace("/", "\\").split("\\") if p]
        leaf = parts[-1] if parts else path
        matches = [f for f in self.by_id.values() if f.display_name.strip().lower() == leaf.strip().lower()]
        if len(matches) == 1:
            return matches[0].id
        synthetic = f"exo-path:{path}"
        self.add(MailFolder(id=synthetic, display_name=leaf,
                            well_known_name=_ENGLISH_WELL_KNOWN.get(leaf.strip().lower())))
        return synthetic

    def folders(self) -> tuple[MailFolder, ...]:
        return tuple(self.by_id.values())
