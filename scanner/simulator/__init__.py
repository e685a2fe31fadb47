"""The simulated Microsoft 365 tenant: a Graph v1.0 + Exchange admin API server backed by a generated tenant.

Quick start::

    from scanner.simulator import generate_tenant, create_app, SimOptions, SimulatorServer
    tenant = generate_tenant(users=200, seed=7, scenarios=True)        # now=datetime(...) freezes the clock
    app = create_app(tenant, SimOptions(permissions=None, throttle=False, retry_after=1, fault_rate=0.0, seed=0))
    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765")   # in-process
    with SimulatorServer(app, port=0) as srv: ...   # srv.graph_url, srv.exchange_url, srv.tenant_id, srv.graph_token

Tokens: ``app.issue_token("https://graph.microsoft.com")`` / ``app.issue_token("https://outlook.office365.com",
lifetime_s=60)`` mint JWT-shaped bearer tokens (claims aud, tid, roles, exp). ``app.expire_tokens()`` invalidates
every token issued so far (401 ``InvalidAuthenticationToken``); freshly issued ones work. ``app.graph_token`` and
``app.exchange_token`` are issued at start. The roles claim holds ``SimOptions.permissions`` (None = all of
``permissions.ALL_PERMISSIONS``); endpoint requirements are in ``permissions.REQUIRED``.

Ground truth: ``tenant.labels[upn] = {"label", "classes", "techniques", "scenario", "notes", "source"}`` for every
planted account (scenarios are data: ``scanner/simulator/scenarios/*.json``); ``tenant.label_of(upn)`` also answers
"plain" for generated background users.

State inspection (plain Python): ``u = tenant.user(upn_or_id)``; ``u.accountEnabled``, ``u.mailbox.forwarding_smtp``
/ ``forwarding_address`` / ``deliver_and_forward`` / ``cas`` / ``blocked`` / ``grant_send_on_behalf``,
``u.sessions_revoked`` (count) / ``u.sessions_revoked_at``, ``u.password_changed_at`` / ``u.force_change_password``
(only a salted hash is kept), ``tenant.rules(u)`` (``Rule`` objects; ``.hidden`` ones only via Exchange),
``tenant.visible_rules(upn)`` / ``tenant.hidden_rules(upn)``, ``tenant.methods(u)``, ``tenant.roles_of(u)``,
``tenant.role_assignments``, ``tenant.grants_for_user(u)``, ``tenant.mailbox_permissions(u)``,
``tenant.recipient_permissions(u)``, ``tenant.is_blocked(upn)``, ``tenant.folders(u)``.
Writes remediation ``undo`` uses: ``POST /roleManagement/directory/roleAssignments`` (201; ids derive from role
definition + principal + scope, as Graph's do; a duplicate is 400 "A conflicting object ..."),
``POST /oauth2PermissionGrants`` (201; id = base64url(clientId | resourceId | principalId), so a deleted grant
created again keeps its id; a duplicate key is 409 ``Request_MultipleObjectsWithSameKeyValue``),
``Add-MailboxPermission`` (the entry records ``AutoMapping``) and ``Add-RecipientPermission`` (SendAs only); adding
an existing ACE warns and changes nothing.
``tenant.mutations``: every change, ``{"time", "method", "path", "target", "detail"}`` (method is the HTTP verb or
the cmdlet name); ``tenant.mutations_for(upn)``.

Planting changes between scans: ``tenant.add_rule(upn, displayName=..., conditions=..., actions={"moveToFolder":
"RSS Feeds", ...}, hidden=False)``, ``tenant.remove_rule(upn, id_or_name)``, ``tenant.add_many_rules(upn, 3000)``,
``tenant.add_method(u, "microsoftAuthenticatorMethods", {...}, created=tenant.now())``, ``tenant.add_role(u,
"Global Administrator")``, ``tenant.set_forwarding(upn, smtp="smtp:x@evil.example")``, ``tenant.add_grant(u,
"Mail Sync Pro", "Mail.ReadWrite offline_access")``, ``tenant.add_delegate(upn, trustee, "FullAccess"|"SendAs")``,
``tenant.block_sender(upn)``, ``tenant.add_app_role_assignment("Mail Sync Pro", "Microsoft Graph", "Mail.Send")``
(an application permission; ``tenant.app_role_assignments``, ``tenant.app_roles_of(app)``; the scanning app
``tokens.SIM_APP_ID`` "m365sweep" holds its read permissions + Exchange.ManageAsApp in every tenant),
``tenant.add_transport_rule("Archive all mail", BlindCopyTo=["x@gmail.com"], SetSCL=-1, State="Disabled", ...)``
(an Exchange mail-flow rule, properties in Get-TransportRule's names; the same name again replaces it in place, as
``Set-TransportRule`` would; ``tenant.transport_rules``, served by ``Get-TransportRule`` with every other property
null; the planted and benign rules are data: ``scenarios/tenant/transport_rules.json``, ground truth in
``tenant.tenant_labels["transportrule:<name>"]``), ``outbound.add(tenant, "policies"|"rules"|"remote_domains",
{...})`` (``scanner.simulator.outbound``: the auto-forwarding controls served by ``Get-RemoteDomain``,
``Get-HostedOutboundSpamFilterPolicy`` and ``Get-HostedOutboundSpamFilterRule``, properties in the cmdlets' names;
``outbound.state(tenant)`` holds them; the defaults and the planted bookkeeper exception are data:
``scenarios/tenant/outbound_policy.json``), ``role_groups.add_member(tenant, "Organization Management", upn)`` /
``role_groups.apply_overnight(tenant)`` (``scanner.simulator.role_groups``: Exchange RBAC role groups served by
``Get-RoleGroup`` / ``Get-RoleGroupMember`` and changed by ``Add-`` / ``Remove-RoleGroupMember``; the built-in groups,
their standing members and the planted overnight addition of a taken-over mailbox to Organization Management are
data: ``scenarios/tenant/role_groups.json``; ``role_groups.members_of(tenant, group)``),
``role_assignments.assign(tenant, "Mailbox Import Export", upn)`` (``scanner.simulator.role_assignments``: direct
Exchange management role assignments served by ``Get-ManagementRoleAssignment`` and changed by ``New-`` / ``Remove-
ManagementRoleAssignment``; ``role_assignments.assignments_of(tenant, upn)``), ``tenant.advance(seconds)``
(frozen clock only).

Fault injection (deterministic): ``tenant.faults.add(match, kind, status=None, times=1, upn=None, method=None,
retry_after="1", code=None, message=None)``. ``match`` is a regex searched in the Graph path (``/v1.0/users/...``)
or an exact cmdlet name (``"Get-InboxRule"``). Kinds: ``status`` (error JSON with ``status``), ``throttle`` (429;
``retry_after="2.128"`` or ``None`` for no header), ``reset`` (connection cut mid-body; in-process clients get
``httpx.RemoteProtocolError``), ``malformed`` / ``truncated`` (200 with broken JSON), ``loop_nextlink`` (the page's
nextLink points at itself), ``empty``, ``expire_tokens`` (401 ``InvalidAuthenticationToken`` and every token issued so
far stops working: "the token expired mid-scan"; freshly issued tokens work). ``times=None`` = forever. Random faults: ``SimOptions(fault_rate, seed)``.

Scale: background users are derived from (seed, index) on demand; ids and UPNs invert in O(1). Users read through
the API sit in a bounded LRU (``tenant.live_cache_size``, regenerated identically after eviction); changed users are
pinned (``tenant.mark_dirty(u)``, ``tenant.changed_users()``). ``tenant.user_at(i)`` / ``tenant.iter_users()`` walk
the directory in listing order.

Other options: ``SimOptions(token_lifetime_s=3600, exchange_page_size=1000, shuffle_batch=True, nul_403_gzip=True)``
(unknown cmdlets answer 403 with a NUL byte declared as gzip, as the real endpoint does; httpx raises DecodingError on
it unless the client streams the body). ``SimOptions(exchange_rbac_denied={"Get-TransportRule"})``: cmdlets outside
the app's Exchange RBAC role(s), answered like an unknown cmdlet. ``POST /adminapi/beta/{tenant}/$batch`` runs up to
``SimOptions(exchange_batch_max=10)`` InvokeCommand sub-requests concurrently (each with its own latency, faults and
errors, answered by id in any order); ``SimOptions(exchange_batch=False)`` answers it 404, like a service without it.

Throttling (``SimOptions(throttle=True)``): Outlook per mailbox 4 concurrent / 10,000 per 10 min
(``ApplicationThrottled``), directory resource units per 10 s by tenant size with ``x-ms-resource-unit`` /
``x-ms-throttle-scope``, reports 5 per 10 s; inside ``$batch`` too. ``app.counters`` /
``app.throttler.requests`` / ``app.throttler.throttled`` for benchmarks; ``tenant.stats`` counts generator work
(``users_built``, ``users_live``, ``mailboxes_materialised``, ``upn_index_builds``, ``user_pages``).
"""

from .app import SimOptions, SimulatedConnectionReset, SimulatorApp, create_app
from .generate import generate_tenant
from .model import Rule, Tenant, User
from .server import SimulatorServer

__all__ = ["generate_tenant", "create_app", "SimOptions", "SimulatorServer", "SimulatorApp", "Tenant", "User", "Rule",
           "SimulatedConnectionReset"]
