"""Retry-After is honoured per throttle scope: one mailbox answering 429 delays that mailbox only.

The simulator throttles one mailbox's inbox-rules read once (fault injection, ``Retry-After: 2``). Observed in the
simulator's traffic (the ``$batch`` bodies it received) and in the order accounts reached the store — never in time:
the throttled sub-request is retried once, alone in a POST of its own; every mailbox outside the victim's chunk is
stored before the victim; no other mailbox's sub-request is sent twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scanner.store import Store
from scanner.sweep import CHUNK, run_scan
from tests.conftest import _create_app, make_sim_config
from tests.reliability.helpers import replay_body


class Recorder:
    """ASGI wrapper around the simulator app: remembers the sub-request URLs of every $batch POST, in order."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.batches: list[list[str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/$batch"):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body = b"".join(chunks)
        self.batches.append([r["url"] for r in json.loads(body)["requests"]])
        replay = replay_body(body)

        return await self.app(scope, replay, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


async def test_one_mailbox_429_delays_only_that_mailbox(tmp_path: Path) -> None:
    from scanner.simulator import generate_tenant

    tenant = generate_tenant(users=60, seed=5, scenarios=False)
    users = [u for u in tenant.iter_users() if u.has_mailbox and u.userType != "Guest"]
    victim = users[0]
    tenant.faults.add("/messageRules", kind="throttle", upn=victim.userPrincipalName, retry_after="2", times=1)
    app = Recorder(_create_app(tenant))
    env = make_sim_config(tmp_path, tenant, app)

    result = await run_scan(env.cfg, credential=env.credential, transport=env.transport)
    assert result.errors == [] and result.accounts_scanned == tenant.user_count
    assert result.stats["throttled"] == 1 and result.stats["retries"] == 1

    rules_url = f"/users/{victim.id}/mailFolders/inbox/messageRules"
    sent = [i for i, urls in enumerate(app.batches) if rules_url in urls]
    assert len(sent) == 2, "the throttled sub-request is sent again exactly once"
    assert app.batches[sent[1]] == [rules_url], "the retry goes in a POST of its own, holding nobody else back"
    others = [url for urls in app.batches for url in urls if url.endswith("/messageRules") and url != rules_url]
    assert len(others) == len(set(others)), "no other mailbox's read was repeated"

    with Store(env.cfg.database_path) as store:
        order = [r[0].lower() for r in store.db.execute(
            "select upn from accounts where scan_id = ? order by rowid", [result.scan_id]).fetchall()]
        stored_rules = store.get_account(result.scan_id, victim.userPrincipalName).require("inbox_rules")
    assert len(stored_rules) == len(tenant.visible_rules(victim.userPrincipalName)) + sum(
        1 for r in tenant.rules(victim) if r.hidden and not r.system)
    # The victim's chunk waited for its retry; every other chunk went on and was stored first.
    listed = [u.userPrincipalName.lower() for u in tenant.iter_users()]
    victim_chunk = set(listed[:CHUNK])
    assert victim.userPrincipalName.lower() in victim_chunk
    pos = order.index(victim.userPrincipalName.lower())
    assert all(order.index(u) < pos for u in listed[CHUNK:]), "mailboxes outside the victim's chunk were not held"
