"""Small helpers shared by detector modules (not a detector: modules starting with ``_`` are skipped by the engine)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

from detectors._model import Finding, ScanContext
from scanner.snapshot import (
    DIRECT_ASSIGNMENT,
    AccountSnapshot,
    AuthMethod,
    ExchangeRoleGroupMembership,
    RoleAssignment,
)

# "Recently created" for authentication methods: a nightly scan interval plus slack (detections.md §C1).
RECENT = timedelta(hours=48)
# Templates of the roles detections.md §D1 calls privileged (a collector may also set RoleAssignment.privileged).
PRIVILEGED_ROLE_TEMPLATES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "b0f54661-2d74-4c50-afa3-1ec803f12efe": "Billing Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "69091246-20e8-4a56-aa4d-066075b2a7a8": "Teams Administrator",
    "17315797-102d-40b4-93e0-432062caca18": "Compliance Administrator",
    "e6d1a23a-da11-4be4-9570-befc86d067a7": "Compliance Data Administrator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
}
_PRIV_NAMES = {n.lower() for n in PRIVILEGED_ROLE_TEMPLATES.values() if n != "Security Reader"} | {
    "company administrator", "exchange service administrator", "directory writers", "partner tier2 support",
    "partner tier1 support", "global reader"}


# Roles that can grant tenant-wide (AllPrincipals) consent to delegated permissions: Privileged Role Administrator for
# any permission, Cloud Application / Application Administrator for any delegated permission
# (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent), and Global Administrator.
CONSENT_ROLE_TEMPLATES = frozenset({
    "62e90394-69f5-4237-9190-012177145e10", "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "158c047a-c907-4556-b7ef-446551a6b5f7",
})
_CONSENT_NAMES = frozenset({"global administrator", "company administrator", "privileged role administrator",
                            "application administrator", "cloud application administrator"})
# Pseudo-account prefix of tenant-level findings about an app (a service principal): ``serviceprincipal:<name> (<appId>)``.
# Used by every tenant-level detector whose subject is an app, so one app's findings group under one subject.
SP_PREFIX = "serviceprincipal:"


def sp_label(display_name: str | None, app_id: str | None, object_id: str) -> str:
    """``serviceprincipal:<displayName> (<appId>)`` — never a UPN (no verdict row, never auto-remediated)."""
    return f"{SP_PREFIX}{display_name or object_id} ({app_id or object_id})"

# Exchange Online role groups that grant admin rights over mail, recipients or RBAC (detections.md §D1 "Exchange RBAC");
# a custom role group counts when it holds one of PRIVILEGED_EXCHANGE_ROLES. Read-only groups (View-Only Organization
# Management) and Help Desk (User Options, View-Only Recipients) do not.
PRIVILEGED_EXCHANGE_ROLE_GROUPS = frozenset({
    "organization management", "recipient management", "discovery management", "compliance management",
    "security administrator", "hygiene management", "records management", "server management",
})
PRIVILEGED_EXCHANGE_ROLES = frozenset({
    "role management", "mail recipients", "mail recipient creation", "transport rules", "mailbox import export",
    "mailbox search", "applicationimpersonation", "organization configuration", "remote and accepted domains",
    "journaling", "security admin", "transport hygiene", "legal hold", "organization transport settings",
    "security group creation and membership", "data loss prevention", "retention management",
})


def exchange_group_is_privileged(m: ExchangeRoleGroupMembership) -> bool:
    return m.group.strip().lower() in PRIVILEGED_EXCHANGE_ROLE_GROUPS or \
        any(r.strip().lower() in PRIVILEGED_EXCHANGE_ROLES for r in m.roles)


def privileged_exchange_groups(account: AccountSnapshot) -> list[ExchangeRoleGroupMembership]:
    """The account's memberships of privileged Exchange role groups ([] when the collection was not read)."""
    return [m for m in account.get("exchange_role_groups") or () if exchange_group_is_privileged(m)]


def exchange_group_label(m: ExchangeRoleGroupMembership) -> str:
    if m.role_group_type == DIRECT_ASSIGNMENT:
        return f"Exchange management role {', '.join(m.roles) or m.group} (assigned directly)"
    return f"Exchange role group {m.group}"


def privileged_labels(account: AccountSnapshot) -> list[str]:
    """Labels of everything that makes the account privileged: directory roles, then Exchange role groups."""
    return [role_label(r) for r in privileged_roles(account)] + \
        [exchange_group_label(m) for m in privileged_exchange_groups(account)]


def consent_roles(account: AccountSnapshot) -> list[str]:
    """Active roles of the account that can grant tenant-wide consent (labels)."""
    out = []
    for r in account.get("roles") or ():
        if r.kind != "active":
            continue
        if (r.role_template_id or "").lower() in CONSENT_ROLE_TEMPLATES or \
                (r.role_name or "").strip().lower() in _CONSENT_NAMES:
            out.append(role_label(r))
    return out


def role_is_privileged(r: RoleAssignment) -> bool:
    if r.kind != "active":
        return False
    if r.privileged:
        return True
    if r.role_template_id and r.role_template_id in PRIVILEGED_ROLE_TEMPLATES and \
            r.role_template_id != "5d6b6bb7-de71-4623-b4af-96380a352509":
        return True
    return (r.role_name or "").strip().lower() in _PRIV_NAMES


def role_label(r: RoleAssignment) -> str:
    return r.role_name or PRIVILEGED_ROLE_TEMPLATES.get(r.role_template_id or "", r.role_definition_id)


def role_key(r: RoleAssignment) -> str:
    return (r.role_template_id or r.role_definition_id or r.role_name or r.id).lower()


def privileged_roles(account: AccountSnapshot) -> list[RoleAssignment]:
    roles = account.get("roles") or ()
    return [r for r in roles if role_is_privileged(r)]


def is_privileged(account: AccountSnapshot, ctx: ScanContext) -> bool:
    if privileged_roles(account) or privileged_exchange_groups(account):
        return True
    return account.upn.lower() in ctx.facts.privileged_upns


def is_protected(account: AccountSnapshot, ctx: ScanContext) -> bool:
    return account.upn.lower() in ctx.protected_accounts


def suppressed(f: Finding, reason: str) -> Finding:
    return dataclasses.replace(f, suppressed=reason, score=f.score)


def norm_phone(p: str | None) -> str:
    if not p:
        return ""
    digits = re.sub(r"[^\d]", "", p)
    # "+1 5551234567" and "+15551234567" are the same number; strip a leading "00" international prefix.
    if digits.startswith("00"):
        digits = digits[2:]
    return digits


def rollout_threshold(accounts_scanned: int) -> int:
    """Accounts registering the same phishing-resistant method type in one window that make a roll-out, not an attack
    (detections.md §C1 FP: "passkey/FIDO2 roll-outs (many users on the same day)"). A tenth of the tenant, at least 5 —
    capped at 25 so a large tenant rolling out in nightly waves (a few hundred of 10,000) still reads as a roll-out."""
    return max(5, min(max(accounts_scanned, 1) // 10, 25))


IGNORED_METHOD_TYPES = frozenset({"passwordAuthenticationMethod"})


def real_methods(methods: tuple[AuthMethod, ...]) -> list[AuthMethod]:
    return [m for m in methods if m.method_type not in IGNORED_METHOD_TYPES]


def method_label(m: AuthMethod) -> str:
    kind = m.method_type.replace("AuthenticationMethod", "")
    detail = m.phone_number or m.email_address or m.display_name or ""
    return f"{kind} {detail}".strip()


def new_methods(account: AccountSnapshot, ctx: ScanContext) -> list[tuple[AuthMethod, str]]:
    """Methods created within RECENT of ``now`` or whose id was not there in the previous scan (with why)."""
    methods = real_methods(account.require("auth_methods"))
    prev_ids: set[str] | None = None
    if ctx.previous is not None:
        prev = ctx.previous.get("auth_methods")
        if prev is not None:
            prev_ids = {m.id for m in prev}
    out = []
    for m in methods:
        created = aware(m.created_date_time)
        if created is not None and timedelta(hours=-1) <= aware(ctx.now) - created <= RECENT:
            out.append((m, f"created {m.created_date_time.isoformat()}"))
        elif prev_ids is not None and m.id not in prev_ids:
            out.append((m, "first seen since the last scan"))
    return out


def aware(dt: datetime | None) -> datetime | None:
    """Snapshots from older collectors may carry naive datetimes: treat them as UTC rather than crash a comparison."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
