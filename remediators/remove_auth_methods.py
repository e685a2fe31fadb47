"""remove_auth_methods: delete the authentication methods the findings name (attacker-registered MFA).

``GET /users/{id}/authentication/methods`` then ``DELETE /users/{id}/authentication/{type}Methods/{id}``: the generic
``methods/{id}`` item has no DELETE, the typed path comes from ``@odata.type`` (graph-api.md §4.1). The password method
is never touched. Graph refuses to delete the default method while others exist (400); that target fails with
Graph's message and the others still go. Irreversible: a deleted method cannot be re-created for the user (they
re-register). Only methods the findings name are removed; without ids nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, Target
from remediators._util import active_findings, evidence_ids, seg

TYPED_PATHS = {
    "phoneAuthenticationMethod": "phoneMethods",
    "microsoftAuthenticatorAuthenticationMethod": "microsoftAuthenticatorMethods",
    "fido2AuthenticationMethod": "fido2Methods",
    "softwareOathAuthenticationMethod": "softwareOathMethods",
    "emailAuthenticationMethod": "emailMethods",
    "temporaryAccessPassAuthenticationMethod": "temporaryAccessPassMethods",
    "windowsHelloForBusinessAuthenticationMethod": "windowsHelloForBusinessMethods",
    "platformCredentialAuthenticationMethod": "platformCredentialMethods",
    "externalAuthenticationMethod": "externalAuthenticationMethods",
}
METHOD_KEYS = {"methodid", "methodids", "authmethodid", "authenticationmethodid"}
METHOD_CONTAINERS = {"method", "methods", "authmethod", "authmethods", "authenticationmethod"}


def _type_name(m: Mapping[str, Any]) -> str:
    return str(m.get("@odata.type") or "").rsplit(".", 1)[-1]


class RemoveAuthMethods(BaseStep):
    name: ClassVar[str] = "remove_auth_methods"
    permissions: ClassVar[tuple[str, ...]] = ("UserAuthenticationMethod.ReadWrite.All",)
    reversible: ClassVar[bool] = False
    irreversible_reason: ClassVar[str] = "a deleted method cannot be restored; the user must register it again"
    summary: ClassVar[str] = "removes the authentication methods that findings name"

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        findings = active_findings(ctx.findings, self.name)
        if not findings:
            return [], [], None
        wanted = evidence_ids(findings, direct=METHOD_KEYS, containers=METHOD_CONTAINERS)
        if not wanted:
            return [], ["the findings name no authentication method ids: review the methods by hand"], None
        live = await ctx.graph.get_all(f"/users/{seg(account.id)}/authentication/methods")
        by_id = {str(m.get("id")): m for m in live}
        targets, notes = [], []
        for mid in wanted:
            m = by_id.get(mid)
            if m is None:
                continue  # already gone
            tname = _type_name(m)
            path = TYPED_PATHS.get(tname)
            if path is None:
                notes.append(f"method {mid} ({tname or 'unknown type'}) cannot be deleted through Graph")
                continue
            desc = m.get("displayName") or m.get("phoneNumber") or m.get("emailAddress") or mid
            targets.append(Target(key=mid, label=f"{tname.replace('AuthenticationMethod', '')} method {desc}",
                                  before={"@odata.type": m.get("@odata.type"), "id": mid, "display": desc,
                                          "createdDateTime": m.get("createdDateTime")},
                                  after={"registered": False}, data={"path": path}))
        return targets, notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        await ctx.graph.delete(f"/users/{seg(plan.account.id)}/authentication/{target.data['path']}/"
                               f"{seg(target.key)}")
        return {"registered": False}
