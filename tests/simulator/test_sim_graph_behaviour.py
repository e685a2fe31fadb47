"""Documented Graph behaviour: query validation, errors, $count, filters, write rules, $batch, tokens."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from scanner.simulator import SimOptions, create_app


def err(r: httpx.Response) -> str:
    assert r.headers["content-type"] == "application/json"
    e = r.json()["error"]
    assert set(e["innerError"]) >= {"date", "request-id", "client-request-id"}
    return e["code"]


async def test_query_validation(client):
    r = await client.get("/v1.0/users?$top=1000")
    assert r.status_code == 400 and "between 1 and 999" in r.json()["error"]["message"]
    assert (await client.get("/v1.0/users?$skip=5")).status_code == 400
    r = await client.get("/v1.0/users?$select=id,nonsense")
    assert r.status_code == 400 and err(r) == "Request_BadRequest"
    r = await client.get("/v1.0/users?$select=id,mailboxSettings")
    assert r.status_code == 501
    r = await client.get("/v1.0/users?$filter=accountEnabled ne true")
    assert r.status_code == 400 and err(r) == "Request_UnsupportedQuery"
    r = await client.get("/v1.0/roleManagement/directory/roleAssignments")
    assert r.status_code == 400


async def test_client_request_id_echo_and_headers(client):
    r = await client.get("/v1.0/users?$top=1", headers={"client-request-id": "abc-123"})
    assert r.headers["client-request-id"] == "abc-123" and r.headers["request-id"] and r.headers["date"]
    r = await client.get("/v1.0/users/nobody@contoso.com", headers={"client-request-id": "abc-124"})
    assert r.json()["error"]["innerError"]["client-request-id"] == "abc-124"


async def test_count_and_filters(client, tenant):
    r = await client.get("/v1.0/users/$count")
    assert r.status_code == 400
    r = await client.get("/v1.0/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert r.headers["content-type"].startswith("text/plain") and r.text == "300"
    r = await client.get("/v1.0/users?$count=true&$top=5&$filter=accountEnabled eq false&$select=id,accountEnabled",
                         headers={"ConsistencyLevel": "eventual"})
    doc = r.json()
    disabled = sum(1 for u in tenant.iter_users() if not u.accountEnabled)
    assert doc["@odata.count"] == disabled and all(v["accountEnabled"] is False for v in doc["value"])
    nxt = await client.get(doc["@odata.nextLink"])  # ConsistencyLevel is not required on later pages
    assert nxt.status_code == 200 and "@odata.count" not in nxt.json()
    r = await client.get("/v1.0/users?$filter=userType eq 'Guest'&$select=id,userPrincipalName,userType")
    assert r.json()["value"] and all("#EXT#" in v["userPrincipalName"] for v in r.json()["value"])
    ids = [tenant.user("adele.vance@contoso.com").id, tenant.user("lee.gu@contoso.com").id]
    r = await client.get(f"/v1.0/users?$filter=id in ('{ids[0]}','{ids[1]}')&$select=id")
    assert sorted(v["id"] for v in r.json()["value"]) == sorted(ids)
    r = await client.get("/v1.0/users?$filter=userPrincipalName eq 'lee.gu@contoso.com'&$select=id,mail")
    assert r.json()["value"] == [{"id": ids[1], "mail": "lee.gu@contoso.com"}]


async def test_sent_items_filter_count(client, tenant):
    base = "/v1.0/users/lee.gu@contoso.com/mailFolders/sentitems/messages"
    since = "2026-05-03T12:00:00Z"
    r = await client.get(f"{base}?$filter=sentDateTime ge {since}&$count=true&$select=subject,sentDateTime&$top=100")
    doc = r.json()
    assert doc["@odata.count"] == 900 and len(doc["value"]) == 100 and "@odata.nextLink" in doc
    assert set(doc["value"][0]) == {"@odata.etag", "id", "subject", "sentDateTime"}
    r = await client.get(f"{base}/$count?$filter=sentDateTime ge {since}")
    assert r.text == "900"
    r = await client.get(f"{base}?$filter=sentDateTime ge {since}&$orderby=subject")
    assert r.status_code == 400 and err(r) == "InefficientFilter"
    r = await client.get("/v1.0/users/breakglass@contoso.onmicrosoft.com/mailFolders/sentitems/messages")
    assert r.status_code == 404 and err(r) == "MailboxNotEnabledForRESTAPI"


async def test_hidden_folders_need_include_hidden(client, tenant):
    r = await client.get("/v1.0/users/megan.bowen@contoso.com/mailFolders/inbox/childFolders")
    names = [f["displayName"] for f in r.json()["value"]]
    assert " " not in names
    r = await client.get("/v1.0/users/megan.bowen@contoso.com/mailFolders/inbox/childFolders?includeHiddenFolders=true")
    assert " " in [f["displayName"] for f in r.json()["value"]]


async def test_rule_write_semantics(client, tenant):
    base = "/v1.0/users/alex.wilber@contoso.com/mailFolders/inbox/messageRules"
    rid = tenant.visible_rules("alex.wilber@contoso.com")[0].id
    r = await client.patch(f"{base}/{rid}", json={"actions": {"markImportance": "high"}})
    assert r.status_code == 200 and r.json()["actions"] == {"markImportance": "high"}  # complex props replaced whole
    r = await client.post(base, json={"displayName": "New", "sequence": 5, "isEnabled": True,
                                      "conditions": {"senderContains": ["x"]},
                                      "actions": {"moveToFolder": "archive", "stopProcessingRules": True}})
    assert r.status_code == 201 and r.json()["id"] and r.json()["actions"]["moveToFolder"] != "archive"
    ro = tenant.add_rule("alex.wilber@contoso.com", displayName="OWA rule", isReadOnly=True,
                         exchange_extra={"ReceivedAfterDate": "2026-01-01T00:00:00"})
    assert "conditions" not in (await client.get(f"{base}/{ro.id}")).json()
    assert (await client.patch(f"{base}/{ro.id}", json={"isEnabled": False})).status_code == 400
    assert (await client.delete(f"{base}/{ro.id}")).status_code == 400


async def test_auth_method_delete_rules(client, tenant):
    base = "/v1.0/users/patti.fernandez@contoso.com/authentication"
    u = tenant.user("patti.fernandez@contoso.com")
    r = await client.delete(f"{base}/fido2Methods/{u._default_method}")
    assert r.status_code == 400 and "default method" in r.json()["error"]["message"]
    assert (await client.delete(f"{base}/methods/{u._default_method}")).status_code == 405
    r = await client.delete(f"{base}/phoneMethods/b6332ec1-7057-4abe-9331-3d72feddfe41")
    assert r.status_code == 204 and r.content == b""


async def test_role_and_grant_deletes(client, tenant):
    nestor = tenant.user("nestor.wilke@contoso.com")
    r = await client.get(f"/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{nestor.id}'")
    aid = r.json()["value"][0]["id"]
    assert (await client.delete(f"/v1.0/roleManagement/directory/roleAssignments/{aid}")).status_code == 204
    assert tenant.roles_of(nestor) == []
    gid = next(g["id"] for g in tenant.grants_for_user(tenant.user("christie.cline@contoso.com")))
    assert (await client.delete(f"/v1.0/oauth2PermissionGrants/{gid}")).status_code == 204
    assert (await client.get(f"/v1.0/oauth2PermissionGrants/{gid}")).status_code == 404
    ga = "62e90394-69f5-4237-9190-012177145e10"
    patti = tenant.user("patti.fernandez@contoso.com")
    r = await client.delete(f"/v1.0/directoryRoles(roleTemplateId='{ga}')/members/{patti.id}/$ref")
    assert r.status_code == 204 and "Global Administrator" not in tenant.roles_of(patti)


async def test_grants_paging_across_background_users():
    from scanner.simulator import generate_tenant
    t = generate_tenant(users=3000, seed=3)
    app = create_app(t)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        seen, url = [], "/v1.0/oauth2PermissionGrants?$top=50"
        while url:
            doc = (await c.get(url)).json()
            seen += [g["id"] for g in doc["value"]]
            url = doc.get("@odata.nextLink")
    assert len(seen) == len(set(seen)) > 100
    assert set(t.grants) <= set(seen)


async def test_token_expiry_and_audience(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as c:
        old = app.graph_token
        assert (await c.get("/v1.0/users?$top=1", headers={"Authorization": f"Bearer {old}"})).status_code == 200
        app.expire_tokens()
        r = await c.get("/v1.0/users?$top=1", headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and err(r) == "InvalidAuthenticationToken"
        fresh = app.issue_token("https://graph.microsoft.com")
        assert (await c.get("/v1.0/users?$top=1", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
        r = await c.get("/v1.0/users?$top=1", headers={"Authorization": f"Bearer {app.issue_token('https://outlook.office365.com')}"})
        assert r.status_code == 401
        assert (await c.get("/v1.0/users")).status_code == 401
    payload = fresh.split(".")[1]
    import base64
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == "https://graph.microsoft.com" and claims["tid"] == app.tenant.tenant_id
    assert "MailboxSettings.Read" in claims["roles"] and claims["exp"] > claims["iat"]


async def test_token_expires_mid_scan_fault(client, app, tenant):
    tenant.faults.add("/authentication/methods", kind="expire_tokens", upn="lee.gu@contoso.com")
    assert (await client.get("/v1.0/users/adele.vance@contoso.com/authentication/methods")).status_code == 200
    r = await client.get("/v1.0/users/lee.gu@contoso.com/authentication/methods")
    assert r.status_code == 401 and err(r) == "InvalidAuthenticationToken"
    assert (await client.get("/v1.0/users/adele.vance@contoso.com/authentication/methods")).status_code == 401
    fresh = {"Authorization": f"Bearer {app.issue_token('https://graph.microsoft.com')}"}
    assert (await client.get("/v1.0/users/lee.gu@contoso.com/authentication/methods", headers=fresh)).status_code == 200


async def test_permission_specifics(tenant):
    app = create_app(tenant, SimOptions(permissions={"User.Read.All", "User.ReadWrite.All"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        r = await c.patch("/v1.0/users/adele.vance@contoso.com",
                          json={"passwordProfile": {"password": "Xy!12345abcd", "forceChangePasswordNextSignIn": True}})
        assert r.status_code == 403 and err(r) == "Authorization_RequestDenied"  # needs User-PasswordProfile.ReadWrite.All
        assert (await c.patch("/v1.0/users/adele.vance@contoso.com", json={"accountEnabled": False})).status_code == 204
        r = await c.get("/v1.0/users/adele.vance@contoso.com/authentication/methods")
        assert r.status_code == 403


# ---------------------------------------------------------------------------------------------------- $batch
async def batch(client, requests, **kw):
    return await client.post("/v1.0/$batch", json={"requests": requests}, **kw)


async def test_batch_validation(client):
    many = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    assert (await batch(client, many)).status_code == 400
    assert (await batch(client, [{"id": "1", "method": "GET", "url": "/users"}] * 2)).status_code == 400
    r = await batch(client, [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}])
    assert r.status_code == 400
    r = await batch(client, [{"id": "1", "method": "PATCH", "url": "/users/adele.vance@contoso.com", "body": {"accountEnabled": False}}])
    assert r.status_code == 400


async def test_batch_depends_on_and_tolerates_depends_underscore(client, tenant):
    reqs = [{"id": "1", "method": "GET", "url": "/users/nobody@contoso.com"},
            {"id": "2", "method": "GET", "url": "/users/adele.vance@contoso.com", "dependsOn": ["1"]},
            {"id": "3", "method": "PATCH", "url": "/users/adele.vance@contoso.com", "depends_on": ["1"],
             "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": False}},
            {"id": "4", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}}]
    r = await batch(client, reqs)
    assert r.status_code == 200
    res = {x["id"]: x for x in r.json()["responses"]}
    assert res["1"]["status"] == 404 and res["2"]["status"] == 424 and res["3"]["status"] == 204
    assert res["4"]["body"] == "300"
    assert tenant.user("adele.vance@contoso.com").accountEnabled is False


async def test_batch_inner_429_keeps_outer_200(client, tenant):
    tenant.faults.add("/messageRules", kind="throttle", retry_after=7, times=2)
    reqs = [{"id": str(i), "method": "GET", "url": f"/users/{u}/mailFolders/inbox/messageRules"}
            for i, u in enumerate(["adele.vance@contoso.com", "alex.wilber@contoso.com", "lee.gu@contoso.com"])]
    r = await batch(client, reqs)
    assert r.status_code == 200
    statuses = sorted(x["status"] for x in r.json()["responses"])
    assert statuses == [200, 429, 429]
    throttled = [x for x in r.json()["responses"] if x["status"] == 429]
    assert all(x["headers"]["Retry-After"] == "7" and x["body"]["error"]["code"] for x in throttled)


# ---------------------------------------------------------------------------------------------------- throttling
async def test_reports_limit_5_per_10s(tenant):
    app = create_app(tenant, SimOptions(throttle=True, retry_after=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        codes = [(await c.get("/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=5")).status_code
                 for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert app.counters["throttled"]["reports"] == 1


async def test_mailbox_concurrency_limit(tenant):
    app = create_app(tenant, SimOptions(throttle=True, retry_after=1, latency_ms=50))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        # hold four requests in flight on one mailbox via the throttler itself, then a fifth is refused
        key = tenant.user("alex.wilber@contoso.com").id
        for _ in range(4):
            assert app.throttler.outlook_enter(key) is None
        r = await c.get("/v1.0/users/alex.wilber@contoso.com/mailFolders/inbox/messageRules")
        assert r.status_code == 429 and err(r) == "ApplicationThrottled" and r.headers["Retry-After"] == "1"
        assert "MailboxConcurrency" in r.json()["error"]["message"]
        other = await c.get("/v1.0/users/lee.gu@contoso.com/mailFolders/inbox/messageRules")
        assert other.status_code == 200  # other mailboxes are unaffected
        for _ in range(4):
            app.throttler.outlook_exit(key)
        results = await asyncio.gather(*[c.get("/v1.0/users/alex.wilber@contoso.com/mailFolders/inbox/messageRules")
                                         for _ in range(4)])
        assert all(x.status_code == 200 for x in results)


async def test_fifth_concurrent_request_to_a_mailbox_is_refused(tenant):
    # latency keeps each Outlook request in flight; all five are started before any completes
    app = create_app(tenant, SimOptions(throttle=True, retry_after=0, latency_ms=20))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        rs = await asyncio.gather(*[c.get("/v1.0/users/lee.gu@contoso.com/mailFolders/inbox/messageRules") for _ in range(5)])
    assert sorted(r.status_code for r in rs) == [200, 200, 200, 200, 429]
    assert app.counters["throttled"]["outlook"] == 1


async def test_batch_of_20_to_one_mailbox_is_not_throttled(tenant):
    app = create_app(tenant, SimOptions(throttle=True, latency_ms=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        reqs = [{"id": str(i), "method": "GET", "url": "/users/lee.gu@contoso.com/mailFolders/inbox/messageRules"}
                for i in range(20)]
        r = await batch(c, reqs)
    assert [x["status"] for x in r.json()["responses"]] == [200] * 20
    assert app.counters["requests"]["outlook"] == 20


async def test_directory_resource_units(tenant):
    app = create_app(tenant, SimOptions(throttle=True, retry_after=1))
    app.throttler.budget = 10  # a tiny bucket so the test needs only a few requests
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        rs = [await c.get("/v1.0/users?$top=50") for _ in range(6)]
    assert [r.status_code for r in rs] == [200] * 5 + [429]
    assert rs[0].headers["x-ms-resource-unit"] == "2"
    assert rs[-1].headers["x-ms-throttle-scope"].startswith("Tenant_Application/Read/")


async def test_throttling_inside_batch(tenant):
    app = create_app(tenant, SimOptions(throttle=True, retry_after=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                 headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
        reqs = [{"id": str(i), "method": "GET", "url": "/reports/authenticationMethods/userRegistrationDetails"} for i in range(7)]
        r = await batch(c, reqs)
    statuses = sorted(x["status"] for x in r.json()["responses"])
    assert r.status_code == 200 and statuses == [200] * 5 + [429] * 2


# ---------------------------------------------------------------------------------------------------- faults
async def test_targeted_faults(client, tenant):
    tenant.faults.add("/messageRules", kind="status", status=503, upn="adele.vance@contoso.com", times=1)
    r = await client.get("/v1.0/users/adele.vance@contoso.com/mailFolders/inbox/messageRules")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert (await client.get("/v1.0/users/adele.vance@contoso.com/mailFolders/inbox/messageRules")).status_code == 200

    tenant.faults.add(r"/users$", kind="throttle", retry_after="2.128")
    r = await client.get("/v1.0/users")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2.128"
    tenant.faults.add(r"/users$", kind="throttle", retry_after=None)
    r = await client.get("/v1.0/users")
    assert r.status_code == 429 and "retry-after" not in r.headers

    tenant.faults.add(r"/users$", kind="malformed")
    r = await client.get("/v1.0/users")
    try:
        r.json()
        raise AssertionError("expected invalid JSON")
    except json.JSONDecodeError:
        pass
    tenant.faults.add(r"/users$", kind="reset")
    try:
        await client.get("/v1.0/users")
        raise AssertionError("expected a connection error")
    except httpx.RemoteProtocolError:
        pass


async def test_loop_nextlink(client, tenant):
    tenant.faults.add(r"/users$", kind="loop_nextlink", times=None)
    r1 = (await client.get("/v1.0/users?$top=10&$select=id")).json()
    r2 = (await client.get(r1["@odata.nextLink"])).json()
    assert r2["@odata.nextLink"] == r1["@odata.nextLink"].replace("$skiptoken", "$skiptoken") or r2["value"]
    r3 = (await client.get(r2["@odata.nextLink"])).json()
    assert r3["value"] == r2["value"]


async def test_random_faults_are_seeded(tenant):
    async def run(seed):
        app = create_app(tenant, SimOptions(fault_rate=0.3, seed=seed))
        out = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765",
                                     headers={"Authorization": f"Bearer {app.graph_token}"}) as c:
            for _ in range(40):
                try:
                    out.append((await c.get("/v1.0/users?$top=1&$select=id")).status_code)
                except httpx.RemoteProtocolError:
                    out.append("reset")
        return out
    a, b = await run(5), await run(5)
    assert a == b and any(x != 200 for x in a) and 200 in a


async def test_huge_unicode_names_and_thousands_of_rules(client, tenant, exo):
    name = "Ünïcødé \u200b规则 " + "x" * 5000 + " \U0001F600"
    tenant.add_rule("lee.gu@contoso.com", displayName=name, conditions={"subjectContains": ["😀"]},
                    actions={"moveToFolder": "Inbox/Ünïcødé"})
    tenant.add_many_rules("adele.vance@contoso.com", 3000)
    r = await client.get("/v1.0/users/lee.gu@contoso.com/mailFolders/inbox/messageRules")
    assert name in [x["displayName"] for x in r.json()["value"]]
    r = await client.get("/v1.0/users/adele.vance@contoso.com/mailFolders/inbox/messageRules")
    assert len(r.json()["value"]) == 3000
    rows = await exo.all("Get-InboxRule", headers={"Prefer": "odata.maxpagesize=1000"}, Mailbox="adele.vance@contoso.com")
    assert len(rows) == 3000
    assert re.match(r"^\d+$", rows[0]["RuleIdentity"])


async def test_a_dollar_sign_upn_needs_the_parenthesis_key_form(client, tenant):
    u = tenant.user("lynne.robbins@contoso.com")
    u.userPrincipalName = "$lynne.robbins@contoso.com"
    tenant._upn_explicit[u.userPrincipalName] = u.index
    r = await client.get("/v1.0/users/$lynne.robbins@contoso.com")
    assert r.status_code == 400
    r = await client.get("/v1.0/users('$lynne.robbins@contoso.com')", params={"$select": "id"})
    assert r.status_code == 200 and r.json()["id"] == u.id
    r = await client.get("/v1.0/users/$count")  # a system segment is not a user key
    assert r.status_code == 400 and "Count is not currently supported" in r.text
