"""Configuration: TOML read with tomllib, validated with pydantic. Unknown keys and wrong types are errors naming the key.

Secrets never live in the file: the client secret comes from ``M365SWEEP_CLIENT_SECRET``, access tokens from
``M365SWEEP_GRAPH_TOKEN`` / ``M365SWEEP_EXCHANGE_TOKEN``. A config that seems to contain a secret is refused.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CLOUDS: dict[str, dict[str, str]] = {
    # cloud -> sign-in authority host, Graph host, Exchange host (graph-api.md §3.3, §10.2)
    "global": {
        "authority": "login.microsoftonline.com",
        "graph": "https://graph.microsoft.com",
        "exchange": "https://outlook.office365.com",
    },
    "usgov": {
        "authority": "login.microsoftonline.us",
        "graph": "https://graph.microsoft.us",
        "exchange": "https://outlook.office365.us",
    },
    "usgov-dod": {
        "authority": "login.microsoftonline.us",
        "graph": "https://dod-graph.microsoft.us",
        "exchange": "https://webmail.apps.mil",
    },
    "china": {
        "authority": "login.chinacloudapi.cn",
        "graph": "https://microsoftgraph.chinacloudapi.cn",
        "exchange": "https://partner.outlook.cn",
    },
}

STEP_NAMES = (
    "revoke_sessions",
    "reset_password",
    "remove_forwarding",
    "disable_rules",
    "unblock_sending",
    "block_sign_in",
    "disable_email_apps",
    "remove_admin_roles",
    "remove_auth_methods",
    "revoke_oauth_grants",
    "remove_delegates",
)

SEVERITIES = ("info", "low", "medium", "high", "critical")


class ConfigError(Exception):
    """A problem with the configuration the user must fix (exit code 2)."""


class _Section(BaseModel):
    # strict: a wrong type is an error naming the key, never a guess (lax pydantic reads allow_auto = "yes" as true
    # and max_accounts_per_run = true as 1). TOML has native booleans, integers and dates, so nothing valid is lost.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class TenantSection(_Section):
    tenant_id: str
    client_id: str | None = None
    cloud: Literal["global", "usgov", "usgov-dod", "china"] = "global"
    name: str | None = None  # a label for reports and multi-tenant summaries

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, v: str) -> str:
        v = v.strip()
        if not (GUID_RE.match(v) or re.match(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", v)):
            raise ValueError("must be the tenant's GUID or its domain name")
        return v


class AuthSection(_Section):
    method: Literal["certificate", "client_secret", "azure_cli", "managed_identity", "access_token"] = "certificate"
    certificate_path: str | None = None
    certificate_password_env: str | None = None  # name of an env var holding the PFX/PEM password
    managed_identity_client_id: str | None = None  # user-assigned identity


class EndpointsSection(_Section):
    graph: str | None = None
    exchange: str | None = None
    authority: str | None = None

    @field_validator("graph", "exchange")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("authority")
    @classmethod
    def _authority(cls, v: str | None) -> str | None:
        # azure-identity takes a host ("login.microsoftonline.com", as config.example.toml shows) or an https URL,
        # and refuses plain http: Entra sign-in needs TLS.
        if v is None:
            return v
        v = v.strip().rstrip("/")
        if not (re.match(r"^https://[^/\s]+", v) or re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", v)):
            raise ValueError("must be a host name (login.microsoftonline.com) or an https URL")
        return v


class StorageSection(_Section):
    database: str = "m365sweep.db"
    output_dir: str | None = None  # default --out for scan / report
    keep_scans: int | None = Field(default=None, ge=1)  # retention: keep the last N scans
    keep_days: int | None = Field(default=None, ge=1)  # retention: keep D days


class AllowEntryModel(_Section):
    value: str
    reason: str | None = None
    expires: date | datetime | None = None


AllowItem = Annotated[str | AllowEntryModel, Field()]


class AllowlistSection(_Section):
    forwarding_domains: list[AllowItem] = Field(default_factory=list)
    forwarding_addresses: list[AllowItem] = Field(default_factory=list)
    accounts: list[AllowItem] = Field(default_factory=list)
    apps: list[AllowItem] = Field(default_factory=list)


class RemediationSection(_Section):
    allow_auto: bool = False
    protected_accounts: list[str] = Field(default_factory=list)
    max_accounts_per_run: int = Field(default=5, ge=0)
    steps: list[str] = Field(default_factory=lambda: ["revoke_sessions", "reset_password", "remove_forwarding",
                                                       "disable_rules"])
    password_file: str | None = None  # where auto mode writes generated passwords (0600); default: not reset in auto

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        for s in v:
            if s not in STEP_NAMES:
                raise ValueError(f"unknown step {s!r}; known steps: {', '.join(STEP_NAMES)}")
        return v


class ScheduleSection(_Section):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    misfire_grace_seconds: int = Field(default=3600, ge=1)


class NotifySection(_Section):
    webhook_url: str | None = None
    webhook_url_env: str | None = None  # take the URL from this env var (webhook URLs often embed a secret)
    format: Literal["json", "teams", "slack"] = "json"
    min_severity: Literal["info", "low", "medium", "high", "critical"] = "high"


class LoggingSection(_Section):
    format: Literal["plain", "json"] = "plain"
    level: Literal["debug", "info", "warning", "error"] = "info"


class ScanSection(_Section):
    concurrency: int = Field(default=16, ge=1, le=256)
    hidden_rules: bool = True  # Get-InboxRule -IncludeHidden per mailbox through Exchange
    sent_items: bool = True
    incremental: bool = False  # skip per-user reads that bulk reports prove unchanged since the last scan
    include_guests: bool = True
    # Seconds before one HTTP request is abandoned (then retried; after max_retries it is a coverage gap).
    # None: the SDK's defaults, 100 s for Graph and 300 s for Exchange (bulk Get-Mailbox pages are slow).
    request_timeout: float | None = Field(default=None, gt=0, le=3600)
    # Retries of one request after 429 / 503 / 504, a timeout or a dropped connection, before it becomes a gap.
    max_retries: int = Field(default=6, ge=0, le=20)
    # Exchange over the project's lean HTTP/1.1 keep-alive transport instead of httpx's pool (less client CPU on big
    # tenants). Off by default: it does not use HTTP(S)_PROXY settings and speaks HTTP/1.1 only.
    fast_exchange_transport: bool = False
    # Per-mailbox Exchange reads (Get-InboxRule, Get-MailboxPermission) sent 10 to a POST .../adminapi/beta/{tenant}/
    # $batch. A service that refuses the batch gets them one at a time automatically; false always sends them singly.
    exchange_batch: bool = True


class Config(_Section):
    tenant: TenantSection
    auth: AuthSection = AuthSection()
    endpoints: EndpointsSection = EndpointsSection()
    storage: StorageSection = StorageSection()
    allowlist: AllowlistSection = AllowlistSection()
    remediation: RemediationSection = RemediationSection()
    schedule: ScheduleSection = ScheduleSection()
    notify: NotifySection = NotifySection()
    logging: LoggingSection = LoggingSection()
    scan: ScanSection = ScanSection()

    # Not from the file: where it was read from (relative paths resolve against it).
    source: Path | None = Field(default=None, exclude=True)

    @property
    def graph_url(self) -> str:
        return (self.endpoints.graph or CLOUDS[self.tenant.cloud]["graph"]).rstrip("/")

    @property
    def exchange_url(self) -> str:
        return (self.endpoints.exchange or CLOUDS[self.tenant.cloud]["exchange"]).rstrip("/")

    @property
    def authority(self) -> str:
        return self.endpoints.authority or CLOUDS[self.tenant.cloud]["authority"]

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute() and self.source is not None:
            p = self.source.parent / p
        return p

    @property
    def database_path(self) -> Path:
        return self.resolve(self.storage.database)

    @property
    def label(self) -> str:
        return self.tenant.name or self.tenant.tenant_id


_SECRET_KEY = re.compile(r"(secret|password|token|key)$", re.I)
_ALLOWED_SECRETISH = {"certificate_password_env", "webhook_url_env"}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")
_AAD_SECRET = re.compile(r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}")  # Entra client secret format
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _scan_for_secrets(data: Any, path: str = "") -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            key_path = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and _SECRET_KEY.search(str(k)) and k not in _ALLOWED_SECRETISH:
                raise ConfigError(
                    f"{key_path}: secrets must not be stored in the config file; "
                    "use M365SWEEP_CLIENT_SECRET / M365SWEEP_GRAPH_TOKEN / M365SWEEP_EXCHANGE_TOKEN or a certificate"
                )
            _scan_for_secrets(v, key_path)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _scan_for_secrets(v, f"{path}[{i}]")
    elif isinstance(data, str) and (_JWT.search(data) or _AAD_SECRET.search(data) or _PEM.search(data)):
        raise ConfigError(f"{path}: this value looks like a secret (token, client secret or private key); "
                          "secrets must not be stored in the config file")


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int) or True)
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'"
    if kind == "missing":
        return f"missing required key '{loc}'"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"'{loc}': {msg}"


def parse_config(data: dict[str, Any], source: Path | None = None) -> Config:
    _scan_for_secrets(data)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}{_format_validation_error(err)}") from None
    return cfg.model_copy(update={"source": source})


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # -sig: editors on Windows save a byte-order mark
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    cfg = parse_config(data, p.resolve())
    if cfg.auth.method == "certificate":
        if not cfg.auth.certificate_path:
            raise ConfigError(f"{p}: 'auth.certificate_path' is required when auth.method = \"certificate\"")
    if cfg.auth.method in ("certificate", "client_secret") and not cfg.tenant.client_id:
        raise ConfigError(f"{p}: 'tenant.client_id' is required when auth.method = \"{cfg.auth.method}\"")
    return cfg


def certificate_warning(cfg: Config) -> str | None:
    """A warning when the certificate's private key is readable by other users."""
    if cfg.auth.method != "certificate" or not cfg.auth.certificate_path:
        return None
    path = cfg.resolve(cfg.auth.certificate_path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"warning: certificate key {path} is readable by other users; chmod 600 it"
    return None


def allow_entries(items: list[Any]) -> list[tuple[str, str | None, datetime | None]]:
    out = []
    for it in items:
        if isinstance(it, str):
            out.append((it, None, None))
        else:
            exp = it.expires
            if isinstance(exp, date) and not isinstance(exp, datetime):
                exp = datetime.combine(exp, time.max, tzinfo=UTC)
            elif isinstance(exp, datetime) and exp.tzinfo is None:
                exp = exp.replace(tzinfo=UTC)
            out.append((it.value, it.reason, exp))
    return out
