"""Every JSON shape the simulator serves deserialises into the msgraph-sdk's own models, with no stray properties."""

from __future__ import annotations

import datetime as dt
import enum

import pytest
from kiota_abstractions.serialization import Parsable
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models import (  # noqa: TID251
    authentication_method_collection_response as amc,
)
from msgraph.generated.models.directory_object_collection_response import DirectoryObjectCollectionResponse  # noqa: TID251
from msgraph.generated.models.directory_role_collection_response import DirectoryRoleCollectionResponse  # noqa: TID251
from msgraph.generated.models.domain_collection_response import DomainCollectionResponse  # noqa: TID251
from msgraph.generated.models.fido2_authentication_method_collection_response import (  # noqa: TID251
    Fido2AuthenticationMethodCollectionResponse,
)
from msgraph.generated.models.mail_folder import MailFolder  # noqa: TID251
from msgraph.generated.models.mail_folder_collection_response import MailFolderCollectionResponse  # noqa: TID251
from msgraph.generated.models.mailbox_settings import MailboxSettings  # noqa: TID251
from msgraph.generated.models.message_collection_response import MessageCollectionResponse  # noqa: TID251
from msgraph.generated.models.message_rule import MessageRule  # noqa: TID251
from msgraph.generated.models.message_rule_collection_response import MessageRuleCollectionResponse  # noqa: TID251
from msgraph.generated.models.microsoft_authenticator_authentication_method_collection_response import (  # noqa: TID251
    MicrosoftAuthenticatorAuthenticationMethodCollectionResponse,
)
from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant  # noqa: TID251
from msgraph.generated.models.o_auth2_permission_grant_collection_response import (  # noqa: TID251
    OAuth2PermissionGrantCollectionResponse,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: TID251
from msgraph.generated.models.organization_collection_response import OrganizationCollectionResponse  # noqa: TID251
from msgraph.generated.models.phone_authentication_method_collection_response import (  # noqa: TID251
    PhoneAuthenticationMethodCollectionResponse,
)
from msgraph.generated.models.service_principal import ServicePrincipal  # noqa: TID251
from msgraph.generated.models.service_principal_collection_response import ServicePrincipalCollectionResponse  # noqa: TID251
from msgraph.generated.models.temporary_access_pass_authentication_method_collection_response import (  # noqa: TID251
    TemporaryAccessPassAuthenticationMethodCollectionResponse,
)
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment  # noqa: TID251
from msgraph.generated.models.unified_role_assignment_collection_response import (  # noqa: TID251
    UnifiedRoleAssignmentCollectionResponse,
)
from msgraph.generated.models.unified_role_definition_collection_response import (  # noqa: TID251
    UnifiedRoleDefinitionCollectionResponse,
)
from msgraph.generated.models.unified_role_eligibility_schedule_collection_response import (  # noqa: TID251
    UnifiedRoleEligibilityScheduleCollectionResponse,
)
from msgraph.generated.models.user import User  # noqa: TID251
from msgraph.generated.models.user_collection_response import UserCollectionResponse  # noqa: TID251
from msgraph.generated.models.user_registration_details_collection_response import (  # noqa: TID251
    UserRegistrationDetailsCollectionResponse,
)
from msgraph.generated.users.item.revoke_sign_in_sessions.revoke_sign_in_sessions_post_response import (  # noqa: TID251
    RevokeSignInSessionsPostResponse,
)

from scanner.simulator.graph import GETTERS

FACTORY = JsonParseNodeFactory()


def parse(raw: bytes, cls):
    return FACTORY.get_root_parse_node("application/json", raw).get_object_value(cls)


def stray(obj, path="$") -> list[str]:
    """Properties the SDK model did not recognise (misspelt or invented names land in additional_data)."""
    out = []
    if isinstance(obj, Parsable):
        extra = getattr(obj, "additional_data", None) or {}
        # resourceScope is in Microsoft's documented roleAssignment responses but not in the SDK model
        out += [f"{path}.{k}" for k in extra if not k.startswith("@") and k != "resourceScope"]
        for name, val in vars(obj).items():
            if name != "additional_data" and not isinstance(val, str | int | float | bool | dt.datetime | dt.date | enum.Enum):
                out += stray(val, f"{path}.{name}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += stray(v, f"{path}[{i}]")
    return out


async def fetch(client, url: str, method: str = "GET", **kw) -> bytes:
    r = await client.request(method, url, **kw)
    assert r.status_code in (200, 201), (url, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["request-id"] and r.headers["client-request-id"] and r.headers["date"]
    return r.content


def uid(tenant, upn):
    return tenant.user(upn).id


CASES = [
    ("/v1.0/users?$top=50&$select=" + ",".join(sorted(GETTERS)), UserCollectionResponse,
     lambda o, t: o.value[0].id and o.value[0].created_date_time and o.odata_next_link and o.value[0].assigned_licenses is not None),
    ("/v1.0/users?$top=999", UserCollectionResponse, lambda o, t: o.value[0].user_principal_name and o.value[0].display_name),
    ("/v1.0/users/{alex}", User, lambda o, t: o.id == uid(t, "alex.wilber@contoso.com") and o.mail),
    ("/v1.0/users/{alex}?$select=id,mailboxSettings,signInActivity", User,
     lambda o, t: o.mailbox_settings.user_purpose is not None and o.sign_in_activity.last_sign_in_date_time),
    ("/v1.0/users/{alex}/mailboxSettings", MailboxSettings, lambda o, t: o.user_purpose.value == "user" and o.time_zone),
    ("/v1.0/users/ap@contoso.com/mailboxSettings", MailboxSettings, lambda o, t: o.user_purpose.value == "shared"),
    ("/v1.0/users/{alex}/mailFolders?includeHiddenFolders=true&$top=50", MailFolderCollectionResponse,
     lambda o, t: {"Inbox", "RSS Subscriptions", "Sync Issues"} <= {f.display_name for f in o.value} and all(f.id for f in o.value)),
    ("/v1.0/users/{alex}/mailFolders/inbox", MailFolder, lambda o, t: o.display_name == "Inbox" and o.parent_folder_id),
    ("/v1.0/users/{alex}/mailFolders/syncissues/childFolders?includeHiddenFolders=true", MailFolderCollectionResponse,
     lambda o, t: len(o.value) == 3),
    ("/v1.0/users/{alex}/mailFolders/inbox/messageRules", MessageRuleCollectionResponse,
     lambda o, t: o.value[0].actions.forward_to[0].email_address.address == "billing@contoso-payments.com"
     and o.value[0].conditions.body_or_subject_contains),
    ("/v1.0/users/johanna.lorenz@contoso.com/mailFolders/inbox/messageRules", MessageRuleCollectionResponse,
     lambda o, t: o.value[1].conditions.within_size_range.minimum_size == 0),
    ("/v1.0/users/lee.gu@contoso.com/mailFolders/inbox/messageRules", MessageRuleCollectionResponse,
     lambda o, t: o.value[1].conditions.is_non_delivery_report is True and o.value[1].actions.permanent_delete),
    ("/v1.0/users/lee.gu@contoso.com/mailFolders/sentitems/messages?$top=50&$count=true", MessageCollectionResponse,
     lambda o, t: len(o.value) == 50 and o.value[0].sent_date_time and o.value[0].to_recipients and o.odata_count > 900),
    ("/v1.0/users/{alex}/authentication/methods", amc.AuthenticationMethodCollectionResponse,
     lambda o, t: {type(m).__name__ for m in o.value} >= {"PasswordAuthenticationMethod", "PhoneAuthenticationMethod",
                                                            "MicrosoftAuthenticatorAuthenticationMethod"}),
    ("/v1.0/users/patti.fernandez@contoso.com/authentication/fido2Methods", Fido2AuthenticationMethodCollectionResponse,
     lambda o, t: o.value[0].aa_guid and o.value[0].created_date_time),
    ("/v1.0/users/patti.fernandez@contoso.com/authentication/phoneMethods", PhoneAuthenticationMethodCollectionResponse,
     lambda o, t: o.value[0].phone_number == "+44 7700900123" and o.value[0].phone_type.value == "alternateMobile"),
    ("/v1.0/users/patti.fernandez@contoso.com/authentication/microsoftAuthenticatorMethods",
     MicrosoftAuthenticatorAuthenticationMethodCollectionResponse, lambda o, t: o.value[0].display_name == "Galaxy A14"),
    ("/v1.0/users/nestor.wilke@contoso.com/authentication/temporaryAccessPassMethods",
     TemporaryAccessPassAuthenticationMethodCollectionResponse,
     lambda o, t: o.value[0].is_usable is True and o.value[0].lifetime_in_minutes == 480),
    ("/v1.0/users/mona.kane@contoso.com/authentication/temporaryAccessPassMethods",
     TemporaryAccessPassAuthenticationMethodCollectionResponse,
     lambda o, t: o.value[0].is_usable is False and o.value[0].method_usability_reason == "Expired"),
    ("/v1.0/reports/authenticationMethods/userRegistrationDetails", UserRegistrationDetailsCollectionResponse,
     lambda o, t: o.value[0].user_principal_name and o.value[0].methods_registered is not None),
    ("/v1.0/roleManagement/directory/roleDefinitions", UnifiedRoleDefinitionCollectionResponse,
     lambda o, t: any(d.display_name == "Global Administrator" and d.template_id == "62e90394-69f5-4237-9190-012177145e10" for d in o.value)),
    ("/v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq '62e90394-69f5-4237-9190-012177145e10'&$expand=principal",
     UnifiedRoleAssignmentCollectionResponse,
     lambda o, t: len(o.value) == 4 and type(o.value[0].principal).__name__ == "User" and o.value[0].principal.display_name
     # the role-assignable group holding Global Administrator (scenarios/tenant/groups.json) deserialises as a Group
     and [(p.display_name, p.is_assignable_to_role) for p in (a.principal for a in o.value)
          if type(p).__name__ == "Group"] == [("Tier 0 Administrators", True)]),
    ("/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{nestor_id}'&$expand=roleDefinition",
     UnifiedRoleAssignmentCollectionResponse, lambda o, t: o.value[0].role_definition.display_name == "Exchange Administrator"),
    ("/v1.0/roleManagement/directory/roleEligibilitySchedules?$filter=principalId eq '{adam_id}'",
     UnifiedRoleEligibilityScheduleCollectionResponse,
     lambda o, t: o.value[0].schedule_info.start_date_time and o.value[0].member_type == "Direct"),
    ("/v1.0/directoryRoles", DirectoryRoleCollectionResponse, lambda o, t: any(r.display_name == "Global Administrator" for r in o.value)),
    ("/v1.0/directoryRoles(roleTemplateId='62e90394-69f5-4237-9190-012177145e10')/members", DirectoryObjectCollectionResponse,
     lambda o, t: [type(m).__name__ for m in o.value] == ["User", "User", "User", "Group"]),
    ("/v1.0/oauth2PermissionGrants", OAuth2PermissionGrantCollectionResponse,
     lambda o, t: any(g.consent_type == "AllPrincipals" for g in o.value) and all(g.client_id and g.scope for g in o.value)),
    ("/v1.0/users/christie.cline@contoso.com/oauth2PermissionGrants", OAuth2PermissionGrantCollectionResponse,
     lambda o, t: len(o.value) == 2),
    ("/v1.0/servicePrincipals", ServicePrincipalCollectionResponse,
     lambda o, t: any(s.display_name == "PerfectData Software" and s.verified_publisher.display_name is None for s in o.value)),
    ("/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')", ServicePrincipal,
     lambda o, t: o.display_name == "Microsoft Graph" and o.oauth2_permission_scopes),
    ("/v1.0/domains", DomainCollectionResponse, lambda o, t: {d.id for d in o.value} == {"contoso.com", "eu.contoso.com", "contoso.onmicrosoft.com"}),
    ("/v1.0/organization", OrganizationCollectionResponse, lambda o, t: o.value[0].verified_domains[0].name),
]


@pytest.mark.parametrize(("url", "cls", "check"), CASES, ids=[c[0].split("?")[0][6:] for c in CASES])
async def test_shape_deserialises(client, tenant, url, cls, check):
    url = url.replace("{alex}", "alex.wilber@contoso.com").replace("{nestor_id}", uid(tenant, "nestor.wilke@contoso.com")) \
             .replace("{adam_id}", uid(tenant, "adam.baxter@contoso.com"))
    obj = parse(await fetch(client, url), cls)
    assert check(obj, tenant)
    assert stray(obj) == []


async def test_single_rule_grant_assignment_and_revoke(client, tenant):
    rid = tenant.visible_rules("alex.wilber@contoso.com")[0].id
    r = parse(await fetch(client, f"/v1.0/users/alex.wilber@contoso.com/mailFolders/inbox/messageRules/{rid}"), MessageRule)
    assert r.id == rid and r.actions.mark_as_read and stray(r) == []
    gid = next(iter(tenant.grants))
    g = parse(await fetch(client, f"/v1.0/oauth2PermissionGrants/{gid}"), OAuth2PermissionGrant)
    assert g.id == gid and stray(g) == []
    aid = next(iter(tenant.role_assignments))
    a = parse(await fetch(client, f"/v1.0/roleManagement/directory/roleAssignments/{aid}?$expand=principal"), UnifiedRoleAssignment)
    assert a.principal_id and stray(a) == []
    rv = parse(await fetch(client, "/v1.0/users/alex.wilber@contoso.com/revokeSignInSessions", method="POST"),
               RevokeSignInSessionsPostResponse)
    assert rv.value is True


async def test_error_shape_deserialises(client):
    r = await client.get("/v1.0/users/nobody@contoso.com")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    err = parse(r.content, ODataError)
    assert err.error.code == "Request_ResourceNotFound"
    assert err.error.inner_error.request_id == r.headers["request-id"] and err.error.inner_error.date
