"""Webhook notifications: selection, the three payload formats (escaping attacker-controlled strings), delivery with
bounded retries, and a failing webhook that is logged without its secret and never raises."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

import pytest

from scanner.config import parse_config
from scanner.notify import (
    ScanInfo,
    notify_new_findings,
    payload_json,
    payload_slack,
    payload_teams,
    post_webhook,
    select_new,
    slack_escape,
    teams_escape,
    webhook_url,
)
from tests.ops.receiver import Receiver

EVIL_UPN = "a<b>&c@contoso.com"
EVIL_TITLE = 'Rule "<!channel> <https://evil.example|click here>" **bold** [x](https://evil.example) & more'


def finding(sev: str = "high", new: bool = True, upn: str = "alice@contoso.com", title: str = "Forwarding rule",
            suppressed: str | None = None, detector: str = "mail.inbox_rule_external_forward") -> dict[str, Any]:
    return {"id": f"{detector}:{upn}:{sev}:{title}", "account": upn, "detector": detector, "technique": "T1114.003",
            "severity": sev, "title": title, "evidence": {"subject_contains": ["invoice", "SECRET BODY TEXT"]},
            "new_since_last_scan": new, "suppressed": suppressed}


def cfg(**notify: Any) -> Any:
    return parse_config({"tenant": {"tenant_id": "contoso.onmicrosoft.com", "name": "Contoso <Prod>"},
                         "auth": {"method": "access_token"}, "notify": notify})


INFO = ScanInfo(tenant_label="Contoso <Prod> & Co", tenant_id="contoso.onmicrosoft.com", scan_id="S1",
                started="2026-01-01T02:00:00Z", finished="2026-01-01T02:05:00Z", accounts_scanned=60)


def test_select_new_keeps_only_new_unsuppressed_at_or_above_floor() -> None:
    fs = [finding("critical", upn="c@x"), finding("high", upn="h@x"), finding("medium", upn="m@x"),
          finding("critical", new=False, upn="old@x"), finding("high", suppressed="allow-listed", upn="s@x")]
    assert [f["account"] for f in select_new(fs, "high")] == ["c@x", "h@x"]
    assert [f["account"] for f in select_new(fs, "medium")] == ["c@x", "h@x", "m@x"]
    assert select_new(fs[3:], "info") == []


def test_json_payload_carries_data_and_never_evidence() -> None:
    p = payload_json(INFO, [finding("critical", upn=EVIL_UPN, title=EVIL_TITLE)])
    text = json.dumps(p)
    back = json.loads(text)
    assert back["findings"][0]["account"] == EVIL_UPN  # data, verbatim, JSON-escaped by the encoder
    assert back["findings"][0]["title"] == EVIL_TITLE
    assert back["tenant"] == {"label": "Contoso <Prod> & Co", "id": "contoso.onmicrosoft.com"}
    assert back["new_findings"] == 1 and back["by_severity"] == {"critical": 1}
    assert "SECRET BODY TEXT" not in text and "evidence" not in back["findings"][0]


def test_slack_payload_escapes_control_characters() -> None:
    p = payload_slack(INFO, [finding("high", upn=EVIL_UPN, title=EVIL_TITLE)])
    texts = [p["text"]] + [b["text"]["text"] for b in p["blocks"] if "text" in b] + \
        [e["text"] for b in p["blocks"] for e in b.get("elements", [])]
    for t in texts:
        assert "<" not in t and ">" not in t  # no <!channel>, no <url|label> links can form
    body = p["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt;" in body and "&lt;https://evil.example|click here&gt;" in body
    assert "a&lt;b&gt;&amp;c@contoso.com" in body
    assert "Contoso &lt;Prod&gt; &amp; Co" in p["text"]
    assert slack_escape("&amp;") == "&amp;amp;"  # & first: an entity in data stays visible as typed


def test_teams_payload_is_an_adaptive_card_with_markdown_escaped() -> None:
    p = payload_teams(INFO, [finding("critical", upn=EVIL_UPN, title=EVIL_TITLE)])
    assert p["type"] == "message"
    att = p["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard"
    blocks = [b for b in card["body"] if b["type"] == "TextBlock"]
    line = next(b["text"] for b in blocks if "contoso.com" in b["text"])
    assert "\\[x\\](https://evil.example)" in line  # the link cannot render
    assert "\\*\\*bold\\*\\*" in line
    assert line.startswith("**CRITICAL**")  # our own markup still works
    assert teams_escape("a\nb") == "a b"


def test_retry_with_backoff_until_delivered() -> None:
    delays: list[float] = []
    with Receiver(fail_first=2, fail_status=503) as rx:
        res = post_webhook(rx.url, {"hello": "world"}, attempts=4, base_delay=0.01, sleep=delays.append)
        assert res.sent and res.attempts == 3 and res.status == 200
        assert len(rx.attempts) == 3 and rx.received == [{"hello": "world"}]
    assert len(delays) == 2 and delays[1] > delays[0] * 0.9  # exponential (jittered within [0.5, 1] x)


def test_retry_after_is_honoured_but_bounded() -> None:
    delays: list[float] = []
    with Receiver(fail_first=1, fail_status=429, retry_after="3600") as rx:
        res = post_webhook(rx.url, {"x": 1}, attempts=3, base_delay=0.01, max_delay=2.0, sleep=delays.append)
        assert res.sent and res.attempts == 2
    assert delays == [2.0]


def test_permanent_client_error_is_not_retried() -> None:
    with Receiver(fail_first=10, fail_status=404) as rx:
        res = post_webhook(rx.url, {"x": 1}, attempts=4, base_delay=0.01, sleep=lambda s: None)
        assert not res.sent and res.attempts == 1 and res.status == 404
        assert len(rx.attempts) == 1


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_failing_webhook_is_logged_without_its_secret_and_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/webhookb2/SECRETPART?sig=abc"
    c = cfg(webhook_url=url, format="json", min_severity="high")
    with caplog.at_level(logging.INFO, logger="m365sweep.notify"):
        res = notify_new_findings(c, INFO, [finding("critical")], attempts=3, base_delay=0.001)
    assert res is not None and not res.sent and res.attempts == 3 and res.findings == 1
    assert "failed after 3 attempt(s)" in caplog.text
    assert "SECRETPART" not in caplog.text and "sig=" not in caplog.text


def test_notify_sends_once_per_scan_only_when_something_new(monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as rx:
        monkeypatch.setenv("HOOK_URL", rx.url)
        c = cfg(webhook_url_env="HOOK_URL", format="slack", min_severity="medium")
        assert webhook_url(c) == rx.url
        assert notify_new_findings(c, INFO, [finding("low"), finding("high", new=False)]) is None
        res = notify_new_findings(c, INFO, [finding("low"), finding("medium", upn="m@contoso.com")])
        assert res is not None and res.sent and res.findings == 1
        assert rx.wait_for(1)
        assert len(rx.attempts) == 1
        assert "m@contoso.com" in rx.received[0]["blocks"][1]["text"]["text"]


def test_no_webhook_configured_sends_nothing() -> None:
    assert notify_new_findings(cfg(), INFO, [finding("critical")]) is None


def test_first_scan_reports_standing_findings_once_as_baseline() -> None:
    standing = [finding("critical", new=False, upn="c@x"), finding("medium", new=False, upn="m@x"),
                finding("high", new=False, upn="s@x", suppressed="allow-listed")]
    assert select_new(standing, "high") == []
    assert [f["account"] for f in select_new(standing, "high", baseline=True)] == ["c@x"]
    info = ScanInfo(tenant_label="T", tenant_id="t", scan_id="S", baseline=True)
    assert payload_json(info, select_new(standing, "high", baseline=True))["baseline"] is True
    assert payload_slack(info, standing[:1])["text"].startswith("m365sweep: first scan, 1 finding(s) in T")
