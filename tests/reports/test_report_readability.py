"""Readability choices a reviewer asked for, asserted on data and bytes: findings with the same evidence sentence
grouped, chart labels that tell scans apart, the headline sentence, reasons as a list, the previous scan's time."""

from __future__ import annotations

import html
import re

import pandas as pd
from report_builders import finding, make_scan, open_store, user

from reports import write_outputs
from reports.evidence import evidence_sentence
from reports.viewmodel import account_view, severity_chart, timeline

RULE = {"rule_name": ".", "conditions": "subjectContains 'invoice'", "actions": "move to RSS Feeds; mark as read",
        "folder": "RSS Feeds", "folder_kind": "lowvis"}


def test_findings_with_the_same_sentence_are_one_group_most_severe_first() -> None:
    fs = [finding("v@c.com", "mail.inbox_rule_junk_name", severity="medium", artefact="a", evidence=RULE),
          finding("v@c.com", "mail.inbox_rule_hides_mail", severity="critical", artefact="b", evidence=RULE),
          finding("v@c.com", "mail.mailbox_external_forward", severity="high", artefact="c",
                  evidence={"destination": "x@gmail.com", "domain_class": "freemail"})]
    a = account_view({"upn": "v@c.com", "verdict": "compromised"}, fs)
    assert [[f.detector for f in g] for g in a.groups] == [
        ["mail.inbox_rule_hides_mail", "mail.inbox_rule_junk_name"], ["mail.mailbox_external_forward"]]
    assert len(a.findings) == 3  # every finding is still there, only drawn together


def test_obfuscation_note_is_its_own_sentence() -> None:
    s = evidence_sentence("mail.inbox_rule_match_all", {**RULE, "obfuscation": [
        "NUL character in a condition (matches every message)"]})
    assert s.endswith("(rule '.'). NUL character in a condition (matches every message).")
    assert "))" not in s


def test_chart_labels_tell_scans_on_the_same_day_or_minute_apart() -> None:
    def labels(times: list[str]) -> list[str]:
        trend = pd.DataFrame({"scan_id": [f"s{i}" for i in range(len(times))], "started": times,
                              "critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0})
        return [lb.text for lb in severity_chart(trend).labels]

    assert labels(["2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z"]) == ["01-01", "01-02"]
    assert labels(["2026-01-01T02:00:00Z", "2026-01-01T14:30:00Z"]) == ["01-01 02:00", "01-01 14:30"]
    assert labels(["2026-01-01T02:00:01Z", "2026-01-01T02:00:09Z"]) == ["02:00:01", "02:00:09"]


def test_timeline_counts_the_accounts_it_does_not_draw() -> None:
    rows = [{"upn": f"u{i:02d}@c.com", "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-03T00:00:00Z",
             "verdict": "suspicious"} for i in range(30)]
    tl = timeline(rows, now="2026-01-03T00:00:00Z")
    assert len(tl.rows) == 25 and tl.more == 5
    assert [t.text for t in tl.ticks] == ["01-01 00:00", "01-02 00:00", "01-03 00:00"]  # < 3 days: with times


def test_headline_reasons_and_previous_scan_in_the_bytes(tmp_path) -> None:
    with open_store(tmp_path) as store:
        accs = [user("a@contoso.com"), user("b@contoso.com"), user("c@contoso.com")]
        make_scan(store, accs, [])
        sid = make_scan(store, accs, [finding("a@contoso.com", "mail.inbox_rule_hides_mail", evidence=RULE,
                                              artefact="r")])
        doc = write_outputs(store, sid, tmp_path / "out")["html"].read_text(encoding="utf-8")
        prev = store.scan(store.previous_scan_id(sid))["started"]
    head = html.unescape(re.sub(r"<[^>]+>", "", doc[doc.index('id="headline"'):doc.index('<div class="cards">')]))
    assert "1 account looks compromised, out of 3 scanned." in " ".join(head.split())
    assert f"1 finding new since the previous scan of {prev[:10]}" in " ".join(head.split())
    assert '<ul class="reasons"><li><bdi class="ts">reason for compromised</bdi></li></ul>' in doc
    assert "Actions done" in doc and "none pending" in doc
