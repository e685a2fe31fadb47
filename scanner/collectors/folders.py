"""Mail folders: the top-level list with ``includeHiddenFolders=true`` (attackers hide target folders), plus the
folders inbox rules point at (``moveToFolder`` / ``copyToFolder`` ids) when they are deeper than the top level.

v1.0 ``mailFolder`` has no ``wellKnownName`` (graph-api.md §2.4): when a mailbox has rules that move or copy, the
well-known names that matter are looked up by ``GET mailFolders/{name}?$select=id`` and matched by id. RSS
Subscriptions / Notes have no v1.0 well-known name: they are found by display name (localised names are a known gap).
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
# English display names of folders without a v1.0 well-known name (attacker favourites, detections.md).
NAMED = {"rss feeds": "rssfeeds", "rss subscriptions": "rsssubscriptions", "notes": "notes"}
_ENGLISH_WELL_KNOWN = {"inbox": "inbox", "deleted items": "deleteditems", "junk email": "junkemail",
                       "junk e-mail": "junkemail", "archive": "archive", "conversation history": "conversationhistory",
                       "sent items": "sentitems", "drafts": "drafts", "outbox": "outbox", **NAMED}


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
