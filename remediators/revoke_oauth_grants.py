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
        if not before.get("clientId") or not before.get("resourceId") or not before.get("consentType"):
            raise StepError("the journal holds no consent grant to restore")
        body: dict[str, Any] = {k: before.get(k) for k in GRANT_FIELDS}
        if body["consentType"] == "AllPrincipals":
            body["principalId"] = None  # admin consent: for every user, no principal
        old_id = str(entry.get("target") or "")
        existing = await self._same_key(ctx, body)
        if existing is not None:
            return self._already(existing, body)
        try:
            created = await ctx.graph.post_json("/oauth2PermissionGrants", body)
        except ApiError as exc:
            # 409 Request_MultipleObjectsWithSameKeyValue: a grant for this app/API/user appeared meanwhile.
            if exc.status == 409:
                existing = await self._same_key(ctx, body)
                if existing is not None:
                    return self._already(existing, body)
            raise
        new_id = str(created.get("id") or "") if isinstance(created, dict) else ""
        what = f"consent grant for app {body['clientId']} ({(body.get('scope') or '').strip()}) re-created"
        if not new_id:
            return f"{what}; Graph returned no id"
        if new_id != old_id:
            return f"{what} with a NEW id {new_id} (the old id {old_id} no longer exists)"
        # Graph derives grant ids from clientId, resourceId and principalId, so the same key gives the same id.
        return f"{what} with id {new_id} (same id as before: Graph derives it from app, API and user)"

    @staticmethod
    def _already(existing: Mapping[str, Any], body: Mapping[str, Any]) -> str:
        if (existing.get("scope") or "").split() == (body.get("scope") or "").split():
            return f"consent grant for app {body['clientId']} already exists as {existing.get('id')}"
        raise StepError(f"a consent grant for app {body['clientId']} exists again ({existing.get('id')}) with scope "
                        f"{(existing.get('scope') or '').strip()!r}, not the removed {body.get('scope')!r}: "
                        "left unchanged, review it by hand")

    @staticmethod
    async def _same_key(ctx: StepContext, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The live grant with the same (clientId, resourceId, consentType, principalId) key, if any."""
        if body.get("principalId"):
            rows = await ctx.graph.get_all(f"/users/{seg(str(body['principalId']))}/oauth2PermissionGrants")
        else:
            rows = await ctx.graph.get_all("/oauth2PermissionGrants",
                                           params={"$filter": f"clientId eq '{body['clientId']}'"})
        for g in rows:
            if str(g.get("resourceId")) == str(body["resourceId"]) and g.get("consentType") == body["consentType"] \
                    and (g.get("principalId") or None) == (body.get("principalId") or None):
                return g
        return None
