"""disable_rules: disable — never delete — the inbox rules the account's findings name (Microsoft's step 3).

Disabling keeps the evidence (conditions, actions, target folders) for the investigation and is reversible.

* Rules Graph can write: ``PATCH …/messageRules/{id}`` with ONLY ``{"isEnabled": false}`` — a PATCH replaces complex
  properties whole, so sending ``actions`` or ``conditions`` back would rewrite the rule (graph-api.md §2.3).
* Hidden rules (only ``Get-InboxRule -IncludeHidden`` shows them) and read-only rules (Graph cannot model them and
  refuses PATCH): Exchange ``Disable-InboxRule -Mailbox <upn> -Identity <RuleIdentity> -Force``. Graph and Exchange
  ids have no documented mapping, so a read-only Graph rule is paired with its Exchange twin by name. ``-Force``:
  saving rules through Exchange deletes Outlook's client-side rules blob, which the cmdlet confirms first; over the
  REST endpoint nobody can answer, and without ``-Force`` (Microsoft: "to run tasks programmatically where prompting
  for administrative input is inappropriate") the rule is not saved. ``-AlwaysDeleteOutlookRulesBlob`` would also
  do, but it sets the user's own Outlook on the web option for good.

Which rules: the ids in the findings' evidence (Graph ids, or ``exo:<RuleIdentity>`` for Exchange-only rules; the
scanner's snapshot vocabulary). Benign rules are never touched. Only when a finding names this step but carries no
rule id are targets re-derived from the live rules with the scanner's predicates for a malicious rule (external
forward or redirect, delete, hide-and-mark-read), and the plan says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from remediators._model import Account, BaseStep, Plan, StepContext, StepError, Target
from remediators._util import active_findings, as_bool, as_list, evidence_ids, seg
from scanner.graph.client import ApiError

GRAPH_ID_KEYS = {"ruleid", "ruleids", "messageruleid"}
EXCHANGE_ID_KEYS = {"exchangeidentity", "ruleidentity"}
RULE_CONTAINERS = {"rule", "rules", "inboxrule", "inboxrules", "messagerule"}


def _rule_path(account: Account, rule_id: str) -> str:
    return f"/users/{seg(account.id)}/mailFolders/inbox/messageRules/{seg(rule_id)}"


def _addresses(actions: Mapping[str, Any]) -> list[str]:
    out = []
    for key in ("forwardTo", "forwardAsAttachmentTo", "redirectTo"):
        for rec in as_list(actions.get(key)):
            addr = ((rec or {}).get("emailAddress") or {}).get("address") if isinstance(rec, Mapping) else rec
            if addr:
                out.append(str(addr).lower())
    return out


def looks_malicious(actions: Mapping[str, Any], own_domain: str) -> bool:
    """The fallback predicate (used only when findings carry no rule ids)."""
    for addr in _addresses(actions):
        dom = addr.rsplit("@", 1)[-1]
        if dom != own_domain and not dom.endswith("." + own_domain):
            return True
    if actions.get("delete") or actions.get("permanentDelete"):
        return True
    return bool(actions.get("markAsRead") and actions.get("moveToFolder"))


class DisableRules(BaseStep):
    name: ClassVar[str] = "disable_rules"
    permissions: ClassVar[tuple[str, ...]] = ("MailboxSettings.ReadWrite", "Exchange.ManageAsApp")
    reversible: ClassVar[bool] = True
    summary: ClassVar[str] = "disables (does not delete) the inbox rules that findings name, hidden ones included"
    uses_exchange: ClassVar[bool] = True

    async def _read(self, ctx: StepContext, account: Account) -> tuple[list[dict[str, Any]] | None,
                                                                      list[dict[str, Any]] | None, list[str]]:
        notes: list[str] = []
        graph_rules: list[dict[str, Any]] | None
        try:
            graph_rules = await ctx.graph.get_all(f"/users/{seg(account.id)}/mailFolders/inbox/messageRules",
                                                  scope=f"mailbox:{account.id}")
        except ApiError as exc:
            if exc.is_no_mailbox:
                return None, None, []
            raise
        ex_rules: list[dict[str, Any]] | None
        try:
            ex_rules = await ctx.exchange.invoke("Get-InboxRule", {"Mailbox": account.upn, "IncludeHidden": True})
        except ApiError as exc:
            ex_rules = None
            notes.append(f"hidden rules could not be read through Exchange ({exc.short()}); only rules Graph "
                         "shows are covered")
        return graph_rules, ex_rules, notes

    async def _plan_targets(self, ctx: StepContext, account: Account) -> tuple[list[Target], list[str], str | None]:
        findings = active_findings(ctx.findings, self.name)
        if not findings:
            return [], [], None
        graph_rules, ex_rules, notes = await self._read(ctx, account)
        if graph_rules is None:
            return [], notes, "the account has no Exchange Online mailbox"
        by_gid = {str(r.get("id")): r for r in graph_rules}
        ex_by_ident: dict[str, dict[str, Any]] = {}
        for r in ex_rules or []:
            for k in (r.get("RuleIdentity"), r.get("Identity")):
                if k is not None:
                    ex_by_ident[str(k)] = r
        wanted: list[str] = []
        for f in findings:
            # A rule Graph shows carries its Graph id (and maybe its Exchange twin's identity): one rule, one id.
            ids = evidence_ids([f], direct=GRAPH_ID_KEYS, containers=RULE_CONTAINERS) or \
                evidence_ids([f], direct=EXCHANGE_ID_KEYS, containers=set())
            wanted.extend(i for i in ids if i not in wanted)
        derived = False
        if not wanted:
            derived = True
            dom = account.upn.rsplit("@", 1)[-1].lower()
            wanted = [str(r["id"]) for r in graph_rules if looks_malicious(r.get("actions") or {}, dom)]
            notes.append("the findings name no rule ids: rules re-derived from the live state (external forward, "
                         "delete, hide-and-mark-read)")
        targets: list[Target] = []
        seen: set[str] = set()
        for rid in wanted:
            key = rid
            g = by_gid.get(rid)
            if g is not None:
                name = str(g.get("displayName") or "")
                if g.get("isEnabled") is False:
                    continue
                if not g.get("isReadOnly"):
                    data = {"via": "graph", "rule_id": rid}
                else:
                    twin = next((r for r in ex_rules or [] if str(r.get("Name") or "").strip().lower()
                                 == name.strip().lower()), None)
                    if twin is None:
                        notes.append(f"read-only rule {name!r} has no Exchange twin to disable it through")
                        continue
                    data = {"via": "exchange", "identity": str(twin.get("RuleIdentity") or twin.get("Identity"))}
            else:
                ident = rid[4:] if rid.startswith("exo:") else rid
                ex = ex_by_ident.get(ident)
                if ex is None:
                    if rid.startswith("exo:") or derived or ex_rules is not None:
                        notes.append(f"rule {rid} no longer exists")
                    continue
                name = str(ex.get("Name") or "")
                if as_bool(ex.get("Enabled")) is False:
                    continue
                data = {"via": "exchange", "identity": str(ex.get("RuleIdentity") or ex.get("Identity"))}
            if data.get("identity", data.get("rule_id")) in seen:
                continue
            seen.add(str(data.get("identity", data.get("rule_id"))))
            via = "Exchange (hidden or read-only)" if data["via"] == "exchange" else "Graph"
            targets.append(Target(key=key, label=f"inbox rule {name!r} via {via}",
                                  before={"isEnabled": True, "displayName": name},
                                  after={"isEnabled": False}, data=data))
        return targets, notes, None

    async def _apply_target(self, ctx: StepContext, plan: Plan, target: Target) -> Mapping[str, Any]:
        acc = plan.account
        if target.data["via"] == "graph":
            # Only isEnabled: PATCH replaces complex properties (actions/conditions) as a whole.
            await ctx.graph.patch_json(_rule_path(acc, target.data["rule_id"]), {"isEnabled": False},
                                       scope=f"mailbox:{acc.id}")
        else:
            await ctx.exchange.invoke("Disable-InboxRule", {"Mailbox": acc.upn, "Identity": target.data["identity"],
                                                            "Confirm": False, "Force": True})
        return {"isEnabled": False, "via": target.data["via"]}

    async def _undo(self, ctx: StepContext, entry: Mapping[str, Any]) -> str:
        data = entry.get("data") or {}
        upn, uid = entry["upn"], entry.get("user_id") or entry["upn"]
        if data.get("via") == "graph":
            await ctx.graph.patch_json(f"/users/{seg(uid)}/mailFolders/inbox/messageRules/{seg(data['rule_id'])}",
                                       {"isEnabled": True}, scope=f"mailbox:{uid}")
        elif data.get("via") == "exchange":
            await ctx.exchange.invoke("Enable-InboxRule", {"Mailbox": upn, "Identity": data["identity"],
                                                           "Confirm": False, "Force": True})
        else:
            raise StepError("the journal does not say how the rule was disabled")
        name = (entry.get("before") or {}).get("displayName", "")
        return f"inbox rule {name!r} re-enabled"
