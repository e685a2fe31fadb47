"""Users: ``GET /users`` with ``$select`` and ``$top=999``, paged (graph-api.md §1.1). Required: no users, no scan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scanner.collectors._util import as_list, parse_dt
from scanner.graph.client import GraphApi
from scanner.snapshot import User

# Only collection-safe properties (single-user-only ones such as mailboxSettings answer 501 on the collection).
USER_SELECT = (
    "id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType", "onPremisesSyncEnabled",
    "mobilePhone", "otherMails", "businessPhones", "jobTitle", "department", "createdDateTime",
    "lastPasswordChangeDateTime",
)
PAGE_SIZE = 999  # Graph's maximum for /users


async def iter_user_pages(graph: GraphApi, *, page_size: int = PAGE_SIZE) -> AsyncIterator[list[dict[str, Any]]]:
    async for page in graph.iter_pages("/users", params={"$select": ",".join(USER_SELECT), "$top": page_size},
                                       scope="directory"):
        yield [u for u in page if isinstance(u.get("id"), str) and isinstance(u.get("userPrincipalName"), str)]


def parse_user(raw: dict[str, Any], mailbox_type: str | None) -> User:
    return User(
        id=raw["id"],
        user_principal_name=raw["userPrincipalName"],
        display_name=raw.get("displayName"),
        mail=raw.get("mail"),
        account_enabled=raw.get("accountEnabled"),
        user_type=raw.get("userType"),
        on_premises_sync_enabled=raw.get("onPremisesSyncEnabled"),
        mobile_phone=raw.get("mobilePhone"),
        other_mails=tuple(str(x) for x in as_list(raw.get("otherMails"))),
        business_phones=tuple(str(x) for x in as_list(raw.get("businessPhones"))),
        job_title=raw.get("jobTitle"),
        department=raw.get("department"),
        created_date_time=parse_dt(raw.get("createdDateTime")),
        last_password_change_date_time=parse_dt(raw.get("lastPasswordChangeDateTime")),
        mailbox_type=mailbox_type,
    )
