"""The report in a real browser (Debian's chromium driven by Playwright): filters, sorting, search, and proof that no
tenant-supplied script ran. Skipped, with the reason, only when chromium or Playwright is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import report_adversarial as adv

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    paths, _ = adv.build(tmp_path)
    ctx = browser.new_context(viewport={"width": 1300, "height": 900}, java_script_enabled=True)
    pg = ctx.new_page()
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    pg.on("console", lambda m: console.append((m.type, m.text)))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: requests.append(r.url))
    pg.goto(paths["html"].as_uri())
    pg.wait_for_selector("html[data-ready='1']")  # our nonce'd script ran under the CSP
    pg.console_log, pg.page_errors, pg.requests = console, errors, requests  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def visible_upns(pg) -> list[str]:
    return pg.eval_on_selector_all("details.acct:not([hidden])", "els => els.map(e => e.dataset.upn)")


def test_no_tenant_script_runs_and_nothing_is_fetched(page, tmp_path) -> None:
    # Open every account so any planted handler would have had its chance to fire.
    page.eval_on_selector_all("details", "els => els.forEach(e => e.open = true)")
    page.mouse.wheel(0, 20000)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.page_errors == []
    assert [m for m in page.console_log if m[0] == "error"] == []  # not even a CSP violation: nothing tried
    assert [u for u in page.requests if not u.startswith("file://")] == []
    # The stylesheet survived the </style> payload: the layout is intact and the payload is visible text.
    assert page.evaluate("getComputedStyle(document.body).display") == "block"
    assert page.is_visible("text=" + adv.CSS_BREAK)
    body = page.inner_text("body")
    assert adv.XSS_SCRIPT in body and adv.XSS_IMG in body
    assert "⟦U+202E⟧exe.txt" in body and "\u202e" not in body
    page.screenshot(path=str(tmp_path / "report-open.png"), full_page=True)
    assert (tmp_path / "report-open.png").stat().st_size > 10_000


def test_filters_sort_and_search(page, tmp_path) -> None:
    everyone = visible_upns(page)
    assert everyone[:2] == [adv.VICTIM, adv.EVIL_UPN.lower()]  # compromised first, highest score first
    assert set(everyone) == {adv.VICTIM, adv.EVIL_UPN.lower(), "suspect@contoso.com", "quiet@contoso.com"}

    page.select_option("#f-verdict", "suspicious")
    assert visible_upns(page) == ["suspect@contoso.com"]
    assert page.inner_text("#shown") == "1 of 4 accounts, 0 of 1 tenant-wide shown"

    page.select_option("#f-verdict", "")
    page.select_option("#f-severity", "critical")
    assert visible_upns(page) == [adv.VICTIM]

    page.select_option("#f-severity", "-1")
    page.select_option("#f-technique", "T1564.008")
    assert visible_upns(page) == [adv.VICTIM]
    page.select_option("#f-technique", "")

    page.check("#f-new")
    assert visible_upns(page) == [adv.VICTIM, adv.EVIL_UPN.lower()]
    page.uncheck("#f-new")

    page.select_option("#f-detector", "mail.mailbox_external_forward")
    assert sorted(visible_upns(page)) == sorted([adv.EVIL_UPN.lower(), "suspect@contoso.com", "quiet@contoso.com"])
    page.select_option("#f-detector", "")

    page.fill("#f-search", "suspect")
    assert visible_upns(page) == ["suspect@contoso.com"]
    # Search also finds clean accounts, which are not drawn one by one.
    page.fill("#f-search", "user0")
    assert visible_upns(page) == []
    assert page.is_visible("#none-shown")
    assert page.inner_text("#clean-count").startswith("10 clean accounts match")
    assert page.eval_on_selector_all("#clean-results li", "els => els.length") == 10
    page.fill("#f-search", "</script>")
    assert page.eval_on_selector_all("#clean-results li", "els => els.map(e => e.textContent)") == [
        f"clean{adv.SCRIPT_CLOSE}@contoso.com"]
    page.fill("#f-search", "")

    page.click("#acct-head button[data-key='upn']")
    assert visible_upns(page) == sorted(everyone)
    page.click("#acct-head button[data-key='score']")
    assert visible_upns(page)[0] == adv.VICTIM

    page.select_option("#f-verdict", "compromised")
    page.click(f"#acct-list details[data-upn='{adv.VICTIM}'] > summary")
    assert page.is_visible("text=Manual checklist")
    assert page.is_visible("text=Change the password on-premises")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.screenshot(path=str(tmp_path / "report-filtered.png"), full_page=True)
    assert (tmp_path / "report-filtered.png").stat().st_size > 10_000


def visible_tenant_rows(pg) -> int:
    return pg.eval_on_selector_all("#tenant-table tr.tf:not([hidden])", "els => els.length")


def test_tenant_wide_findings_are_drawn_and_filtered(page, tmp_path) -> None:
    assert visible_tenant_rows(page) == 1
    row = page.inner_text("#tenant-table tr.tf")
    assert adv.XSS_IMG in row and "Global Administrator" in row and "app (service principal)" in row.lower()
    assert page.inner_text("#card-tenant .n") == "1"
    page.select_option("#f-severity", "critical")  # the app's finding is High
    assert visible_tenant_rows(page) == 0 and page.is_visible("#tenant-none-shown")
    page.select_option("#f-severity", "high")
    assert visible_tenant_rows(page) == 1
    page.select_option("#f-verdict", "compromised")  # no verdict: a verdict filter hides it
    assert visible_tenant_rows(page) == 0
    page.select_option("#f-verdict", "")
    page.fill("#f-search", "global admin")
    assert visible_tenant_rows(page) == 1 and visible_upns(page) == []
    assert page.inner_text("#shown") == "0 of 4 accounts, 1 of 1 tenant-wide shown"
    page.fill("#f-search", "")
    page.select_option("#f-detector", "roles.service_principal_privileged")
    assert visible_tenant_rows(page) == 1 and visible_upns(page) == []
    page.click("#tenant-table details.ev > summary")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.locator("#tenant").screenshot(path=str(tmp_path / "report-tenant.png"))
    assert (tmp_path / "report-tenant.png").stat().st_size > 5_000


def test_printing_expands_every_drawn_account_and_restores_afterwards(page) -> None:
    closed = "Array.from(document.querySelectorAll('main details')).filter(d => !d.open).length"
    assert page.evaluate(closed) > 0
    page.select_option("#f-verdict", "compromised")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert page.evaluate(closed) == 0  # accounts and their evidence tables
    assert visible_upns(page) == [adv.VICTIM, adv.EVIL_UPN.lower()]  # a filter still applies to the printout
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('.filters')).display") == "none"
    page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert page.evaluate(closed) > 0
