"""reset_password: a new strong random password, change forced at next sign-in (Microsoft's step 1).

``PATCH /users/{id}`` with ``passwordProfile`` (needs ``User-PasswordProfile.ReadWrite.All``; ``User.ReadWrite.All``
alone is refused, graph-api.md §7). The password comes from :mod:`secrets`, is handed to the run's
:class:`~remediators.passwords.PasswordSink` (shown once on a terminal or appended to a 0600 file) BEFORE the reset,
so a reset password is never undeliverable, and it never reaches the journal, logs, reports or the database: the
journal says only "password reset, delivered to <where>".

Accounts synced from on-premises (``onPremisesSyncEnabled``) are not reset: Graph refuses on-prem-mastered updates
and writeback is unreliable; the operator must change the password on-premises. Irreversible (the old password is
unknown to us, as it should be).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import seg
from remediators.passwords import PasswordDeliveryError, generate_password

SYNCED_NOTE = "account synced from on-premises: change the password on-premises (Active Directory), not in the cloud"


class ResetPassword(BaseStep):
    name: ClassVar[str] = "reset_password"
    permissions: ClassVar[tuple[str, ...]] = ("User-PasswordProfile.ReadWrite.All",)
    reversible: ClassVar[bool] = False
    irreversible_reason: ClassVar[str] = "the previous password is not known (and must not be restored)"
    summary: ClassVar[str] = "new strong random password, change forced at next sign-in"

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        notes = ["app passwords survive a password reset: the user must delete and re-create them "
                 "(see the manual checklist)"]
        if account.synced:
            return [], [SYNCED_NOTE], SYNCED_NOTE
        done = ctx.done_since_reference.get(self.name)
        if done:
            return [], [f"password already reset at {done} (after the scan that flagged the account)"], None
        if ctx.password_sink is None:
            reason = ("no way to deliver a new password: pass --password-file PATH (or run on an interactive "
                      "terminal; in auto mode set [remediation] password_file)")
            return [], [reason], reason
        return [Target(key="password", label="account password",
                       before={"lastPasswordChangeDateTime": account.last_password_change},
                       after={"password": "new random", "forceChangePasswordNextSignIn": True})], notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        sink = ctx.password_sink
        if sink is None:
            raise StepError("no password delivery configured")
        password = generate_password()
        try:
            sink.deliver(plan.account.upn, password)
        except PasswordDeliveryError as exc:
            raise StepError(str(exc)) from None
        body = {"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True}}
        del password  # the request body is the last holder
        try:
            await ctx.graph.request("PATCH", f"/users/{seg(plan.account.id)}", body=body)
        except BaseException:
            sink.abort(plan.account.upn)
            raise
        finally:
            body.clear()
        sink.commit(plan.account.upn)
        return {"detail": f"password reset, delivered to {sink.description}", "forceChangePasswordNextSignIn": True}

    async def _still_pending(self, ctx: StepContext, plan: Plan, keys: set[str]) -> set[str]:
        from remediators._model import read_account

        fresh = await read_account(ctx.graph, plan.account.id)
        changed = fresh.last_password_change != plan.account.last_password_change
        return set() if changed or fresh.last_password_change is None else keys
