"""The simulator driven through the real msgraph-sdk: paging, $select, $batch, 429, 403, PATCH/DELETE."""

from __future__ import annotations

import json

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.headers_collection import HeadersCollection
from msgraph.generated.models.message_rule import MessageRule  # noqa: TID251
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: TID251
from msgraph.generated.models.user import User  # noqa: TID251
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (  # noqa: TID251
    RoleAssignmentsRequestBuilder,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder  # noqa: TID251
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem
from msgraph_core.tasks.page_iterator import PageIterator

from scanner.simulator import SimOptions, create_app


def cfg(**qp):
    return RequestConfiguration(query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**qp),
                                headers=HeadersCollection())


async def test_paging_over_several_pages_with_select(sdk, tenant):
    first = await sdk.users.get(request_configuration=cfg(select=["id", "userPrincipalName", "accountEnabled"], top=70))
    assert first.odata_next_link.startswith("http://127.0.0.1:8765/v1.0/users?")
    assert "$skiptoken=" in first.odata_next_link and "$select=" in first.odata_next_link
    seen: list = []
    it = PageIterator(first, sdk.request_adapter, error_mapping={"XXX": ODataError})
    await it.iterate(lambda u: seen.append(u) or True)
    assert len(seen) == tenant.user_count == 300
    assert len({u.id for u in seen}) == 300
    # $select: only the selected properties come back
    assert all(u.display_name is None and u.user_principal_name for u in seen)
    assert any(u.account_enabled is False for u in seen)


async def test_default_properties_without_select(sdk):
    page = await sdk.users.get(request_configuration=cfg(top=5))
    u = page.value[0]
    assert u.display_name and u.user_principal_name and u.id
    assert u.account_enabled is None  # not in the default property set


async def test_batch_of_20_via_send_primitive(sdk, tenant):
    batch = BatchRequestContent()
    upns = ["alex.wilber@contoso.com"] + [u for u in tenant.labels if tenant.user(u).mailbox is not None][:19]
    for k, upn in enumerate(upns):
        ri = sdk.users.by_user_id(upn).mail_folders.by_mail_folder_id("inbox").message_rules.to_get_request_information()
        batch.add_request(str(k), BatchRequestItem(request_information=ri, id=str(k)))
    ri = await sdk.batch.to_post_request_information(batch)
    raw = await sdk.request_adapter.send_primitive_async(ri, "bytes", {"XXX": ODataError})
    doc = json.loads(raw)
    assert sorted(int(r["id"]) for r in doc["responses"]) == list(range(20))
    assert all(r["status"] == 200 for r in doc["responses"])
    by_id = {r["id"]: r for r in doc["responses"]}
    names = [r["displayName"] for r in by_id["0"]["body"]["value"]]
    assert "." in names


async def test_429_is_honoured_by_the_retry_handler(sdk, tenant):
    f = tenant.faults.add(r"/users$", kind="throttle", retry_after=1, times=1)
    page = await sdk.users.get(request_configuration=cfg(top=3))
    assert len(page.value) == 3
    assert f.hits == 1


async def test_403_surfaces_as_odataerror_with_code(tenant, sdk_factory):
    app = create_app(tenant, SimOptions(permissions={"User.Read.All"}))
    sdk = sdk_factory(app)
    with pytest.raises(ODataError) as e:
        await sdk.users.by_user_id("alex.wilber@contoso.com").mail_folders.by_mail_folder_id("inbox").message_rules.get()
    assert e.value.response_status_code == 403
    assert e.value.error.code == "ErrorAccessDenied"
    assert e.value.error.inner_error.request_id
    qp = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(filter="principalId eq 'x'")
    with pytest.raises(ODataError) as e:
        await sdk.role_management.directory.role_assignments.get(
            request_configuration=RequestConfiguration(query_parameters=qp, headers=HeadersCollection()))
    assert e.value.error.code == "Authorization_RequestDenied"


async def test_404_no_mailbox(sdk):
    with pytest.raises(ODataError) as e:
        await sdk.users.by_user_id("breakglass@contoso.onmicrosoft.com").mailbox_settings.get()
    assert e.value.response_status_code == 404 and e.value.error.code == "MailboxNotEnabledForRESTAPI"


async def test_patch_and_delete_change_state(sdk, tenant):
    upn = "alex.wilber@contoso.com"
    rules = await sdk.users.by_user_id(upn).mail_folders.by_mail_folder_id("inbox").message_rules.get()
    rule = rules.value[0]
    updated = await sdk.users.by_user_id(upn).mail_folders.by_mail_folder_id("inbox").message_rules.by_message_rule_id(
        rule.id).patch(MessageRule(is_enabled=False))
    assert updated.is_enabled is False and updated.actions.forward_to  # 200 + full rule, other props kept
    assert tenant.visible_rules(upn)[0].isEnabled is False

    await sdk.users.by_user_id(upn).patch(User(account_enabled=False))
    assert tenant.user(upn).accountEnabled is False

    res = await sdk.users.by_user_id(upn).revoke_sign_in_sessions.post()
    assert res.value is True and tenant.user(upn).sessions_revoked == 1

    methods = await sdk.users.by_user_id(upn).authentication.microsoft_authenticator_methods.get()
    mid = methods.value[0].id
    await sdk.users.by_user_id(upn).authentication.microsoft_authenticator_methods.by_microsoft_authenticator_authentication_method_id(mid).delete()
    assert all(m["id"] != mid for m in tenant.methods(tenant.user(upn)))

    await sdk.users.by_user_id(upn).mail_folders.by_mail_folder_id("inbox").message_rules.by_message_rule_id(rule.id).delete()
    assert tenant.visible_rules(upn) == []
    kinds = [m["method"] for m in tenant.mutations_for(upn)]
    assert kinds == ["PATCH", "PATCH", "POST", "DELETE", "DELETE"]


async def test_password_reset_and_synced_user(sdk, tenant):
    from msgraph.generated.models.password_profile import PasswordProfile  # noqa: TID251
    await sdk.users.by_user_id("adele.vance@contoso.com").patch(
        User(password_profile=PasswordProfile(password="N3w!Str0ng#Passw0rd", force_change_password_next_sign_in=True)))
    u = tenant.user("adele.vance@contoso.com")
    assert u.password_changed_at is not None and u.force_change_password
    assert "N3w!Str0ng" not in json.dumps(tenant.mutations)  # never the plain password
    with pytest.raises(ODataError) as e:
        await sdk.users.by_user_id("wilna.nel@contoso.com").patch(
            User(password_profile=PasswordProfile(password="N3w!Str0ng#Passw0rd", force_change_password_next_sign_in=True)))
    assert e.value.response_status_code == 400 and "on-premises mastered" in e.value.error.message


async def test_token_expiry_mid_scan_then_fresh_token(sdk, app):
    await sdk.users.get(request_configuration=cfg(top=1))
    app.expire_tokens()
    # the SDK's credential is asked for a new token per request, so the next call works again
    page = await sdk.users.get(request_configuration=cfg(top=1))
    assert page.value
