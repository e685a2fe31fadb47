"""Exchange admin API (InvokeCommand): envelope, paging, hidden rules, NUL-byte 403, errors, writes."""

from __future__ import annotations

import httpx

from scanner.simulator import SimOptions, create_app


async def test_envelope_and_forwarding_shape(exo):
    r = await exo.post("Get-Mailbox", Identity="adele.vance@contoso.com")
    assert r.status_code == 200
    doc = r.json()
    assert doc["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    assert doc["adminapi.warnings@odata.type"] == "#Collection(String)" and doc["@adminapi.warnings"] == []
    row = doc["value"][0]
    assert row["ForwardingSmtpAddress"] == "smtp:a.vance.finance@outlook.com"
    assert row["DeliverToMailboxAndForward"] is False
    assert row["RecipientTypeDetails"] == "UserMailbox"
    assert row["ExternalDirectoryObjectId"] == exo.app.tenant.user("adele.vance@contoso.com").id
    assert row["GrantSendOnBehalfTo@odata.type"] == "#Collection(String)"


async def test_get_mailbox_bulk_paging_with_maxpagesize(exo, tenant):
    rows = await exo.all("Get-Mailbox", headers={"Prefer": "odata.maxpagesize=25"}, ResultSize="Unlimited")
    with_mailbox = [u for u in tenant.iter_users() if u.mailbox is not None]
    assert len(rows) == len(with_mailbox) > 25
    assert len({r["ExternalDirectoryObjectId"] for r in rows}) == len(rows)
    assert not any(r["UserPrincipalName"].startswith("breakglass") for r in rows)  # no mailbox -> not returned
    first = await exo.post("Get-Mailbox", headers={"Prefer": "odata.maxpagesize=25"}, ResultSize="Unlimited")
    assert first.json()["@odata.nextLink"].startswith("http://127.0.0.1:8765/adminapi/beta/")


async def test_hidden_rules_only_with_include_hidden(exo, client):
    upn = "isaiah.langer@contoso.com"
    visible = await exo.all("Get-InboxRule", Mailbox=upn)
    assert [r["Name"] for r in visible] == []
    hidden = await exo.all("Get-InboxRule", Mailbox=upn, IncludeHidden=True)
    names = {r["Name"] for r in hidden}
    assert names == {"Microsoft.Exchange.Sync", "Junk E-mail Rule"}
    sync = next(r for r in hidden if r["Name"] == "Microsoft.Exchange.Sync")
    assert sync["RedirectTo"] == ['"accounts@c0ntoso.com" [SMTP:accounts@c0ntoso.com]']
    assert sync["RedirectTo@odata.type"] == "#Collection(String)"
    g = await client.get(f"/v1.0/users/{upn}/mailFolders/inbox/messageRules")
    assert g.json()["value"] == []  # Graph never shows the hidden rule


async def test_inbox_rule_fields_use_new_inboxrule_names(exo):
    rows = await exo.all("Get-InboxRule", Mailbox="alex.wilber@contoso.com")
    r = rows[0]
    assert r["Name"] == "." and r["Enabled"] is True and r["Priority"] == 1
    assert r["ForwardTo"] == ['"Billing" [SMTP:billing@contoso-payments.com]']
    assert r["MoveToFolder"] == "Alex Wilber:\\RSS Feeds"
    assert r["MarkAsRead"] is True and r["StopProcessingRules"] is True
    assert r["SubjectOrBodyContainsWords"] == ["invoice", "payment", "wire", "remittance"]
    assert r["Identity"] == f"alex.wilber\\{r['RuleIdentity']}"


async def test_disable_hidden_rule_changes_state(exo, tenant):
    upn = "isaiah.langer@contoso.com"
    rule = tenant.hidden_rules(upn)[0]
    r = await exo.post("Disable-InboxRule", Mailbox=upn, Identity=str(rule.rule_identity), Confirm=False,
                       AlwaysDeleteOutlookRulesBlob=True)
    assert r.status_code == 200
    assert rule.isEnabled is False
    assert tenant.mutations[-1]["method"] == "Disable-InboxRule" and tenant.mutations[-1]["target"] == upn


async def test_unknown_cmdlet_is_403_with_nul_byte_body(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as c:
        req = c.build_request("POST", f"/adminapi/beta/{app.tenant.tenant_id}/InvokeCommand",
                              json={"CmdletInput": {"CmdletName": "Get-Nothing", "Parameters": {}}},
                              headers={"Authorization": f"Bearer {app.exchange_token}"})
        r = await c.send(req, stream=True)
        assert r.status_code == 403
        assert r.headers["content-encoding"] == "gzip"
        assert b"".join([chunk async for chunk in r.aiter_raw()]) == b"\x00"
        await r.aclose()


async def test_unknown_cmdlet_without_gzip_option(tenant, exo_factory):
    exo = exo_factory(create_app(tenant, SimOptions(nul_403_gzip=False)))
    r = await exo.post("Get-Nothing")
    assert r.status_code == 403 and r.content == b"\x00"


async def test_cmdlet_error_shape(exo):
    r = await exo.post("Get-Mailbox", Identity="nobody@contoso.com")
    assert r.status_code == 404
    msg = r.json()["error"]["details"][0]["message"]
    code, exc_type, text = msg.split("|", 2)
    assert code.startswith("Ex") and exc_type.endswith("ManagementObjectNotFoundException") and "nobody@contoso.com" in text
    r = await exo.post("Set-Mailbox", Identity="adele.vance@contoso.com", Bogus=1)
    assert r.status_code == 400 and "Bogus" in r.json()["error"]["details"][0]["message"]


async def test_set_mailbox_clears_forwarding(exo, tenant):
    r = await exo.post("Set-Mailbox", Identity="adele.vance@contoso.com", ForwardingSmtpAddress=None,
                       ForwardingAddress=None, DeliverToMailboxAndForward=False)
    assert r.status_code == 200
    assert tenant.user("adele.vance@contoso.com").mailbox.forwarding_smtp is None
    row = (await exo.all("Get-Mailbox", Identity="adele.vance@contoso.com"))[0]
    assert row["ForwardingSmtpAddress"] is None
    r = await exo.post("Set-Mailbox", Identity="adele.vance@contoso.com", ForwardingSmtpAddress="x@evil.example")
    assert (await exo.all("Get-Mailbox", Identity="adele.vance@contoso.com"))[0]["ForwardingSmtpAddress"] == "smtp:x@evil.example"


async def test_cas_blocked_sender_and_permissions(exo, tenant):
    upn = "lee.gu@contoso.com"
    cas = (await exo.all("Get-CASMailbox", Identity=upn))[0]
    assert cas["PopEnabled"] is True and cas["SmtpClientAuthenticationDisabled"] is None
    await exo.post("Set-CASMailbox", Identity=upn, PopEnabled=False, ImapEnabled=False, MAPIEnabled=False,
                   EwsEnabled=False, ActiveSyncEnabled=False, OWAEnabled=False)
    assert not any(v for k, v in tenant.user(upn).mailbox.cas.items() if k != "SmtpClientAuthenticationDisabled")

    blocked = await exo.all("Get-BlockedSenderAddress")
    assert [b["SenderAddress"] for b in blocked] == [upn]
    await exo.post("Remove-BlockedSenderAddress", SenderAddress=upn)
    assert not tenant.is_blocked(upn) and await exo.all("Get-BlockedSenderAddress") == []

    perms = await exo.all("Get-MailboxPermission", Identity="megan.bowen@contoso.com")
    assert perms[0]["User"] == "NT AUTHORITY\\SELF" and perms[0]["Deny"] == "False" and perms[0]["IsInherited"] is False
    guest = next(p for p in perms if "#EXT#" in p["User"])
    assert guest["AccessRights"] == ["FullAccess"] and guest["AccessRights@odata.type"] == "#Collection(String)"
    await exo.post("Remove-MailboxPermission", Identity="megan.bowen@contoso.com", User=guest["User"],
                   AccessRights=["FullAccess"], InheritanceType="All", Confirm=False)
    assert len(await exo.all("Get-MailboxPermission", Identity="megan.bowen@contoso.com")) == 1

    sendas = await exo.all("Get-RecipientPermission", Identity="lidia.holloway@contoso.com")
    assert {p["Trustee"] for p in sendas} == {"NT AUTHORITY\\SELF", "nestor.wilke@contoso.com"}
    await exo.post("Remove-RecipientPermission", Identity="lidia.holloway@contoso.com", Trustee="nestor.wilke@contoso.com",
                   AccessRights=["SendAs"], Confirm=False)
    assert [p["Trustee"] for p in await exo.all("Get-RecipientPermission", Identity="lidia.holloway@contoso.com")] == ["NT AUTHORITY\\SELF"]


async def test_exchange_auth(app, tenant, exo_factory):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765") as c:
        body = {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"ResultSize": "Unlimited"}}}
        url = f"/adminapi/beta/{tenant.tenant_id}/InvokeCommand"
        r = await c.post(url, json=body, headers={"Authorization": f"Bearer {app.graph_token}"})
        assert r.status_code == 401  # Graph audience on Exchange
        r = await c.post(url, json=body)
        assert r.status_code == 401
    exo = exo_factory(create_app(tenant, SimOptions(permissions={"User.Read.All"})))
    r = await exo.post("Get-Mailbox", ResultSize="Unlimited")
    assert r.status_code == 403 and "AccessDenied" in r.json()["error"]["details"][0]["message"]


async def test_exchange_faults_by_cmdlet_and_mailbox(exo, tenant):
    tenant.faults.add("Get-InboxRule", kind="status", status=500, upn="alex.wilber@contoso.com", times=None)
    bad = await exo.post("Get-InboxRule", Mailbox="alex.wilber@contoso.com")
    ok = await exo.post("Get-InboxRule", Mailbox="lee.gu@contoso.com")
    assert bad.status_code == 500 and ok.status_code == 200
    tenant.faults.add("Get-Mailbox", kind="loop_nextlink", times=1)
    r = await exo.post("Get-Mailbox", headers={"Prefer": "odata.maxpagesize=5"}, ResultSize="Unlimited")
    nxt = r.json()["@odata.nextLink"]
    r2 = await exo.post("Get-Mailbox", headers={"Prefer": "odata.maxpagesize=5"}, url=nxt, ResultSize="Unlimited")
    assert r2.json()["value"] == r.json()["value"]


async def test_inbox_rule_cmdlets_confirm_deleting_the_outlook_rules_blob(exo, tenant):
    # Saving rules through Exchange deletes Outlook's rules blob after a confirmation (ShouldContinue) that nobody can
    # answer over REST: without -Force the cmdlet succeeds, warns, and saves nothing.
    upn = "isaiah.langer@contoso.com"
    rule = tenant.hidden_rules(upn)[0]
    mbx = tenant.user(upn).mailbox
    assert mbx.outlook_rules_blob and rule.isEnabled
    n = len(tenant.mutations)
    r = await exo.post("Disable-InboxRule", Mailbox=upn, Identity=str(rule.rule_identity), Confirm=False)
    assert r.status_code == 200 and r.json()["@adminapi.warnings"]
    assert rule.isEnabled is True and len(tenant.mutations) == n and mbx.outlook_rules_blob
    r = await exo.post("Disable-InboxRule", Mailbox=upn, Identity=str(rule.rule_identity), Confirm=False, Force=True)
    assert r.status_code == 200 and rule.isEnabled is False
    assert not mbx.outlook_rules_blob and not mbx.always_delete_outlook_rules_blob
    # Once the blob is gone there is nothing to confirm.
    r = await exo.post("Enable-InboxRule", Mailbox=upn, Identity=str(rule.rule_identity), Confirm=False)
    assert r.status_code == 200 and rule.isEnabled is True and not r.json()["@adminapi.warnings"]


async def test_always_delete_outlook_rules_blob_sets_the_users_option(exo, tenant):
    upn = "isaiah.langer@contoso.com"
    rule = tenant.hidden_rules(upn)[0]
    mbx = tenant.user(upn).mailbox
    r = await exo.post("Disable-InboxRule", Mailbox=upn, Identity=str(rule.rule_identity), Confirm=False,
                       AlwaysDeleteOutlookRulesBlob=True)
    assert r.status_code == 200 and rule.isEnabled is False
    assert mbx.always_delete_outlook_rules_blob  # a lasting change to the user's Outlook on the web options
