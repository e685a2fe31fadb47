"""End to end: scan the simulated tenant with the real scanner, then read the report a human would read.

Every account the simulator planted as compromised must be drawn in report.html (not folded into the clean summary),
with its findings and their evidence in words; findings.json and the report must agree.
"""

from __future__ import annotations

import html
import json
import re

from reports.evidence import evidence_sentence
from reports.text import reveal
from scanner.sweep import run_scan


def _blocks(doc: str) -> dict[str, str]:
    """upn → the HTML of its <details class="acct"> block (up to the next account or the end of the list)."""
    section = doc[doc.index('<div id="acct-list">'):doc.index('<p id="none-shown"')]
    out = {}
    for part in section.split('<details class="acct ')[1:]:
        upn = re.search(r'data-upn="([^"]+)"', part).group(1)
        out[html.unescape(upn)] = part
    return out


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


async def test_demo_scan_report_shows_every_planted_compromise_with_evidence(sim_env, tmp_path) -> None:
    out = tmp_path / "out"
    result = await run_scan(sim_env.cfg, out_dir=out, **sim_env.kwargs)
    assert set(result.outputs) == {"html", "json", "csv"}
    planted = sorted(u for u, lab in sim_env.tenant.labels.items() if lab["label"] == "compromised")
    assert len(planted) >= 10

    data = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    doc = (out / "report.html").read_text(encoding="utf-8")
    blocks = _blocks(doc)
    by_account: dict[str, list[dict]] = {}
    for f in data["findings"]:
        by_account.setdefault(f["account"].lower(), []).append(f)

    for upn in planted:
        assert upn in blocks, f"{upn} is not drawn in the report"
        block_text = _text(blocks[upn])
        active = [f for f in by_account.get(upn, []) if not f.get("suppressed")]
        assert active, f"{upn} has no active finding"
        for f in active:
            assert f["title"] in block_text, (upn, f["title"])
            # the template shows invisible characters (raw, or the detectors' "<U+200B>" text) as ⟦U+200B⟧ markers;
            # compare on visible text
            sentence = reveal(evidence_sentence(f["detector"], f["evidence"]))
            assert re.sub(r"[^\x20-\x7e]", "", sentence)[:60] in re.sub(r"[^\x20-\x7e]", "", block_text), \
                (upn, sentence)
            dest = f["evidence"].get("destination")
            if dest:
                assert dest in block_text, (upn, dest)
        # The verdict pill shows what the scanner decided, and the manual checklist is there for flagged accounts.
        verdict = next(a["verdict"] for a in data["accounts"] if a["userPrincipalName"].lower() == upn)
        assert f"v-{verdict}" in blocks[upn] or verdict in block_text
        if verdict != "clean":
            assert "Manual checklist" in block_text and "app passwords" in block_text

    # Every scanned account is either drawn or counted as clean in the summary.
    assert len(data["accounts"]) == result.accounts_scanned
    clean_line = re.search(r"<strong>([\d,]+)</strong> account", doc)
    assert clean_line and int(clean_line.group(1).replace(",", "")) + len(blocks) == result.accounts_scanned
