"""Snapshot builders for detector tests: a clean account, and a small spec language to change one thing.

``account_from_spec(spec)`` starts from :func:`clean_account` and applies a dict (the same shape the evaluation cases
under ``cases/`` use), e.g. ``{"rules": [{"displayName": ".", "actions": {"forwardTo": ["x@gmail.com"]}}]}``.
Relative times (``created_hours_ago``) keep the cases independent of the date they run on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from detectors._model import AllowEntry, Allowlist, ScanContext, TenantFacts
from detectors.engine import AccountResult, catalogue, evaluate_account, tenant_facts
from scanner.snapshot import (
    AccountSnapshot,
    AuthMethod,
    Delegate,
    ExchangeRoleGroupMembership,
    InboxRule,
    MailboxForwarding,
    MailFolder,
    NotCollected,
    OAuthGrant,
    OutboundPolicy,
    Protocols,
    Registration,
    RoleAssignment,
    SendingStatus,
    TenantInfo,
    User,
)

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
TENANT = TenantInfo(tenant_id="00000000-0000-0000-0000-00000000c0de",
                    domains=("contoso.com", "contoso.onmicrosoft.com", "eu.contoso.com"),
                    initial_domain="contoso.onmicrosoft.com", default_domain="contoso.com", display_name="Contoso",
                    app_role_grants=(),  # application permissions read: none (None would mean "not read", a gap)
                    transport_rules=())  # mail-flow rules read: none
GA = "62e90394-69f5-4237-9190-012177145e10"

FOLDERS = (
    ("f-inbox", "Inbox", "inbox", None), ("f-archive", "Archive", "archive", None),
    ("f-rss", "RSS Feeds", "rssfeeds", None), ("f-rsssub", "RSS Subscriptions", "rsssubscriptions", None),
    ("f-conv", "Conversation History", "conversationhistory", None), ("f-notes", "Notes", "notes", None),
    ("f-junk", "Junk Email", "junkemail", None), ("f-deleted", "Deleted Items", "deleteditems", None),
    ("f-cal", "Calendar", "calendar", None), ("f-sent", "Sent Items", "sentitems", None),
    ("f-news", "Newsletters", None, "f-inbox"), ("f-invoices", "Invoices", None, "f-inbox"),
    ("f-boss", "Boss", None, "f-inbox"), ("f-hr", "HR", None, "f-inbox"), ("f-jira", "Jira", None, "f-inbox"),
    ("f-phish", "Reported phish", None, "f-inbox"), ("f-alerts", "Alerts", None, "f-inbox"),
)
FOLDER_IDS = {name: fid for fid, name, _, _ in FOLDERS}


def clean_account(upn: str = "alice@contoso.com", **user: Any) -> AccountSnapshot:
    u = User(id=f"id-{upn}", user_principal_name=upn, display_name=upn.split("@")[0].title(), mail=upn,
             account_enabled=True, user_type="Member", mobile_phone="+1 555 0100", job_title="Engineer",
             created_date_time=NOW - timedelta(days=900), mailbox_type="UserMailbox").model_copy(update=user)
    return AccountSnapshot(
        user=u,
        forwarding=MailboxForwarding(),
        inbox_rules=(InboxRule(id="r-news", display_name="Newsletters", sequence=1,
                               conditions={"fromAddresses": [{"emailAddress": {"address": "news@fabrikam.com"}}]},
                               actions={"moveToFolder": "f-news", "stopProcessingRules": True}),),
        folders=tuple(MailFolder(id=i, display_name=n, well_known_name=w, parent_folder_id=p) for i, n, w, p in FOLDERS),
        auth_methods=(
            AuthMethod(id="m-pw", method_type="passwordAuthenticationMethod", created_date_time=NOW - timedelta(days=40)),
            AuthMethod(id="m-app", method_type="microsoftAuthenticatorAuthenticationMethod",
                       created_date_time=NOW - timedelta(days=400), display_name="iPhone 13"),
        ),
        registration=Registration(is_admin=False, is_mfa_registered=True,
                                  methods_registered=("microsoftAuthenticatorPush",)),
        roles=(), oauth_grants=(), delegates=(), exchange_role_groups=(),
        sending=SendingStatus(blocked_from_sending=False, sent_last_24h=20),
        protocols=Protocols(mapi_enabled=True, ews_enabled=True, active_sync_enabled=True, imap_enabled=False,
                            pop_enabled=False, owa_enabled=True, smtp_client_authentication_disabled=True),
    )


def _recips(values: Any) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": v}} if isinstance(v, str) else v for v in values]


def _rule(i: int, r: dict[str, Any]) -> InboxRule:
    cond = dict(r.get("conditions") or {})
    for k in ("fromAddresses", "sentToAddresses"):
        if k in cond:
            cond[k] = _recips(cond[k])
    acts = dict(r.get("actions") or {})
    for k in ("forwardTo", "forwardAsAttachmentTo", "redirectTo"):
        if k in acts:
            acts[k] = _recips(acts[k])
    if "moveToFolder" in acts and acts["moveToFolder"] in FOLDER_IDS:
        acts["moveToFolder"] = FOLDER_IDS[acts["moveToFolder"]]
    return InboxRule(id=r.get("id", f"r-{i}"), display_name=r.get("displayName", f"Rule {i}"),
                     sequence=r.get("sequence", i + 2), is_enabled=r.get("isEnabled", True),
                     hidden=r.get("hidden", False), source="exchange" if r.get("hidden") else "graph",
                     conditions=cond, actions=acts, has_error=r.get("hasError", False))


def _method(m: dict[str, Any]) -> AuthMethod:
    m = dict(m)
    if "created_hours_ago" in m:
        m["created_date_time"] = NOW - timedelta(hours=m.pop("created_hours_ago"))
    m.setdefault("method_type", "phoneAuthenticationMethod")
    return AuthMethod(**m)


def _role(r: dict[str, Any] | str) -> RoleAssignment:
    if isinstance(r, str):
        r = {"role_name": r}
    r = dict(r)
    if r.get("role_name") == "Global Administrator":
        r.setdefault("role_template_id", GA)
    r.setdefault("id", f"ra-{r.get('role_name')}")
    r.setdefault("role_definition_id", r.get("role_template_id") or r.get("role_name") or "x")
    return RoleAssignment(**r)


EXCHANGE_GROUP_ROLES = {
    "Organization Management": ("Role Management", "Mail Recipients", "Transport Rules", "Organization Configuration",
                                "Mail Recipient Creation", "Security Group Creation and Membership"),
    "Discovery Management": ("Mailbox Search", "Legal Hold"),
    "View-Only Organization Management": ("View-Only Configuration", "View-Only Recipients"),
    "Help Desk": ("Reset Password", "User Options", "View-Only Recipients"),
}


def _role_group(g: dict[str, Any] | str) -> ExchangeRoleGroupMembership:
    if isinstance(g, str):
        g = {"group": g}
    g = dict(g)
    g.setdefault("roles", EXCHANGE_GROUP_ROLES.get(g["group"], ()))
    g["roles"] = tuple(g["roles"])
    g.setdefault("role_group_type", "Standard")
    return ExchangeRoleGroupMembership(**g)


def apply_spec(acc: AccountSnapshot, spec: dict[str, Any]) -> AccountSnapshot:
    upd: dict[str, Any] = {}
    if "user" in spec:
        user = dict(spec["user"])
        if "created_days_ago" in user:
            user["created_date_time"] = NOW - timedelta(days=user.pop("created_days_ago"))
        if "other_mails" in user:
            user["other_mails"] = tuple(user["other_mails"])
        upd["user"] = acc.user.model_copy(update=user)
    if "folders" in spec:  # extra mail folders: [{"id", "display_name", "well_known_name"?, "parent_folder_id"?}]
        upd["folders"] = tuple(acc.folders or ()) + tuple(MailFolder(**f) for f in spec["folders"])
    if "forwarding" in spec:
        upd["forwarding"] = MailboxForwarding(**spec["forwarding"])
    if "rules" in spec:
        base = () if spec.get("replace_rules") else tuple(acc.inbox_rules or ())
        upd["inbox_rules"] = base + tuple(_rule(i, r) for i, r in enumerate(spec["rules"]))
    if "methods" in spec:
        base = () if spec.get("replace_methods") else tuple(acc.auth_methods or ())
        upd["auth_methods"] = base + tuple(_method(m) for m in spec["methods"])
    if "remove_methods" in spec:
        upd["auth_methods"] = tuple(m for m in upd.get("auth_methods", acc.auth_methods or ())
                                    if m.id not in spec["remove_methods"])
    if "roles" in spec:
        upd["roles"] = tuple(_role(r) for r in spec["roles"])
    if "exchange_role_groups" in spec:  # [{"group", "roles"?, "via_group"?, ...}] or group names
        upd["exchange_role_groups"] = tuple(_role_group(g) for g in spec["exchange_role_groups"])
    if "grants" in spec:
        upd["oauth_grants"] = tuple(OAuthGrant(**{"id": f"g-{i}", "client_id": f"sp-{i}", **g, "scopes": tuple(
            g.get("scopes", ()))}) for i, g in enumerate(spec["grants"]))
    if "delegates" in spec:
        upd["delegates"] = tuple(Delegate(**d) for d in spec["delegates"])
    if "sending" in spec:
        upd["sending"] = SendingStatus(**spec["sending"])
    if "registration" in spec:
        reg = dict(spec["registration"])
        reg["methods_registered"] = tuple(reg.get("methods_registered", ()))
        upd["registration"] = Registration(**reg)
    if "protocols" in spec:
        upd["protocols"] = acc.protocols.model_copy(update=spec["protocols"])  # type: ignore[union-attr]
    for name in spec.get("not_collected", ()):
        upd[name] = NotCollected(reason="access denied", code="ErrorAccessDenied")
    return acc.model_copy(update=upd)


def account_from_spec(spec: dict[str, Any], upn: str | None = None) -> AccountSnapshot:
    return apply_spec(clean_account(upn or spec.get("upn", "alice@contoso.com")), spec)


def allowlist_from_spec(spec: dict[str, Any]) -> Allowlist:
    a = spec.get("allowlist") or {}
    return Allowlist(**{k: tuple(AllowEntry(value=v["value"] if isinstance(v, dict) else v,
                                            reason=v.get("reason") if isinstance(v, dict) else None)
                                 for v in vals) for k, vals in a.items()})


def context_for(spec: dict[str, Any], account: AccountSnapshot) -> ScanContext:
    """Context for a case: previous scan (``previous`` spec or the clean account when ``has_previous``), other
    accounts of the tenant (``others``: list of specs, for campaign/linking facts), allow-list, protected accounts."""
    previous = None
    if "previous" in spec:
        previous = account_from_spec(spec["previous"], account.upn)
    elif spec.get("has_previous"):
        previous = clean_account(account.upn)
    others = [account_from_spec(o, o.get("upn", f"user{i}@contoso.com")) for i, o in enumerate(spec.get("others", []))]
    allow = allowlist_from_spec(spec)
    facts: TenantFacts = tenant_facts([account, *others], TENANT, NOW)
    if "accounts_scanned" in spec:
        facts = TenantFacts(**{**facts.__dict__, "accounts_scanned": spec["accounts_scanned"]})
    if "new_method_types" in spec:
        facts = TenantFacts(**{**facts.__dict__, "new_method_types": spec["new_method_types"]})
    tenant = TENANT
    if spec.get("tenant_grants"):
        tenant = TENANT.model_copy(update={"all_principals_grants": tuple(
            OAuthGrant(**{"id": f"tg-{i}", "client_id": f"tsp-{i}", **g, "scopes": tuple(g.get("scopes", ()))})
            for i, g in enumerate(spec["tenant_grants"]))})
    if "outbound_policy" in spec:  # OutboundPolicy fields (remote_domains / policies / rules)
        tenant = tenant.model_copy(update={"outbound_policy": OutboundPolicy.model_validate(spec["outbound_policy"])})
    previous_tenant = None
    if "previous_outbound_policy" in spec:  # the previous scan's ("unread": it could not read them)
        pop = spec["previous_outbound_policy"]
        previous_tenant = TENANT.model_copy(update={
            "outbound_policy": None if pop == "unread" else OutboundPolicy.model_validate(pop)})
    return ScanContext(tenant=tenant, now=NOW, allowlist=allow, facts=facts, previous=previous,
                       sent_history=tuple(spec.get("sent_history", ())), first_scan=previous is None,
                       protected_accounts=frozenset(u.lower() for u in spec.get("protected", ())),
                       previous_tenant=previous_tenant)


_CATALOGUE = None


def evaluate_spec(spec: dict[str, Any]) -> AccountResult:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = catalogue()
    acc = account_from_spec(spec)
    return evaluate_account(acc, context_for(spec, acc), _CATALOGUE)
