"""remove_auth_methods: delete the authentication methods the findings name (attacker-registered MFA).

``GET /users/{id}/authentication/methods`` then ``DELETE /users/{id}/authentication/{type}Methods/{id}``: the generic
``methods/{id}`` item has no DELETE, the typed path comes from ``@odata.type`` (graph-api.md §4.1). The password method
is never touched. Irreversible: a deleted method cannot be re-created for the user (they re-register). Only methods
the findings name are removed; without ids nothing is guessed.

The user's default MFA method: Graph refuses to delete it while the user has other methods (400 "Cannot delete
default method with other methods configured. Please change default method before deletion."; the phone method's
delete doc: "Have the user change their default authentication method, and then delete the number"). When the
attacker's method is the default and the user's other methods are the attacker's too, deleting those first lets the
default go: a refused default is tried again after the other targets. Changing a user's default method
(``userPreferredMethodForSecondaryAuthentication`` on ``/users/{id}/authentication/signInPreferences``) exists only in
the Graph **beta** API (not in v1.0 nor in the v1.0 SDK), and m365sweep uses v1.0 only: otherwise the target fails
with a manual action naming the legitimate method to make the default (the strongest the user has that no finding
names), never another method the findings name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, StepResult, Target, TargetOutcome
from remediators._util import active_findings, evidence_ids, seg
from scanner.graph.client import ApiError

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


# Methods that can be a user's default second factor (userDefaultAuthenticationMethodType: push, oath, voiceMobile,
# voiceAlternateMobile, voiceOffice, sms), strongest first.
DEFAULT_CANDIDATES = (
    ("microsoftAuthenticatorAuthenticationMethod", None, "Microsoft Authenticator (push)"),
    ("softwareOathAuthenticationMethod", None, "authenticator app code (oath)"),
    ("phoneAuthenticationMethod", "mobile", "mobile phone (SMS or call)"),
    ("phoneAuthenticationMethod", "alternateMobile", "alternate mobile phone (call)"),
    ("phoneAuthenticationMethod", "office", "office phone (call)"),
)
DEFAULT_REFUSED = "is the user's default MFA method"
PHONE_TYPE = "phoneAuthenticationMethod"


def _type_name(m: Mapping[str, Any]) -> str:
    return str(m.get("@odata.type") or "").rsplit(".", 1)[-1]


def is_default_refusal(exc: ApiError) -> bool:
    """Graph's 400 for deleting the default method while other methods exist."""
    return exc.status == 400 and "default method" in (exc.message or "").lower()


def replacement_default(live: Sequence[Mapping[str, Any]], named: set[str]) -> str | None:
    """The strongest method that could become the default and that no finding names (None: there is none)."""
    for tname, phone_type, label in DEFAULT_CANDIDATES:
        for m in live:
            if str(m.get("id")) in named or _type_name(m) != tname:
                continue
            if phone_type is not None and m.get("phoneType") != phone_type:
                continue
            desc = m.get("displayName") or m.get("phoneNumber")
            return f"{label}{f' {desc!r}' if desc else ''}"
    return None


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
        # "A user can't have an alternateMobile number without a mobile number": Graph refuses to delete the mobile
        # phone while an alternate exists, so an alternate mobile the findings name goes first.
        phone = {mid: by_id[mid].get("phoneType") for mid in by_id if _type_name(by_id[mid]) == PHONE_TYPE}
        targets.sort(key=lambda t: phone.get(t.key) == "mobile")
        return targets, notes, None

    async def apply(self, ctx: StepContext, plan: Plan) -> StepResult:
        res = await super().apply(ctx, plan)
        refused = [o for o in res.outcomes if o.status == "failed" and DEFAULT_REFUSED in o.detail]
        if not refused or not any(o.status == "applied" for o in res.outcomes):
            return res
        # The default could not go while other methods existed; the other attacker methods are gone now, so the
        # default may be the last one left: one more attempt (journaled as its own action).
        keys = {o.key for o in refused}
        retried = {o.key: o for o in await self._apply_targets(ctx, plan, [t for t in plan.targets if t.key in keys])}
        outcomes: list[TargetOutcome] = [o for o in res.outcomes if o.key not in keys] + list(retried.values())
        status = "applied" if all(o.status == "applied" for o in outcomes) else "failed"
        return StepResult(self.name, res.upn, status, tuple(outcomes))

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        uid = seg(plan.account.id)
        try:
            path = target.data["path"]
            # An external MFA method is a reference to the provider: documented as DELETE .../{id}/$ref.
            ref = "/$ref" if path == "externalAuthenticationMethods" else ""
            await ctx.graph.delete(f"/users/{uid}/authentication/{path}/{seg(target.key)}{ref}")
        except ApiError as exc:
            if is_default_refusal(exc):
                raise StepError(await self._manual_default(ctx, plan, target)) from None
            if exc.status == 400 and await self._alternate_left(ctx, plan, target):
                raise StepError(f"{target.label}: Graph refuses to delete the mobile phone while the user has an "
                                "alternate mobile phone, which the findings do not name: change the mobile number to "
                                "the user's own number (or delete the alternate) in the Entra admin center, then run "
                                "remediate again") from None
            raise
        return {"registered": False}

    async def _alternate_left(self, ctx: StepContext, plan: Plan, target: Target) -> bool:
        """The refused target is the mobile phone and an alternate mobile phone is still registered."""
        if str(target.before.get("@odata.type") or "").rsplit(".", 1)[-1] != PHONE_TYPE:
            return False
        try:
            live = await ctx.graph.get_all(f"/users/{seg(plan.account.id)}/authentication/methods")
        except ApiError:
            return False
        mine = next((m for m in live if str(m.get("id")) == target.key), None)
        return bool(mine and mine.get("phoneType") == "mobile"
                    and any(_type_name(m) == PHONE_TYPE and m.get("phoneType") == "alternateMobile" for m in live))

    async def _manual_default(self, ctx: StepContext, plan: Plan, target: Target) -> str:
        """The operator's manual action when Graph refuses to delete the default method."""
        named = set(evidence_ids(active_findings(ctx.findings, self.name), direct=METHOD_KEYS,
                                 containers=METHOD_CONTAINERS)) | {t.key for t in plan.targets}
        try:
            live = await ctx.graph.get_all(f"/users/{seg(plan.account.id)}/authentication/methods")
        except ApiError:
            live = []
        better = replacement_default(live, named)
        head = (f"{target.label} {DEFAULT_REFUSED}, which Graph refuses to delete while other methods exist, and "
                "Graph v1.0 cannot change a user's default method (only the beta signInPreferences API can)")
        where = (f"in the Entra admin center (Users > {plan.account.upn} > Authentication methods) or have the user do "
                 "it at https://mysignins.microsoft.com/security-info, then run remediate again")
        if better:
            return f"{head}: set the default sign-in method to the {better} {where}"
        return (f"{head}, and the user has no other MFA method that the findings do not name: have the user register "
                f"a legitimate method and make it the default {where}")
