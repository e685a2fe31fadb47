"""Write endpoints remediation `undo` needs: create role assignment, create consent grant (through the real SDK),
Add-MailboxPermission and Add-RecipientPermission (InvokeCommand). State, mutation log, permission checks, errors."""

from __future__ import annotations

import pytest
from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant  # noqa: TID251
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: TID251
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment  # noqa: TID251

from scanner.simulator import SimOptions, create_app
from scanner.simulator.permissions import ALL_PERMISSIONS

EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


def _plain_user(tenant, skip: int = 0):
    """A member with a mailbox, no role and no consent grant (nothing planted)."""
    found = [u for u in tenant.iter_users() if u.mailbox is not None and u.mailbox.kind == "user"
             and u.userType == "Member" and not tenant.roles_of(u) and not tenant.grants_for_user(u)
             and u.userPrincipalName.lower() not in tenant.labels]
    # iter_users() hands out regenerated copies; tenant.user() returns the live object the server mutates
    return tenant.user(found[skip].userPrincipalName)


def _assignment(principal_id: str, role: str = EXCHANGE_ADMIN, scope: str = "/") -> UnifiedRoleAssignment:
    return UnifiedRoleAssignment(odata_type="#microsoft.graph.unifiedRoleAssignment", role_definition_id=role,
                                 principal_id=principal_id, directory_scope_id=scope)


# ---------------------------------------------------------------------------------------- role assignments
async def test_create_role_assignment_through_the_sdk(sdk, tenant):
    u = _plain_user(tenant)
    n = len(tenant.mutations)
    created = await sdk.role_management.directory.role_assignments.post(_assignment(u.id))
    assert created.id and created.principal_id == u.id
    assert created.role_definition_id == EXCHANGE_ADMIN and created.directory_scope_id == "/"
    assert tenant.roles_of(u) == ["Exchange Administrator"]
    assert tenant.role_assignments[created.id]["principalId"] == u.id
    log = tenant.mutations[n:]
    assert [(m["method"], m["path"], m["target"]) for m in log] == [
        ("POST", "/roleManagement/directory/roleAssignments", u.userPrincipalName)]
    # Readable through the list endpoint like any other assignment.
    req = sdk.role_management.directory.role_assignments
    page = await req.get(request_configuration=_filter_cfg(f"principalId eq '{u.id}'"))
    assert [a.id for a in page.value] == [created.id]


def _filter_cfg(flt: str):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (  # noqa: TID251
        RoleAssignmentsRequestBuilder,
    )
    qp = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(filter=flt)
    return RequestConfiguration(query_parameters=qp)


async def test_role_assignment_deleted_then_created_again(sdk, tenant):
    u = _plain_user(tenant)
    a = tenant.add_role(u, "Exchange Administrator")
    await sdk.role_management.directory.role_assignments.by_unified_role_assignment_id(a["id"]).delete()
    assert tenant.roles_of(u) == []
    again = await sdk.role_management.directory.role_assignments.post(_assignment(u.id))
    # Graph derives the id from role definition + principal (+ scope): the same assignment gets the same id.
    assert again.id == a["id"]
    assert tenant.roles_of(u) == ["Exchange Administrator"]


async def test_duplicate_role_assignment_is_a_conflict(sdk, tenant):
    u = _plain_user(tenant)
    tenant.add_role(u, "Exchange Administrator")
    n = len(tenant.mutations)
    with pytest.raises(ODataError) as e:
        await sdk.role_management.directory.role_assignments.post(_assignment(u.id))
    assert e.value.response_status_code == 400
    assert e.value.error.code == "Request_BadRequest" and "conflicting object" in e.value.error.message
    assert tenant.roles_of(u) == ["Exchange Administrator"] and len(tenant.mutations) == n


async def test_role_assignment_needs_readwrite_permission(tenant, sdk_factory):
    u = _plain_user(tenant)
    app = create_app(tenant, SimOptions(permissions=ALL_PERMISSIONS - {"RoleManagement.ReadWrite.Directory"}))
    with pytest.raises(ODataError) as e:
        await sdk_factory(app).role_management.directory.role_assignments.post(_assignment(u.id))
    assert e.value.response_status_code == 403 and e.value.error.code == "Authorization_RequestDenied"
    assert tenant.roles_of(u) == []


@pytest.mark.parametrize(("principal", "role", "scope", "status"), [
    ("00000000-0000-0000-0000-00000000dead", EXCHANGE_ADMIN, "/", 404),       # no such principal
    (None, "00000000-0000-0000-0000-00000000beef", "/", 404),                 # no such role definition
    (None, EXCHANGE_ADMIN, "tenant", 400),                                   # scope must be a path
    ("someone@contoso.com", EXCHANGE_ADMIN, "/", 400),                       # references are object ids, not UPNs
])
async def test_role_assignment_validation(client, tenant, principal, role, scope, status):
    u = _plain_user(tenant)
    n = len(tenant.role_assignments)
    r = await client.post("/v1.0/roleManagement/directory/roleAssignments", json={
        "@odata.type": "#microsoft.graph.unifiedRoleAssignment", "roleDefinitionId": role,
        "principalId": principal or u.id, "directoryScopeId": scope})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"].startswith("Request_")
    assert len(tenant.role_assignments) == n


async def test_role_assignment_rejects_unknown_properties_and_wrong_type(client, tenant):
    u = _plain_user(tenant)
    base = {"roleDefinitionId": EXCHANGE_ADMIN, "principalId": u.id, "directoryScopeId": "/"}
    r = await client.post("/v1.0/roleManagement/directory/roleAssignments", json={**base, "roleName": "x"})
    assert r.status_code == 400 and "roleName" in r.json()["error"]["message"]
    r = await client.post("/v1.0/roleManagement/directory/roleAssignments",
                          json={**base, "@odata.type": "#microsoft.graph.user"})
    assert r.status_code == 400
    assert tenant.roles_of(u) == []


async def test_role_assignment_inside_batch(client, tenant):
    u = _plain_user(tenant)
    r = await client.post("/v1.0/$batch", json={"requests": [{
        "id": "1", "method": "POST", "url": "/roleManagement/directory/roleAssignments",
        "headers": {"Content-Type": "application/json"},
        "body": {"roleDefinitionId": EXCHANGE_ADMIN, "principalId": u.id, "directoryScopeId": "/"}}]})
    assert r.status_code == 200
    (resp,) = r.json()["responses"]
    assert resp["status"] == 201 and resp["body"]["principalId"] == u.id
    assert tenant.roles_of(u) == ["Exchange Administrator"]


# ---------------------------------------------------------------------------------------- consent grants
def _grant(tenant, client_name: str, principal_id: str | None, scope: str = "Mail.Read offline_access"):
    return OAuth2PermissionGrant(client_id=tenant.sp_by_name[client_name], consent_type="Principal" if principal_id
                                 else "AllPrincipals", principal_id=principal_id, resource_id=tenant.graph_sp_id(),
                                 scope=scope)


def _some_app(tenant) -> str:
    return next(sp["displayName"] for sp in tenant.service_principals.values()
                if sp["id"] != tenant.graph_sp_id() and sp.get("displayName"))


async def test_create_grant_through_the_sdk(sdk, tenant):
    u = _plain_user(tenant)
    app_name = _some_app(tenant)
    n = len(tenant.mutations)
    created = await sdk.oauth2_permission_grants.post(_grant(tenant, app_name, u.id))
    assert created.id and created.client_id == tenant.sp_by_name[app_name]
    assert (created.consent_type, created.principal_id, created.scope) == ("Principal", u.id, "Mail.Read offline_access")
    live = [g for g in tenant.grants_for_user(u) if g["id"] == created.id]
    assert live and live[0]["resourceId"] == tenant.graph_sp_id()
    assert [(m["method"], m["path"], m["target"]) for m in tenant.mutations[n:]] == [
        ("POST", "/oauth2PermissionGrants", u.userPrincipalName)]
    # the user-scoped list shows it, as the scanner reads it
    page = await sdk.users.by_user_id(u.id).oauth2_permission_grants.get()
    assert created.id in [g.id for g in page.value]


async def test_admin_consent_grant_and_its_principal_rule(sdk, client, tenant):
    app_name = _some_app(tenant)
    created = await sdk.oauth2_permission_grants.post(_grant(tenant, app_name, None, "User.Read"))
    assert created.consent_type == "AllPrincipals" and created.principal_id is None
    assert tenant.grants[created.id]["principalId"] is None
    # AllPrincipals with a principalId is refused
    u = _plain_user(tenant)
    r = await client.post("/v1.0/oauth2PermissionGrants", json={
        "clientId": tenant.sp_by_name[app_name], "consentType": "AllPrincipals", "principalId": u.id,
        "resourceId": tenant.graph_sp_id(), "scope": "User.Read"})
    assert r.status_code == 400


async def test_duplicate_grant_is_409(sdk, tenant):
    u = _plain_user(tenant)
    app_name = _some_app(tenant)
    await sdk.oauth2_permission_grants.post(_grant(tenant, app_name, u.id))
    n = len(tenant.mutations)
    with pytest.raises(ODataError) as e:
        await sdk.oauth2_permission_grants.post(_grant(tenant, app_name, u.id, "User.Read"))
    assert e.value.response_status_code == 409
    assert e.value.error.code == "Request_MultipleObjectsWithSameKeyValue"
    assert len(tenant.mutations) == n


async def test_grant_deleted_then_created_again_keeps_its_key(sdk, tenant):
    u = _plain_user(tenant)
    g = tenant.add_grant(u, _some_app(tenant), "Mail.ReadWrite offline_access")
    await sdk.oauth2_permission_grants.by_o_auth2_permission_grant_id(g["id"]).delete()
    assert not [x for x in tenant.grants_for_user(u) if x["id"] == g["id"]]
    again = await sdk.oauth2_permission_grants.post(OAuth2PermissionGrant(
        client_id=g["clientId"], consent_type="Principal", principal_id=u.id, resource_id=g["resourceId"],
        scope=g["scope"]))
    # Graph's grant ids are base64url(clientId | resourceId | principalId): the same key gives the same id.
    assert again.id == g["id"]
    assert [x["scope"] for x in tenant.grants_for_user(u) if x["id"] == g["id"]] == ["Mail.ReadWrite offline_access"]


async def test_grant_needs_readwrite_permission(tenant, sdk_factory):
    u = _plain_user(tenant)
    perms = ALL_PERMISSIONS - {"DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All"}
    app = create_app(tenant, SimOptions(permissions=perms))
    with pytest.raises(ODataError) as e:
        await sdk_factory(app).oauth2_permission_grants.post(_grant(tenant, _some_app(tenant), u.id))
    assert e.value.response_status_code == 403 and e.value.error.code == "Authorization_RequestDenied"
    assert tenant.grants_for_user(u) == []
    # the documented higher permission is accepted too
    app2 = create_app(tenant, SimOptions(permissions=perms | {"Directory.ReadWrite.All"}))
    await sdk_factory(app2).oauth2_permission_grants.post(_grant(tenant, _some_app(tenant), u.id))
    assert len(tenant.grants_for_user(u)) == 1


@pytest.mark.parametrize("change", [{"clientId": "00000000-0000-0000-0000-00000000c1ed"},
                                    {"consentType": "Everyone"}, {"principalId": None}, {"scope": 5},
                                    {"resourceId": "not-a-guid"}])
async def test_grant_validation(client, tenant, change):
    u = _plain_user(tenant)
    body = {"clientId": tenant.sp_by_name[_some_app(tenant)], "consentType": "Principal", "principalId": u.id,
            "resourceId": tenant.graph_sp_id(), "scope": "User.Read", **change}
    r = await client.post("/v1.0/oauth2PermissionGrants", json=body)
    assert r.status_code in (400, 404), r.text
    assert tenant.grants_for_user(u) == []


# ---------------------------------------------------------------------------------------- Exchange permissions
async def test_add_mailbox_permission(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    n = len(tenant.mutations)
    r = await exo.post("Add-MailboxPermission", Identity=owner.userPrincipalName, User=delegate.userPrincipalName,
                       AccessRights=["FullAccess"], InheritanceType="All", AutoMapping=False)
    assert r.status_code == 200, r.text
    (row,) = r.json()["value"]
    assert row["User"] == delegate.userPrincipalName and row["AccessRights"] == ["FullAccess"]
    assert row["IsInherited"] is False and row["Deny"] == "False" and row["InheritanceType"] == "All"
    entry = next(p for p in tenant.mailbox_permissions(owner) if p["User"] == delegate.userPrincipalName)
    assert entry["AccessRights"] == ["FullAccess"] and entry["AutoMapping"] is False
    (m,) = tenant.mutations[n:]
    assert m["method"] == "Add-MailboxPermission" and m["target"] == owner.userPrincipalName
    assert m["detail"]["AutoMapping"] is False and m["detail"]["User"] == delegate.userPrincipalName
    # visible to the reader the scanner uses
    rows = await exo.all("Get-MailboxPermission", Identity=owner.userPrincipalName)
    assert delegate.userPrincipalName in [x["User"] for x in rows]
    # adding it again: a warning, no second entry, nothing logged
    r = await exo.post("Add-MailboxPermission", Identity=owner.userPrincipalName, User=delegate.userPrincipalName,
                       AccessRights=["FullAccess"], InheritanceType="All", AutoMapping=False)
    assert r.status_code == 200 and "already present" in r.json()["@adminapi.warnings"][0]
    assert [p["User"] for p in tenant.mailbox_permissions(owner)].count(delegate.userPrincipalName) == 1
    assert len(tenant.mutations) == n + 1


async def test_add_then_remove_mailbox_permission_round_trip(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    before = [dict(p) for p in tenant.mailbox_permissions(owner)]
    params = {"Identity": owner.userPrincipalName, "User": delegate.userPrincipalName, "AccessRights": ["FullAccess"]}
    assert (await exo.post("Add-MailboxPermission", **params, InheritanceType="All")).status_code == 200
    assert (await exo.post("Remove-MailboxPermission", **params, Confirm=False)).status_code == 200
    assert tenant.mailbox_permissions(owner) == before


@pytest.mark.parametrize(("params", "status"), [
    ({"AccessRights": ["EverythingAccess"]}, 400),
    ({"InheritanceType": "Sideways"}, 400),
    ({"User": "nobody.at.all@contoso.com"}, 404),
    ({"Identity": "no.such.mailbox@contoso.com"}, 404),
    ({"Colour": "blue"}, 400),
])
async def test_add_mailbox_permission_errors(exo, tenant, params, status):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    n = len(tenant.mutations)
    base = {"Identity": owner.userPrincipalName, "User": delegate.userPrincipalName, "AccessRights": ["FullAccess"]}
    r = await exo.post("Add-MailboxPermission", **{**base, **params})
    assert r.status_code == status, r.text
    assert r.json()["error"]["details"][0]["message"].count("|") == 2  # code|exception type|text
    assert len(tenant.mutations) == n


async def test_add_recipient_permission(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    n = len(tenant.mutations)
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName,
                       AccessRights=["SendAs"], Confirm=False)
    assert r.status_code == 200, r.text
    (row,) = r.json()["value"]
    assert (row["Trustee"], row["AccessRights"], row["AccessControlType"]) == (
        delegate.userPrincipalName, ["SendAs"], "Allow")
    assert delegate.userPrincipalName in [p["Trustee"] for p in tenant.recipient_permissions(owner)]
    (m,) = tenant.mutations[n:]
    assert (m["method"], m["target"], m["detail"]["Trustee"]) == (
        "Add-RecipientPermission", owner.userPrincipalName, delegate.userPrincipalName)
    rows = await exo.all("Get-RecipientPermission", Identity=owner.userPrincipalName)
    assert delegate.userPrincipalName in [x["Trustee"] for x in rows]
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName,
                       AccessRights=["SendAs"], Confirm=False)
    assert r.status_code == 200 and r.json()["@adminapi.warnings"]
    assert len(tenant.mutations) == n + 1


async def test_add_recipient_permission_only_sendas(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    n = len(tenant.mutations)
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName,
                       AccessRights=["FullAccess"], Confirm=False)
    assert r.status_code == 400
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName)
    assert r.status_code == 400  # AccessRights is mandatory
    assert len(tenant.mutations) == n


async def test_add_permission_cmdlets_need_exchange_role(tenant, exo_factory):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    exo = exo_factory(create_app(tenant, SimOptions(permissions=ALL_PERMISSIONS - {"Exchange.ManageAsApp"})))
    r = await exo.post("Add-MailboxPermission", Identity=owner.userPrincipalName, User=delegate.userPrincipalName,
                       AccessRights=["FullAccess"])
    assert r.status_code == 403
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName,
                       AccessRights=["SendAs"])
    assert r.status_code == 403
    assert delegate.userPrincipalName not in [p["User"] for p in tenant.mailbox_permissions(owner)]


async def test_send_on_behalf_list_round_trips_through_display_names(exo, tenant):
    owner, a, b = _plain_user(tenant), _plain_user(tenant, 1), _plain_user(tenant, 2)
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName,
                       GrantSendOnBehalfTo=[a.userPrincipalName, b.mail])
    assert r.status_code == 200, r.text
    assert owner.mailbox.grant_send_on_behalf == [a.userPrincipalName, b.userPrincipalName]
    (mbx,) = (await exo.post("Get-Mailbox", Identity=owner.userPrincipalName)).json()["value"]
    shown = mbx["GrantSendOnBehalfTo"]
    assert shown == [a.displayName, b.displayName]  # Get-Mailbox shows names
    # Writing back what was read (minus one) keeps the other recipient, resolved by its name.
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, GrantSendOnBehalfTo=shown[1:])
    assert r.status_code == 200, r.text
    assert owner.mailbox.grant_send_on_behalf == [b.userPrincipalName]
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, GrantSendOnBehalfTo=["Nobody Anywhere"])
    assert r.status_code == 404 and owner.mailbox.grant_send_on_behalf == [b.userPrincipalName]


async def test_bulk_recipient_permissions_include_changed_mailboxes(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    r = await exo.post("Add-RecipientPermission", Identity=owner.userPrincipalName, Trustee=delegate.userPrincipalName,
                       AccessRights=["SendAs"], Confirm=False)
    assert r.status_code == 200
    rows = await exo.all("Get-RecipientPermission", ResultSize="Unlimited", AccessRights="SendAs")
    assert (owner.mailNickname, delegate.userPrincipalName) in {(x["Identity"], x["Trustee"]) for x in rows}


async def test_forwarding_address_round_trips_through_the_name_get_mailbox_prints(exo, tenant):
    owner, target = _plain_user(tenant), _plain_user(tenant, 1)
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, ForwardingAddress=target.mail,
                       DeliverToMailboxAndForward=True)
    assert r.status_code == 200, r.text
    (mbx,) = (await exo.post("Get-Mailbox", Identity=owner.userPrincipalName)).json()["value"]
    assert mbx["ForwardingAddress"] == target.displayName  # a name, not an address
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, ForwardingAddress=None)
    assert r.status_code == 200 and owner.mailbox.forwarding_address is None
    # What Get-Mailbox printed is accepted back (undo writes the before-image it read).
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, ForwardingAddress=mbx["ForwardingAddress"])
    assert r.status_code == 200, r.text
    assert owner.mailbox.forwarding_address == target.userPrincipalName
    # A name that resolves to nobody fails the whole cmdlet: nothing else in it is applied.
    r = await exo.post("Set-Mailbox", Identity=owner.userPrincipalName, ForwardingAddress="Nobody Anywhere",
                       ForwardingSmtpAddress="x@evil.example")
    assert r.status_code == 404
    assert (owner.mailbox.forwarding_address, owner.mailbox.forwarding_smtp) == (target.userPrincipalName, None)


async def test_remove_mailbox_permission_matches_the_ace_kind_and_inheritance(exo, tenant):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    before = [dict(p) for p in tenant.mailbox_permissions(owner)]
    params = {"Identity": owner.userPrincipalName, "User": delegate.userPrincipalName, "AccessRights": ["FullAccess"]}
    assert (await exo.post("Add-MailboxPermission", **params, InheritanceType="SelfAndChildren")).status_code == 200
    n = len(tenant.mutations)
    # Another inheritance, or -Deny, names another ACE: Exchange warns that it doesn't exist and changes nothing.
    for extra in ({}, {"InheritanceType": "All"}, {"InheritanceType": "SelfAndChildren", "Deny": True}):
        r = await exo.post("Remove-MailboxPermission", **params, **extra, Confirm=False)
        assert r.status_code == 200, r.text
        assert any("doesn't exist" in w for w in r.json()["@adminapi.warnings"])
    assert len(tenant.mutations) == n and len(tenant.mailbox_permissions(owner)) == len(before) + 1
    r = await exo.post("Remove-MailboxPermission", **params, InheritanceType="SelfAndChildren", Confirm=False)
    assert r.status_code == 200 and not r.json()["@adminapi.warnings"]
    assert tenant.mailbox_permissions(owner) == before


@pytest.mark.parametrize(("cmdlet", "missing"), [
    ("Remove-MailboxPermission", "AccessRights"), ("Remove-MailboxPermission", "User"),
    ("Remove-RecipientPermission", "AccessRights"), ("Remove-RecipientPermission", "Trustee"),
])
async def test_remove_permission_cmdlets_require_their_parameters(exo, tenant, cmdlet, missing):
    owner, delegate = _plain_user(tenant), _plain_user(tenant, 1)
    tenant.add_delegate(owner, delegate.userPrincipalName, "FullAccess" if "Mailbox" in cmdlet else "SendAs")
    who = "User" if "Mailbox" in cmdlet else "Trustee"
    params = {"Identity": owner.userPrincipalName, who: delegate.userPrincipalName,
              "AccessRights": ["FullAccess" if "Mailbox" in cmdlet else "SendAs"], "Confirm": False}
    del params[missing]
    n = len(tenant.mutations)
    r = await exo.post(cmdlet, **params)
    assert r.status_code == 400 and missing in r.json()["error"]["details"][0]["message"]
    assert len(tenant.mutations) == n


async def test_recipient_permission_identity_is_not_a_upn(exo, tenant):
    # RecipientIdParameter: name, alias, DN, email address, GUID — a UPN that is none of the addresses does not resolve.
    owner, delegate = tenant.user("grady.archie@contoso.com"), _plain_user(tenant, 1)
    owner.mail = "g.archie@contoso.com"
    base = {"Trustee": delegate.userPrincipalName, "AccessRights": ["SendAs"], "Confirm": False}
    n = len(tenant.mutations)
    for cmdlet in ("Add-RecipientPermission", "Remove-RecipientPermission"):
        r = await exo.post(cmdlet, Identity=owner.userPrincipalName, **base)
        assert r.status_code == 404, r.text
    assert (await exo.post("Get-RecipientPermission", Identity=owner.userPrincipalName)).status_code == 404
    assert len(tenant.mutations) == n
    assert (await exo.post("Add-RecipientPermission", Identity=owner.mail, **base)).status_code == 200
    rows = (await exo.post("Get-RecipientPermission", Identity=owner.mail)).json()["value"]
    assert delegate.userPrincipalName in [x["Trustee"] for x in rows]
    # The mailbox cmdlets take a MailboxIdParameter, which does resolve the UPN.
    assert (await exo.post("Get-Mailbox", Identity=owner.userPrincipalName)).status_code == 200


# ---------------------------------------------------------------------------------------- PIM eligibility requests
async def test_eligibility_request_remove_and_assign_through_the_sdk(sdk, tenant):
    from msgraph.generated.models.unified_role_eligibility_schedule_request import (  # noqa: TID251
        UnifiedRoleEligibilityScheduleRequest,
    )
    from msgraph.generated.models.unified_role_schedule_request_actions import (  # noqa: TID251
        UnifiedRoleScheduleRequestActions,
    )

    u = _plain_user(tenant)
    tenant.add_eligible_role(u, "Exchange Administrator", log=False)
    requests = sdk.role_management.directory.role_eligibility_schedule_requests
    body = UnifiedRoleEligibilityScheduleRequest(action=UnifiedRoleScheduleRequestActions.AdminRemove,
                                                 principal_id=u.id, role_definition_id=EXCHANGE_ADMIN,
                                                 directory_scope_id="/")
    done = await requests.post(body)
    assert done.status == "Revoked" and done.action == UnifiedRoleScheduleRequestActions.AdminRemove
    assert tenant.eligible_roles_of(u) == []
    # Removing what is not there: PIM's 400, as an OData error the SDK raises.
    with pytest.raises(ODataError) as exc:
        await requests.post(body)
    assert exc.value.response_status_code == 400 and exc.value.error.code == "RoleAssignmentDoesNotExist"
    # adminAssign brings it back; the list endpoint shows it.
    body.action = UnifiedRoleScheduleRequestActions.AdminAssign
    made = await requests.post(body)
    assert made.status == "Provisioned" and made.target_schedule_id
    assert tenant.eligible_roles_of(u) == ["Exchange Administrator"]
    assert [m["detail"]["action"] for m in tenant.mutations[-2:]] == ["adminRemove", "adminAssign"]


async def test_eligibility_requests_need_p2_and_a_write_permission(tenant, client):
    from conftest import graph_client

    u = _plain_user(tenant)
    tenant.add_eligible_role(u, "Exchange Administrator", log=False)
    body = {"action": "adminRemove", "principalId": u.id, "roleDefinitionId": EXCHANGE_ADMIN, "directoryScopeId": "/"}
    url = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests"
    app = create_app(tenant, SimOptions(permissions=ALL_PERMISSIONS - {"RoleManagement.ReadWrite.Directory",
                                                                       "RoleEligibilitySchedule.ReadWrite.Directory"}))
    async with graph_client(app) as read_only:
        r = await read_only.post(url, json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"
    tenant.license = "P1"
    r = await client.post(url, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "AadPremiumLicenseRequired"
    r = await client.get("/v1.0/roleManagement/directory/roleEligibilitySchedules")
    assert r.status_code == 400 and r.json()["error"]["code"] == "AadPremiumLicenseRequired"
    assert tenant.eligible_roles_of(u) == ["Exchange Administrator"]
