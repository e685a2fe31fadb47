"""Invisible and bidi characters render as the same visible ``⟦U+XXXX⟧`` marker whether the report receives the raw
character or the detectors' textual ``<U+XXXX>`` rendering (``detectors._text.visible``), in HTML, CSV and JSON."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from report_builders import finding, make_scan, open_store, user

from detectors._text import visible
from reports import write_outputs
from reports.text import reveal, segments, strip_hidden
from reports.viewmodel import account_view

RAW_NAME = "In\u200bbox\u200b"
RAW_KEYWORD = "\x00"
RAW_FOLDER = "RSS\u2060Feeds"


def test_textual_and_raw_forms_give_the_same_markers() -> None:
    assert visible(RAW_NAME) == "In<U+200B>box<U+200B>"  # what the detectors store
    assert reveal(visible(RAW_NAME)) == reveal(RAW_NAME) == "In⟦U+200B⟧box⟦U+200B⟧"
    assert [(s.text, s.hidden) for s in segments("a<U+2060>b\u202ec")] == [
        ("a", False), ("⟦U+2060⟧", True), ("b", False), ("⟦U+202E⟧", True), ("c", False)]
    assert reveal("bodyContains '<U+0000>'; tag <U+E0041>") == "bodyContains '⟦U+0000⟧'; tag ⟦U+E0041⟧"
    # A visible code point written as text stays text: only invisible ones are turned into markers.
    assert reveal("<U+0041> <U+00E9> <U+110000> <U+20> <U+200B") == "<U+0041> <U+00E9> <U+110000> <U+20> <U+200B"
    assert strip_hidden("in<U+200B>vo\u200bice") == "invoice"


def _build(tmp_path: Path) -> tuple[dict[str, Path], dict]:
    # Evidence exactly as detectors/_rules.py writes it: names and condition summaries through visible().
    ev = {"rule_name": visible(RAW_NAME), "conditions": f"bodyContains {visible(RAW_KEYWORD)!r}",
          "actions": f"move to {visible(RAW_FOLDER)}; mark as read", "folder": visible(RAW_FOLDER),
          "raw_note": "raw\u200bzero-width"}
    f = finding("victim@contoso.com", "mail.inbox_rule_hides_mail", severity="high", artefact="r1",
                title=f"Hidden rule {visible(RAW_NAME)}", evidence=ev)
    with open_store(tmp_path) as store:
        sid = make_scan(store, [user("victim@contoso.com")], [f])
        paths = write_outputs(store, sid, tmp_path / "out")
    return paths, f


def test_report_html_shows_markers_not_the_textual_form(tmp_path: Path) -> None:
    paths, _ = _build(tmp_path)
    doc = paths["html"].read_text(encoding="utf-8")
    block = doc[doc.index('<div id="acct-list">'):doc.index('<p id="none-shown"')]
    assert "&lt;U+" not in block and "<U+" not in block  # no literal "<U+200B>" left anywhere in the account
    assert "\u200b" not in block and "\u2060" not in block
    marks = re.findall(r'<span class="inv"[^>]*>(⟦U\+[0-9A-F]+⟧)</span>', block)
    # title (2), sentence: keyword + rule name (3), evidence table: rule name (2), conditions, actions, folder,
    # raw note — every one highlighted.
    assert marks.count("⟦U+200B⟧") >= 7 and "⟦U+0000⟧" in marks and marks.count("⟦U+2060⟧") >= 2


def test_csv_and_json_summary_use_the_same_markers(tmp_path: Path) -> None:
    paths, _ = _build(tmp_path)
    with paths["csv"].open(encoding="utf-8-sig", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    for col in ("title", "summary", "evidence"):
        assert "<U+" not in row[col] and "\u200b" not in row[col], col
    assert row["title"] == "Hidden rule In⟦U+200B⟧box⟦U+200B⟧"
    assert "'⟦U+0000⟧'" in row["summary"] and "In⟦U+200B⟧box⟦U+200B⟧" in row["summary"]
    assert "raw⟦U+200B⟧zero-width" in row["evidence"] and "RSS⟦U+2060⟧Feeds" in row["evidence"]
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    (f,) = data["findings"]
    assert f["evidence"]["rule_name"] == "In<U+200B>box<U+200B>"  # the machine-readable evidence is as stored
    assert "In⟦U+200B⟧box⟦U+200B⟧" in f["summary"]


def test_search_text_ignores_both_forms() -> None:
    f = finding("v@contoso.com", "mail.inbox_rule_hides_mail", title=f"Rule {visible('in' + chr(0x200B) + 'voice')}",
                evidence={"rule_name": "x"})
    a = account_view({"upn": "v@contoso.com", "verdict": "suspicious"}, [f])
    assert "rule invoice" in a.search
