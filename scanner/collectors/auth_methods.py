"""Authentication methods: ``GET /users/{id}/authentication/methods`` (polymorphic on ``@odata.type``, graph-api.md
§4.1) through ``$batch``. App passwords are invisible to Graph (§4.3): the report lists them as a manual check, and
the ``protocols`` collection (legacy protocols enabled) is the nearest signal."""

from __future__ import annotations

from typing import Any

from scanner.collectors._util import parse_dt
from scanner.snapshot import AuthMethod


def parse_method(raw: dict[str, Any]) -> AuthMethod | None:
    mid = raw.get("id")
    odata = raw.get("@odata.type")
    if not isinstance(mid, str) or not isinstance(odata, str):
        return None
    lifetime = raw.get("lifetimeInMinutes")
    return AuthMethod(
        id=mid,
        method_type=odata.rsplit(".", 1)[-1].lstrip("#"),
        created_date_time=parse_dt(raw.get("createdDateTime")),
        display_name=raw.get("displayName"),
        phone_number=raw.get("phoneNumber"),
        phone_type=raw.get("phoneType"),
        email_address=raw.get("emailAddress"),
        is_usable=raw.get("isUsable") if isinstance(raw.get("isUsable"), bool) else None,
        start_date_time=parse_dt(raw.get("startDateTime")),
        lifetime_in_minutes=lifetime if isinstance(lifetime, int) else None,
        device_tag=raw.get("deviceTag"),
    )


def parse_methods(values: list[dict[str, Any]]) -> tuple[AuthMethod, ...]:
    return tuple(m for m in (parse_method(v) for v in values) if m is not None)
