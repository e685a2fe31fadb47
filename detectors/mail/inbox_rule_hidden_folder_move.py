"""Inbox rule moves mail to a low-visibility folder (detections.md §B2).

Sees: ``moveToFolder`` resolved against the mailbox's folder list — RSS Feeds/Subscriptions, Conversation History,
Archive, Notes, Junk Email, Deleted Items, Sync Issues, Calendar and other non-mail folders (incl. common localised
names and subfolders of them), hidden folders, and ids that resolve to no folder at all; markAsRead in the same rule.
Misses: moves to innocently named custom folders the user never opens; client-only rules. Needs the folder list:
without it the detector reports a coverage gap instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from detectors._rules import rules_of
from scanner.snapshot import AccountSnapshot

META = DetectorMeta(
    id="mail.inbox_rule_hidden_folder_move",
    title="Inbox rule moves mail to a folder the user rarely looks at",
    severity=Severity.MEDIUM,
    technique="T1564.008",
    rationale="Attackers file replies and warnings into RSS, Conversation History, Archive, Notes or Junk (often "
              "marked as read) so the victim does not see the conversation they are hijacking.",
    remediation=("disable_rules",),
    requires=("inbox_rules", "folders"),
    false_positives=("Notification noise (Jira, CI, monitoring, newsletters) filed to Archive: rules keyed on "
                     "automated senders are reported at Low with a small score.",
                     "Teams 'missed conversation' mail moved to Conversation History."),
)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    for rv in rules_of(account, ctx, need_folders=True):
        if not rv.move or not rv.move.low_visibility:
            continue
        ev = {**rv.evidence(), **rv.move.evidence(), "mark_as_read": rv.mark_as_read}
        if rv.move.kind in ("nonmail", "unresolved"):
            sev, score = Severity.HIGH, 25
            ev["why"] = "target is not a normal mail folder" if rv.move.kind == "nonmail" else \
                "target id does not resolve to any folder of this mailbox"
        elif rv.keyed_on_automated_sender:
            sev, score = Severity.LOW, 5
            ev["why"] = "rule keyed on automated senders (usually notification noise)"
        elif rv.mark_as_read:
            sev, score = Severity.HIGH, 25
        else:
            sev, score = Severity.MEDIUM, 15
        if not rv.rule.is_enabled:
            sev, score = Severity.LOW, 3
        yield make_finding(META, account, evidence=ev, artefact=rv.artefact, severity=sev, score=score)
