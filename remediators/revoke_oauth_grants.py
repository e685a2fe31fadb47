"""revoke_oauth_grants: delete the delegated OAuth consent grants the findings name (illicit consent).

``DELETE /oauth2PermissionGrants/{id}`` (``DelegatedPermissionGrant.ReadWrite.All``). A password reset does not end
this access; deleting the grant stops new tokens, and revoke_sessions kills the issued refresh tokens. Undo
re-creates the grant with the same clientId / consentType / principalId / resourceId / scope
(``POST /oauth2PermissionGrants``); Graph gives it a new id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import active_findings, evidence_ids, seg
from scanner.graph.client import ApiError

GRANT_KEYS = {"grantid", "grantids", "oauth2permissiongrantid", "permissiongrantid"}
GRANT_CONTAINERS = {"grant", "grants", "oauthgrant", "oauthgrants", "oauth2permissiongrant"}
GRANT_FIELDS = ("clientId", "consentType", "principalId", "resourceId", "scope")


class RevokeOAuthGrants(BaseStep):
    name: ClassVar[str] = "revoke_oauth_grants"
    permissions: ClassVar[tuple[str, ...]] = ("DelegatedPermissionGrant.ReadWrite.All",)
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "removes the OAuth consent grants that findings name"

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        findings = active_findings(ctx.findings, self.name)
        if not findings:
            return [], [], None
        wanted = evidence_ids(findings, direct=GRANT_KEYS, containers=GRANT_CONTAINERS)
        if not wanted:
            return [], ["the findings name no consent grant ids: review the account's app consents by hand"], None
        live = {str(g.get("id")): g for g in
                await ctx.graph.get_all(f"/users/{seg(account.id)}/oauth2PermissionGrants")}
        targets, notes = [], []
        for gid in wanted:
            g = live.get(gid)
            if g is None:  # an admin (AllPrincipals) grant is not listed under the user
                try:
                    g = await ctx.graph.get_json(f"/oauth2PermissionGrants/{seg(gid)}")
                except ApiError as exc:
                    if not exc.is_not_found:
                        notes.append(f"grant {gid} could not be read: {exc.short()}")
                    continue
            if not isinstance(g, dict):
                continue
            before = {k: g.get(k) for k in GRANT_FIELDS}
            who = "every user (admin consent)" if g.get("consentType") == "AllPrincipals" else "this user"
            targets.append(Target(key=gid, label=f"consent for app {g.get('clientId')} on behalf of {who}: "
                                                 f"{(g.get('scope') or '').strip()}",
                                  before=before, after={"granted": False}))
        return targets, notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.graph.delete(f"/oauth2PermissionGrants/{seg(target.key)}")
        return {"granted": False}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        before = dict(entry.get("before") or {})
        if not before.get("clientId") or not before.get("resourceId"):
            raise StepError("the journal holds no consent grant to restore")
        body = {k: before.get(k) for k in GRANT_FIELDS}
        if body.get("consentType") == "AllPrincipals":
            body.pop("principalId", None)
        created = await ctx.graph.post_json("/oauth2PermissionGrants", body)
        new_id = created.get("id") if isinstance(created, dict) else None
        return f"consent grant re-created{f' as {new_id}' if new_id else ''}"
