"""Logging never carries secrets (bearer tokens, JWTs, client secrets, env secret values, in messages, arguments and
tracebacks), JSON lines parse, and the progress displays report done/total, rate and ETA."""

from __future__ import annotations

import io
import json
import logging

import pytest

from scanner.logsetup import setup_logging
from scanner.progress import LogProgress, NullProgress, Progress, RichProgress, make_progress

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJyb2xlcyI6WyJVc2VyLlJlYWQuQWxsIl19.c2lnbmF0dXJlLXBhcnQ"
CLIENT_SECRET = "abc8Q~0123456789abcdefghijklmnopqrstuvwx"


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


def _emit(stream: io.StringIO, fmt: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("M365SWEEP_CLIENT_SECRET", "plain-env-secret-value")
    monkeypatch.setenv("MY_HOOK", "https://example.webhook.office.com/webhookb2/abcdef-SECRET")
    handler = setup_logging(fmt, "info", stream=stream, extra_env=["MY_HOOK"])
    try:
        log = logging.getLogger("m365sweep.test")
        log.info("token %s", JWT)
        log.info("Authorization: Bearer %s", "opaque-token-1234567890")
        log.info("secret in args %s and %s", CLIENT_SECRET, "plain-env-secret-value")
        log.warning("posting to %s", "https://example.webhook.office.com/webhookb2/abcdef-SECRET")
        try:
            raise RuntimeError(f"request failed with header Bearer {JWT}")
        except RuntimeError:
            log.exception("boom")
        log.info("ordinary line for alice@contoso.com")
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_secrets_never_reach_the_log(fmt: str, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _emit(log_stream, fmt, monkeypatch)
    for secret in (JWT, "eyJyb2xlcyI6", "opaque-token-1234567890", CLIENT_SECRET, "plain-env-secret-value",
                   "abcdef-SECRET"):
        assert secret not in out
    assert out.count("[REDACTED]") >= 6
    assert "ordinary line for alice@contoso.com" in out
    if fmt == "json":
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [r["level"] for r in lines][:4] == ["info", "info", "info", "warning"]
        exc = next(r for r in lines if r["message"] == "boom")
        assert "RuntimeError" in exc["exception"] and JWT not in exc["exception"]
        assert all(r["time"].endswith("Z") for r in lines)


def test_log_progress_rate_limited_lines_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    t = [100.0]
    p = LogProgress(interval=5.0, clock=lambda: t[0], tenant="Contoso")
    assert isinstance(p, Progress)
    with caplog.at_level(logging.INFO, logger="m365sweep.progress"):
        p.start("inbox_rules", None)
        p.start("inbox_rules", 100)  # total learnt later: updates, does not reset
        for _ in range(10):
            t[0] += 0.125
            p.advance("inbox_rules")
        assert caplog.records == []  # less than 5 s: quiet
        t[0] += 3.75  # 5 s since start
        p.advance("inbox_rules", 10)
        p.finish("inbox_rules")
        p.finish("inbox_rules")  # idempotent
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["Contoso: inbox_rules: 20/100 (4.0/s, eta 0:20)",
                    "Contoso: inbox_rules: done 20/100 in 5.0s (4.0/s)"]
    assert p.snapshot()["inbox_rules"] == {"done": 20, "total": 100, "finished": True}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_progress_picks_rich_on_a_tty_and_logs_otherwise() -> None:
    assert isinstance(make_progress(io.StringIO()), LogProgress)
    assert isinstance(make_progress(io.StringIO(), quiet=True), NullProgress)
    tty = _Tty()
    p = make_progress(tty, tenant="[red]x")
    assert isinstance(p, RichProgress) and isinstance(p, Progress)
    p.start("users", None)
    p.advance("users", 40)
    p.start("users", 50)
    p.advance("users", 10)
    p.finish("users")
    p.start("mailboxes", 3)
    p.advance("mailboxes")
    p.close()
    out = tty.getvalue()
    assert "50/50" in out and "1/3" in out and "/s" in out and "eta" in out
    assert "[red]x" in out  # tenant label shown literally, not parsed as rich markup


def test_redaction_keeps_step_names_but_hides_key_value_secrets() -> None:
    from scanner.logsetup import redact

    text = ('step reset_password: done; https://h.example/hook?a=1&sig=abcdef123&x=2 client_secret=s3cr3t '
            '{"password": "Hunter2!x"}')
    out = redact(text)
    assert "step reset_password: done" in out
    for secret in ("abcdef123", "s3cr3t", "Hunter2!x"):
        assert secret not in out


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_tenant_strings_cannot_forge_log_lines_or_drive_the_terminal(fmt: str, log_stream: io.StringIO) -> None:
    handler = setup_logging(fmt, "info", stream=log_stream)
    try:
        rule = "Inbox\n2026-12-04 02:00:00,000 INFO m365sweep.sweep: scan clean\x1b[2J\u202eevil"
        logging.getLogger("m365sweep.test").warning("rule %r could not be disabled", rule)
        logging.getLogger("m365sweep.test").warning("rule %s could not be disabled", rule)
    finally:
        logging.getLogger().removeHandler(handler)
    out = log_stream.getvalue()
    assert len(out.splitlines()) == 2  # one line per record: the embedded newline did not start a forged one
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\u001b[2J" in out and "\\u202eevil" in out
