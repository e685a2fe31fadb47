"""Rendering the HTML report: a jinja2 environment with autoescape and StrictUndefined over the view model."""

from __future__ import annotations

import secrets
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reports.text import attack_url, reveal, safe_url, segments
from scanner.store import Store


def make_env() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True, enabled_extensions=("html", "j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(segments=segments, safe_url=safe_url, attack_url=attack_url)
    env.filters["reveal"] = reveal
    env.filters["n"] = lambda v: f"{int(v):,}"  # thousands separators in counts
    return env


_ENV: Environment | None = None


def env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = make_env()
    return _ENV


def render_report(store: Store, scan_id: str, cfg: Any = None, findings: list[dict[str, Any]] | None = None) -> str:
    from reports.viewmodel import build_report

    model = build_report(store, scan_id, cfg=cfg, findings=findings)
    nonce = secrets.token_urlsafe(18)
    return env().get_template("report.html.j2").render(m=model, nonce=nonce)
