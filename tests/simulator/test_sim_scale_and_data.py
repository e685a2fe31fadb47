"""Scale smoke (lazy generation), scenario data integrity, and the real server + simulate command."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import httpx

from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant

CLASSES = ["A1", "A2", "A3", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "C1", "C2", "C4", "D1", "E1", "E2", "F1",
           "G1", "G2", "H1"]


async def test_100k_tenant_is_lazy():
    t = generate_tenant(users=100_000, seed=11)
    assert t.user_count == 100_000
    assert t.stats["users_built"] == 0 and t.stats["users_live"] == 0
    app = create_app(t)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        r = await c.get("/v1.0/users?$top=999&$select=id,userPrincipalName,accountEnabled")
        assert r.status_code == 200 and len(r.json()["value"]) == 999 and "@odata.nextLink" in r.json()
        assert t.stats["users_built"] <= 999 and t.stats["users_live"] == 0
        assert t.stats["mailboxes_materialised"] <= len(t.explicit)
        last = t.user_at(99_999)
        r = await c.get(f"/v1.0/users/{last.userPrincipalName}")
        assert r.status_code == 200 and r.json()["id"] == last.id
        assert t.stats["upn_index_builds"] == 0  # UPNs of generated users are inverted, not indexed
        r = await c.get("/v1.0/users/$count", headers={"ConsistencyLevel": "eventual"})
        assert r.text == "100000"
        exo = await c.post(f"/adminapi/beta/{t.tenant_id}/InvokeCommand",
                           json={"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "Unlimited"}}},
                           headers={"Authorization": f"Bearer {app.exchange_token}", "Prefer": "odata.maxpagesize=500"})
        assert len(exo.json()["value"]) == 500
    assert t.stats["users_built"] < 3000
    assert t.stats["mailboxes_materialised"] <= len(t.explicit) + 1


def test_generation_is_deterministic():
    a, b = generate_tenant(users=500, seed=3), generate_tenant(users=500, seed=3)
    assert [u.userPrincipalName for u in a.iter_users()] == [u.userPrincipalName for u in b.iter_users()]
    ua, ub = a.user_at(400), b.user_at(400)
    assert [r.displayName for r in a.rules(ua)] == [r.displayName for r in b.rules(ub)]
    assert a.tenant_id == b.tenant_id and a.tenant_id != generate_tenant(users=10, seed=4).tenant_id


def test_background_population_is_realistic():
    t = generate_tenant(users=3000, seed=5, scenarios=False)
    users = list(t.iter_users())
    kinds = {k: sum(1 for u in users if (u.mailbox.kind if u.mailbox else ("guest" if u.userType == "Guest" else "none")) == k)
             for k in ("user", "shared", "room", "guest", "none")}
    assert kinds["user"] > 0.8 * len(users) and all(kinds.values())
    assert any(u.onPremisesSyncEnabled for u in users) and any(not u.accountEnabled and u.mailbox and u.mailbox.kind == "user" for u in users)
    assert len({u.userPrincipalName.lower() for u in users}) == len(users)
    assert t.labels and all(v["label"] == "plain" for v in t.labels.values())
    sample = [u for u in users[100:600] if u.mailbox and u.mailbox.kind == "user"]
    assert any(t.rules(u)[:-1] for u in sample)                   # some ordinary rules
    assert any(len(t.methods(u)) > 1 for u in sample)              # phone/authenticator methods
    assert any(len(t.mailbox_permissions(u)) > 1 for u in users if u.mailbox and u.mailbox.kind == "shared")


def test_scenarios_cover_every_indicator_class():
    t = generate_tenant(users=200, seed=7)
    comp = [v for v in t.labels.values() if v["label"] == "compromised"]
    benign = [v for v in t.labels.values() if v["label"] == "benign_lookalike"]
    assert len(comp) >= 12 and len(benign) >= 12
    covered = {c for v in comp for c in v["classes"]}
    assert set(CLASSES) - {"A2"} <= covered
    assert "hidden_rule" in covered
    assert "A2" in {c for v in benign for c in v["classes"]}
    assert all(v["source"] and v["source"].startswith("https://") and v["notes"] for v in comp + benign)


def test_scenario_files_are_well_formed():
    folder = resources.files("scanner.simulator").joinpath("scenarios")
    for f in folder.iterdir():
        if f.name.endswith(".json"):
            data = json.loads(f.read_text("utf-8"))
            assert isinstance(data, list) and data, f.name
            if f.name != "apps.json":
                for e in data:
                    assert {"scenario", "label", "user"} <= set(e), (f.name, e.get("scenario"))
                    assert e["label"] in ("compromised", "benign_lookalike", "plain")


def test_now_is_injectable_and_relative_times_follow_it():
    from datetime import UTC, datetime
    now = datetime(2030, 1, 1, tzinfo=UTC)
    t = generate_tenant(users=100, now=now)
    m = next(m for m in t.methods(t.user("adele.vance@contoso.com")) if "Authenticator" in m["@odata.type"])
    assert m["createdDateTime"] == "2029-12-31T21:00:00Z"   # 3 h before "now"


def test_real_server_round_trip():
    t = generate_tenant(users=100, seed=1)
    app = create_app(t, SimOptions())
    with SimulatorServer(app, port=0) as srv:
        assert srv.graph_url.startswith("http://127.0.0.1:") and srv.tenant_id == t.tenant_id
        r = httpx.get(f"{srv.graph_url}/v1.0/users?$top=2", headers={"Authorization": f"Bearer {srv.graph_token}"})
        assert r.status_code == 200 and r.json()["@odata.nextLink"].startswith(srv.graph_url)
        r = httpx.post(f"{srv.exchange_url}/adminapi/beta/{srv.tenant_id}/InvokeCommand",
                       json={"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "lee.gu@contoso.com"}}},
                       headers={"Authorization": f"Bearer {srv.exchange_token}"})
        assert r.json()["value"][0]["UserPrincipalName"] == "lee.gu@contoso.com"
        assert len(r.headers.get_list("date")) == 1
        t.faults.add(r"/users$", kind="reset")
        try:
            httpx.get(f"{srv.graph_url}/v1.0/users", headers={"Authorization": f"Bearer {srv.graph_token}"})
            raise AssertionError("expected the connection to be cut")
        except httpx.RemoteProtocolError:
            pass
        r = httpx.get(f"{srv.graph_url}/v1.0/users?$top=1", headers={"Authorization": f"Bearer {srv.graph_token}"})
        assert r.status_code == 200


def test_simulate_command_prints_banner_first():
    code = ("import sys; from scanner.simulator.cli import simulate_command; "
            "sys.argv=['simulate','--port','0','--users','60']; simulate_command()")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
    finally:
        p.terminate()
        p.wait(10)
    parts = dict(kv.split("=", 1) for kv in line.split(" "))
    assert list(parts) == ["graph", "exchange", "tenant", "graph_token", "exchange_token"]
    assert parts["graph"].startswith("http://127.0.0.1:") and parts["graph_token"].count(".") == 2


async def test_read_cache_is_bounded_and_regenerates_identically():
    t = generate_tenant(users=2000, seed=9)
    t.live_cache_size = 50
    app = create_app(t)
    victim = next(u for u in (t.user_at(i) for i in range(1500, 1600))
                  if u.mailbox and u.mailbox.kind == "user" and len(t.rules(u)) > 1)
    victim._rules = None  # read it through the API below
    changed = t.user_at(1600)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        async def rules(u):
            r = await c.get(f"/v1.0/users/{u.id}/mailFolders/inbox/messageRules")
            return r.json().get("value")
        first = await rules(victim)
        assert first
        await c.patch(f"/v1.0/users/{changed.id}", json={"accountEnabled": False})
        for i in range(100, 400):
            await c.get(f"/v1.0/users/{t.user_id_for(i)}/authentication/methods")
        assert t.stats["users_evicted"] > 0 and len(t._live) <= 50
        assert await rules(victim) == first            # same rule ids and content after eviction
        assert t.user_at(1600).accountEnabled is False  # changed users are pinned
