"""Logging for unattended runs: plain or JSON lines (``[logging] format``), with secrets redacted on the way out.

The scanner logs request paths, cmdlet names and tenant strings; it must never log tokens, client secrets, generated
passwords or message bodies. Code is written not to log them, and :class:`RedactingFilter` is the second line of
defence: it rewrites every record (message *and* arguments) before any handler formats it, replacing bearer tokens,
JWT-shaped strings, Entra client-secret-shaped strings, PEM private keys and the current values of the environment
variables that hold our secrets (``M365SWEEP_CLIENT_SECRET`` and friends).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

# Environment variables whose *values* are secrets (names from scanner.graph.factory and docs/operations.md).
SECRET_ENV_VARS = (
    "M365SWEEP_CLIENT_SECRET",
    "M365SWEEP_GRAPH_TOKEN",
    "M365SWEEP_EXCHANGE_TOKEN",
    "M365SWEEP_WEBHOOK_URL",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
)
REDACTED = "[REDACTED]"

# (pattern, keeps group 1): group 1, when kept, is the harmless prefix ("Bearer ", "client_secret=").
_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = (
    # "Authorization: Bearer eyJ..." / "bearer abc.def" — the token, whatever its shape.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), True),
    # JWTs (access tokens, id tokens): base64url parts, the first two start with eyJ ('{"').
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), False),
    # Entra ID client secrets: 3 chars, a digit, 'Q~', 31-34 chars.
    (re.compile(r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"), False),
    # PEM private keys (to the END line, or to the end of the text when cut).
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), False),
    # query/form style "client_secret=...", "password=...", "sig=..." (SAS and webhook signatures).
    (re.compile(r"(?i)(\b(?:client_secret|password|access_token|refresh_token|sig)=)[^\s&,;\"']+"), True),
    # JSON style "password": "...". (A bare "reset_password: done" is a step name, not a secret: left alone.)
    (re.compile(r"(?i)(\"(?:client_secret|password|newPassword|access_token|refresh_token)\"\s*:\s*\")[^\"]*"), True),
)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every secret-looking substring (and every value in ``extra``) replaced by ``[REDACTED]``."""
    for value in extra:
        if value and len(value) >= 6 and value in text:
            text = text.replace(value, REDACTED)
    for rx, keep in _PATTERNS:
        text = rx.sub((lambda m: m.group(1) + REDACTED) if keep else REDACTED, text)
    return text


def secret_env_values(names: Iterable[str] = SECRET_ENV_VARS) -> list[str]:
    return [v for n in names if (v := os.environ.get(n))]


def neutralise(text: str) -> str:
    """Control and format characters (newlines, ESC, bidi overrides, zero-width) as ``\\uXXXX``: tenant strings in a
    message (rule names, display names, service errors) can neither forge a log line nor drive the terminal."""
    return "".join(ch if ch == "\t" or unicodedata.category(ch) not in ("Cc", "Cf") else f"\\u{ord(ch):04x}"
                   for ch in text)


class RedactingFilter(logging.Filter):
    """Rewrites records in place so no handler can emit a secret. Attach to handlers (not loggers) so records
    propagated from any library logger (httpx, azure.identity, apscheduler) pass through it too."""

    def __init__(self, extra_env: Iterable[str] = (), extra_values: Iterable[str] = ()) -> None:
        super().__init__()
        self._env_names = tuple(SECRET_ENV_VARS) + tuple(extra_env)
        self._values = [v for v in extra_values if v]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_env_values(self._env_names) + self._values
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not crash logging
            message = str(record.msg)
        record.msg = neutralise(redact(message, secrets))
        record.args = None
        if record.exc_info:
            # Format the traceback now, redacted, so the handler never formats the raw exception text.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, secrets)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO-8601), level, logger, message, plus ``extra={"tenant": ...}`` keys."""

    _STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._STD and not k.startswith("_"):
                out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(fmt: str = "plain", level: str = "info", stream: TextIO | None = None,
                  extra_env: Iterable[str] = ()) -> logging.Handler:
    """Configure the root logger once (idempotent: replaces the handler it installed before). Returns the handler.

    ``extra_env`` names more environment variables whose values must never be logged (e.g. the
    ``[notify] webhook_url_env`` variable: Teams and Slack webhook URLs embed a secret).
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_m365sweep", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._m365sweep = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter(extra_env=extra_env))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(PLAIN_FORMAT)
        formatter.converter = _gmtime
        handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Library loggers that log full URLs or headers at INFO/DEBUG: keep them at WARNING unless debugging.
    for noisy in ("httpx", "httpcore", "azure", "kiota_http", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # azure-identity logs "<Credential>.get_token failed: ..." as a WARNING before raising; the caller reports the same
    # failure as its own one line (exit 2), so outside debugging the warning is a duplicate.
    logging.getLogger("azure.identity").setLevel(logging.DEBUG if level == "debug" else logging.ERROR)
    return handler


def _gmtime(secs: float | None) -> Any:
    import time

    return time.gmtime(secs)
