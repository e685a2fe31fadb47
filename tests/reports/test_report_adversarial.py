"""Attacker-controlled tenant strings render inert (escaped, no extra script/style/link) and legible (markers)."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from html.parser import HTMLParser

import report_adversarial as adv


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.count[tag] += 1
        self.attrs += [(k.lower(), v) for k, v in attrs]


def test_payloads_are_escaped_and_add_no_markup(tmp_path) -> None:
    paths, _ = adv.build(tmp_path)
    doc = paths["html"].read_text(encoding="utf-8")
    for payload in adv.PAYLOADS:
        assert payload not in doc, payload
    tags = _Tags()
    tags.feed(doc)
    # Exactly our own elements: one stylesheet, one data island, one script, the severity chart
    # (the timeline needs two scans); and no event-handler
    # attribute, style attribute or external resource anywhere.
    assert tags.count["style"] == 1 and tags.count["script"] == 2 and tags.count["svg"] == 1
    assert tags.count["img"] == 0 and tags.count["iframe"] == 0 and tags.count["link"] == 0
    assert not [a for a in tags.attrs if a[0].startswith("on") or a[0] in ("style", "src", "srcdoc")], tags.attrs
    assert adv.JS_URL in html.unescape(doc)  # shown as text ...
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", doc, re.I)  # ... never as a link
    hrefs = re.findall(r'href="([^"]*)"', doc)
    assert hrefs and all(h.startswith(("#", "https://attack.mitre.org/techniques/T", "https://mysignins."))
                         for h in hrefs), hrefs
    # The forged technique id got no link; the real one did.
    assert "https://attack.mitre.org/techniques/T1564/008/" in hrefs
    attack = [h for h in hrefs if "attack.mitre.org" in h]
    assert all(re.fullmatch(r"https://attack\.mitre\.org/techniques/T\d{4}/(\d{3}/)?", h) for h in attack), attack


def test_payloads_are_legible(tmp_path) -> None:
    paths, _ = adv.build(tmp_path)
    doc = paths["html"].read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", doc))
    for payload in (adv.XSS_IMG, adv.XSS_SCRIPT, adv.CSS_BREAK):
        assert payload in text, payload
    # Invisible and direction-changing characters never reach the page raw; they show as markers.
    assert "\u202e" not in doc and "\u200b" not in doc and "\u2028" not in doc
    assert "⟦U+202E⟧exe.txt" in text and "in⟦U+200B⟧voice" in text and "a⟦U+2028⟧b⟦U+2029⟧c" in text


def test_csp_is_strict_and_scripts_carry_the_nonce(tmp_path) -> None:
    paths, _ = adv.build(tmp_path)
    doc = paths["html"].read_text(encoding="utf-8")
    m = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', doc)
    assert m
    csp = m.group(1)
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{16,})'", csp).group(1)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert f"style-src 'nonce-{nonce}'" in csp and "img-src data:" in csp
    assert f'<script nonce="{nonce}">' in doc and f'<style nonce="{nonce}">' in doc
    assert not re.search(r"\b(src|href)=\"(https?:)?//", doc.replace('href="https://attack.mitre.org', "")
                         .replace('href="https://mysignins.microsoft.com', ""))  # nothing loaded from the network


def test_json_data_island_is_escaped_and_parses(tmp_path) -> None:
    paths, _ = adv.build(tmp_path)
    doc = paths["html"].read_text(encoding="utf-8")
    island = re.search(r'<script type="application/json" id="clean-data">(.*?)</script>', doc, re.S).group(1)
    assert "<" not in island and ">" not in island and "&" not in island.replace("&#34;", "")
    names = json.loads(html.unescape(island)) if "&#" in island else json.loads(island)
    assert f"clean{adv.SCRIPT_CLOSE}@contoso.com" in names
