"""Entra groups in the simulator, through the real msgraph-sdk: the group entity, direct and transitive members (and
the ``/microsoft.graph.user`` cast with ``$select``), a user's memberOf / transitiveMemberOf, adding and removing a
member by reference (group-post-members / group-delete-members), role assignments whose principal is a group, and the
permission refusals Microsoft documents for role-assignable groups."""

from __future__ import annotations

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: TID251
from msgraph.generated.models.reference_create import ReferenceCreate  # noqa: TID251

from scanner.simulator import SimOptions, create_app
from scanner.simulator.permissions import ALL_PERMISSIONS

GA = "62e90394-69f5-4237-9190-012177145e10"
TIER0 = "Tier 0 Administrators"
VICTIM = "leo.castillo@contoso.com"
STANDING = "cloud.ops@contoso.com"
DIRECTORY_OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"


def _gid(tenant, name: str = TIER0) -> str:
    return tenant.group(name)["id"]


def _ref(oid: str) -> ReferenceCreate:
    return ReferenceCreate(odata_id=DIRECTORY_OBJECTS + oid)


def _plain_user(tenant):
    u = next(u for u in tenant.iter_users() if u.mailbox is not None and u.userType == "Member"
             and u.userPrincipalName.lower() not in tenant.labels and not tenant.member_of(u.id))
    return tenant.user(u.userPrincipalName)




def _cfg(builder_cls, **params) -> RequestConfiguration:
    qp_cls = next(v for k, v in vars(builder_cls).items() if k.endswith("GetQueryParameters"))
    return RequestConfiguration(query_parameters=qp_cls(**params))


# ---------------------------------------------------------------------------------------- reads
async def test_group_entity_and_its_direct_members(sdk, tenant):
    gid = _gid(tenant)
    g = await sdk.groups.by_group_id(gid).get()
    assert (g.display_name, g.is_assignable_to_role, g.security_enabled, g.mail_enabled, g.group_types) == \
        (TIER0, True, True, False, [])
    page = await sdk.groups.by_group_id(gid).members.get()
    got = {(m.odata_type, m.id) for m in page.value}
    assert got == {("#microsoft.graph.user", tenant.user(u).id) for u in (STANDING, VICTIM)}
    assert {m.user_principal_name for m in page.value} == {STANDING, VICTIM}


async def test_role_assignment_principal_expands_to_the_group(client, tenant):
    gid = _gid(tenant)
    r = await client.get("/v1.0/roleManagement/directory/roleAssignments",
                         params={"$filter": f"roleDefinitionId eq '{GA}'", "$expand": "principal"})
    assert r.status_code == 200
    (row,) = [a for a in r.json()["value"] if a["principalId"] == gid]
    p = row["principal"]
    assert p["@odata.type"] == "#microsoft.graph.group" and p["isAssignableToRole"] is True
    assert p["displayName"] == TIER0 and p["id"] == gid


async def test_transitive_members_user_cast_with_select_and_nesting(client, tenant):
    outer = tenant.add_group("Helpdesk (all sites)")
    inner = tenant.add_group("Helpdesk Seattle")
    a, b = _plain_user(tenant), None
    tenant.add_group_member(inner, a)
    tenant.add_group_member(outer, inner)
    b = next(u for u in tenant.iter_users() if u.mailbox is not None and u.id != a.id
             and u.userPrincipalName.lower() not in tenant.labels)
    tenant.add_group_member(outer, b.userPrincipalName)
    r = await client.get(f"/v1.0/groups/{outer['id']}/transitiveMembers/microsoft.graph.user", params={"$select": "id"})
    assert r.status_code == 200
    assert r.json()["value"] == [{"@odata.type": "#microsoft.graph.user", "id": a.id},
                                 {"@odata.type": "#microsoft.graph.user", "id": b.id}]
    r = await client.get(f"/v1.0/groups/{outer['id']}/members")
    assert [(v["@odata.type"], v["id"]) for v in r.json()["value"]] == [
        ("#microsoft.graph.group", inner["id"]), ("#microsoft.graph.user", b.id)]
    r = await client.get(f"/v1.0/groups/{outer['id']}/transitiveMembers/microsoft.graph.group",
                         params={"$select": "id,displayName"})
    assert r.json()["value"] == [{"@odata.type": "#microsoft.graph.group", "id": inner["id"],
                                  "displayName": "Helpdesk Seattle"}]
    r = await client.get(f"/v1.0/groups/{outer['id']}/members/microsoft.graph.nothing")
    assert r.status_code == 400
    r = await client.get(f"/v1.0/groups/{outer['id']}/members/microsoft.graph.group", params={"$select": "nope"})
    assert r.status_code == 400


async def test_members_are_paged(client, tenant):
    g = tenant.add_group("Everyone in Seattle")
    users = [u for u in tenant.iter_users() if u.userType == "Member"][:7]
    for u in users:
        tenant.add_group_member(g, u.id)
    seen, url = [], f"/v1.0/groups/{g['id']}/members?$top=3&$select=id"
    while url:
        page = (await client.get(url)).json()
        seen += [v["id"] for v in page["value"]]
        url = page.get("@odata.nextLink")
    assert seen == [u.id for u in users]


async def test_member_of_and_transitive_member_of_through_the_sdk(sdk, tenant):
    uid = tenant.user(VICTIM).id
    direct = await sdk.users.by_user_id(uid).member_of.get()
    assert {(o.odata_type, o.display_name) for o in direct.value} == {
        ("#microsoft.graph.group", TIER0), ("#microsoft.graph.group", "Finance Team")}
    groups = await sdk.users.by_user_id(uid).transitive_member_of.graph_group.get()
    assert {(g.display_name, g.is_assignable_to_role) for g in groups.value} == {(TIER0, True), ("Finance Team", False)}
    # A directly assigned role appears in memberOf as a directoryRole; a role through a group in transitiveMemberOf.
    patti = tenant.user("patti.fernandez@contoso.com").id
    roles = await sdk.users.by_user_id(patti).member_of.get()
    assert [(o.odata_type, o.display_name) for o in roles.value] == [
        ("#microsoft.graph.directoryRole", "Global Administrator")]
    every = await sdk.users.by_user_id(uid).transitive_member_of.get()
    assert ("#microsoft.graph.directoryRole", "Global Administrator") in {(o.odata_type, o.display_name)
                                                                          for o in every.value}


async def test_member_of_needs_directory_read_and_groups_are_limited_without_group_read(tenant, sdk_factory):
    uid = tenant.user(VICTIM).id
    app = create_app(tenant, SimOptions(permissions={"User.Read.All", "RoleManagement.Read.Directory"}))
    sdk = sdk_factory(app)
    with pytest.raises(ODataError) as e:
        await sdk.users.by_user_id(uid).member_of.get()
    assert e.value.response_status_code == 403 and e.value.error.code == "Authorization_RequestDenied"
    # transitiveMemberOf needs only User.Read.All, but an app that may not read groups sees type and id only.
    page = await sdk.users.by_user_id(uid).transitive_member_of.graph_group.get()
    assert {g.id for g in page.value} == {_gid(tenant), _gid(tenant, "Finance Team")}
    assert all(g.display_name is None and g.is_assignable_to_role is None for g in page.value)
    with pytest.raises(ODataError) as e:
        await sdk.groups.by_group_id(_gid(tenant)).members.get()
    assert e.value.response_status_code == 403


async def test_unknown_group_is_404(client):
    r = await client.get("/v1.0/groups/00000000-0000-4000-8000-000000000000/members")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


# ---------------------------------------------------------------------------------------- writes
async def test_remove_then_add_member_by_reference(sdk, tenant):
    gid = _gid(tenant)
    victim = tenant.user(VICTIM)
    n = len(tenant.mutations)
    await sdk.groups.by_group_id(gid).members.by_directory_object_id(victim.id).ref.delete()
    assert TIER0 not in tenant.groups_of(victim)
    log = tenant.mutations[n:]
    assert [(m["method"], m["path"], m["target"]) for m in log] == [
        ("DELETE", f"/groups/{gid}/members/{victim.id}/$ref", VICTIM)]
    # Not a member any more: 404, nothing changes.
    with pytest.raises(ODataError) as e:
        await sdk.groups.by_group_id(gid).members.by_directory_object_id(victim.id).ref.delete()
    assert e.value.response_status_code == 404 and e.value.error.code == "Request_ResourceNotFound"
    await sdk.groups.by_group_id(gid).members.ref.post(_ref(victim.id))
    assert TIER0 in tenant.groups_of(victim)
    assert tenant.mutations[-1]["method"] == "POST" and tenant.mutations[-1]["target"] == VICTIM
    # Already a member: 400 with Graph's message, nothing changes.
    n = len(tenant.mutations)
    with pytest.raises(ODataError) as e:
        await sdk.groups.by_group_id(gid).members.ref.post(_ref(victim.id))
    assert e.value.response_status_code == 400
    assert "One or more added object references already exist" in e.value.error.message
    assert len(tenant.mutations) == n and tenant.group_members[gid].count(victim.id) == 1


async def test_add_member_validation(client, tenant):
    gid = _gid(tenant)
    base = f"/v1.0/groups/{gid}/members/$ref"
    r = await client.post(base, json={"@odata.id": DIRECTORY_OBJECTS + "00000000-0000-4000-8000-00000000dead"})
    assert r.status_code == 404
    r = await client.post(base, json={"@odata.id": "someone@contoso.com"})
    assert r.status_code == 400
    r = await client.post(base, json={})
    assert r.status_code == 400
    # Group nesting isn't supported for a role-assignable group (groups-concept).
    other = tenant.add_group("Ops")
    r = await client.post(base, json={"@odata.id": DIRECTORY_OBJECTS + other["id"]})
    assert r.status_code == 400 and "Nesting" in r.json()["error"]["message"]
    assert other["id"] not in tenant.group_members[gid]
    with pytest.raises(ValueError):
        tenant.add_group_member(TIER0, other)


ROLE_MGMT = "RoleManagement.ReadWrite.Directory"


@pytest.mark.parametrize(("removed", "status"), [
    ({ROLE_MGMT}, 403),  # GroupMember.ReadWrite.All alone does not reach a role-assignable group
    ({"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}, 403),  # and RoleManagement alone
])
async def test_role_assignable_membership_needs_both_permissions(tenant, sdk_factory, removed, status):
    gid = _gid(tenant)
    victim = tenant.user(VICTIM)
    sdk = sdk_factory(create_app(tenant, SimOptions(permissions=ALL_PERMISSIONS - removed)))
    with pytest.raises(ODataError) as e:
        await sdk.groups.by_group_id(gid).members.by_directory_object_id(victim.id).ref.delete()
    assert e.value.response_status_code == status and e.value.error.code == "Authorization_RequestDenied"
    with pytest.raises(ODataError) as e:
        await sdk.groups.by_group_id(gid).members.ref.post(_ref(_plain_user(tenant).id))
    assert e.value.response_status_code == status
    assert TIER0 in tenant.groups_of(victim)


async def test_ordinary_group_membership_needs_only_group_member_write(tenant, sdk_factory):
    gid = _gid(tenant, "Finance Team")
    victim = tenant.user(VICTIM)
    sdk = sdk_factory(create_app(tenant, SimOptions(permissions={"GroupMember.ReadWrite.All"})))
    await sdk.groups.by_group_id(gid).members.by_directory_object_id(victim.id).ref.delete()
    assert tenant.groups_of(victim) == [TIER0]
