"""The outbound auto-forwarding allow-list as the forwarding false-positive suppressor (detections.md §0.2, §A1):
the collector's reading of Get-RemoteDomain / Get-HostedOutboundSpamFilterPolicy / -Rule (odd shapes, refusals as
coverage gaps), the pure policy matching in detectors/_outbound.py, the detectors' evidence and suppression, the
report's words, and a whole scan of the simulator (the benign AP mailbox suppressed, compromised forwards not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from detectors._domains import classify
from detectors._model import ScanContext
from detectors._outbound import (
    Sender,
    assess,
    delivery,
    effective_policy,
    policy_exception,
    remote_domain_for,
    rule_applies,
)
from detectors.engine import run_detectors
from reports.evidence import evidence_sentence
from scanner.collectors.outbound_policy import (
    outbound_policy_gap,
    policy_row,
    read_outbound_policy,
    remote_domain_row,
    rule_row,
)
from scanner.graph.client import ApiError
from scanner.graph.factory import connect
from scanner.simulator import create_app, generate_tenant
from scanner.simulator import outbound as sim_outbound
from scanner.snapshot import OutboundPolicy, OutboundSpamPolicy, OutboundSpamRule, RemoteDomain, TenantInfo
from scanner.sweep import run_scan
from tests.detectors.builders import NOW, TENANT, account_from_spec, context_for
from tests.detectors.detector_cases import BOOKKEEPER, OUTBOUND_AP, OUTBOUND_OFF

MBX, RULE, SHARED = "mail.mailbox_external_forward", "mail.inbox_rule_external_forward", "mail.forward_destination_shared"
ALICE = Sender(frozenset({"alice@contoso.com"}), "contoso.com", frozenset({"alice", "alice example"}))


def _op(rules: list[dict[str, Any]], policies: list[dict[str, Any]] | None = None,
        remote_domains: list[dict[str, Any]] | None = None) -> OutboundPolicy:
    pols = policies if policies is not None else [
        {"name": "Default", "auto_forwarding_mode": "Automatic", "is_default": True},
        {"name": "A", "auto_forwarding_mode": "On"}, {"name": "B", "auto_forwarding_mode": "Off"}]
    return OutboundPolicy.model_validate({"policies": pols, "rules": rules,
                                          "remote_domains": remote_domains or [{"name": "Default", "domain_name": "*",
                                                                                "auto_forward_enabled": True}]})


# ---- the collector's parsing --------------------------------------------------------------------------------------------
def test_rows_read_exchange_shapes_liberally() -> None:
    assert remote_domain_row({"Identity": "Default", "Name": "Default", "DomainName": "*",
                              "AutoForwardEnabled": "False", "WhenChanged": "/Date(1767225600000)/"}) == {
        "name": "Default", "domain_name": "*", "auto_forward_enabled": False,
        "when_changed": "2026-01-01T00:00:00+00:00"}
    # A trimmed answer without DomainName: only the built-in entry can be recognised; anything else is unusable.
    assert remote_domain_row({"Name": "Default"})["domain_name"] == "*"  # type: ignore[index]
    assert remote_domain_row({"Name": "Partner"}) is None
    assert remote_domain_row({"DomainName": "Books.Example."}) == {
        "name": "Books.Example.", "domain_name": "books.example", "auto_forward_enabled": None, "when_changed": None}

    pol = policy_row({"Identity": "AP", "AutoForwardingMode": 1, "IsDefault": "false", "Enabled": "True"})
    assert pol is not None and pol["auto_forwarding_mode"] == "On" and pol["is_default"] is False
    assert policy_row({"Name": "Default", "AutoForwardingMode": "off"})["is_default"] is True  # type: ignore[index]
    assert policy_row({"Name": "Default", "AutoForwardingMode": "2"})["auto_forwarding_mode"] == "Off"  # type: ignore[index]
    assert policy_row({"Name": None, "Identity": ""}) is None

    row = rule_row({"Name": "AP", "HostedOutboundSpamFilterPolicy": "AP bookkeeping", "State": None, "Enabled": "False",
                    "Priority": "2", "From": '"AP Invoices" [SMTP:AP-Invoices@contoso.com]',  # a single value
                    "FromMemberOf": None, "SenderDomainIs": "contoso.com, Fabrikam.com",  # one comma-separated string
                    "ExceptIfFrom": [{"Name": "Boss", "PrimarySmtpAddress": "boss@contoso.com"}, ""],
                    "ExceptIfSenderDomainIs": []})
    assert row is not None
    rule = OutboundSpamRule(**row)
    assert rule.policy == "AP bookkeeping" and rule.priority == 2 and not rule.enabled
    assert rule.from_values == ("AP-Invoices@contoso.com",) and rule.from_member_of == ()
    assert rule.sender_domain_is == ("contoso.com", "fabrikam.com")
    assert rule.except_if_from == ("boss@contoso.com",) and rule.except_if_sender_domain_is == ()
    assert rule_row({"Name": "orphan", "HostedOutboundSpamFilterPolicy": None}) is None  # assigns nothing


@pytest.mark.parametrize("err", [
    ApiError("access denied or cmdlet not available", status=403, service="exchange"),
    ApiError("The term 'Get-HostedOutboundSpamFilterRule' is not recognized as a name of a cmdlet, function, script "
             "file, or executable program.", status=400, service="exchange"),
])
def test_refusal_is_a_gap_naming_the_role(err: ApiError) -> None:
    gap = outbound_policy_gap("Get-HostedOutboundSpamFilterRule", err)
    assert "View-Only Configuration" in gap.reason and "Get-HostedOutboundSpamFilterRule" in gap.reason
    assert gap.permission and "Exchange.ManageAsApp" in gap.permission and not gap.not_applicable


def test_other_failure_is_a_plain_gap() -> None:
    gap = outbound_policy_gap("Get-RemoteDomain", ApiError("boom", status=500, service="exchange"))
    assert gap.reason.startswith("Get-RemoteDomain failed") and gap.permission is None


def test_old_stored_tenant_info_has_no_outbound_policy() -> None:
    old = json.loads(TENANT.model_dump_json())
    old.pop("outbound_policy", None)
    assert TenantInfo.model_validate_json(json.dumps(old)).outbound_policy is None  # "unknown", not "no policy"


# ---- the pure matching ------------------------------------------------------------------------------------------------
def test_first_enabled_rule_by_priority_wins() -> None:
    rules = [{"name": "r-late", "policy": "B", "priority": 5, "from_values": ["alice@contoso.com"]},
             {"name": "r-off", "policy": "A", "priority": 0, "state": "Disabled", "from_values": ["alice@contoso.com"]},
             {"name": "r-first", "policy": "A", "priority": 1, "sender_domain_is": ["contoso.com"]}]
    eff = effective_policy(_op(rules), ALICE)
    assert eff.policy is not None and eff.policy.name == "A" and eff.rule is not None and eff.rule.name == "r-first"
    # Without the domain rule the disabled one is skipped and the later one applies.
    eff = effective_policy(_op([rules[0], rules[1]]), ALICE)
    assert eff.policy is not None and eff.policy.name == "B"


def test_conditions_are_anded_and_exceptions_exclude() -> None:
    both = OutboundSpamRule(name="r", policy="A", from_values=("alice@contoso.com",), sender_domain_is=("fabrikam.com",))
    assert rule_applies(both, ALICE) == (False, "")  # From matches, the domain does not
    exc = OutboundSpamRule(name="r", policy="A", sender_domain_is=("contoso.com",), except_if_from=("ALICE@contoso.com",))
    assert rule_applies(exc, ALICE) == (False, "")
    dom_exc = OutboundSpamRule(name="r", policy="A", from_values=("alice@contoso.com",),
                               except_if_sender_domain_is=("contoso.com",))
    assert rule_applies(dom_exc, ALICE)[0] is False
    other = OutboundSpamRule(name="r", policy="A", from_values=("bob@contoso.com",), except_if_from=("x@y.z",))
    assert rule_applies(other, ALICE)[0] is False


def test_default_policy_when_no_rule_matches() -> None:
    eff = effective_policy(_op([{"name": "r", "policy": "A", "from_values": ["bob@contoso.com"]}]), ALICE)
    assert eff.policy is not None and eff.policy.is_default and eff.rule is None and eff.unknown is None
    assert effective_policy(_op([], policies=[{"name": "A", "auto_forwarding_mode": "On"}]), ALICE).unknown


@pytest.mark.parametrize(("rule", "why"), [
    ({"from_member_of": ["AP Team"]}, "group membership"),
    ({"from_values": ["Alice Example"]}, "not by address"),  # named by display name: Exchange would resolve it
    ({"sender_domain_is": ["contoso.com"], "except_if_from_member_of": ["Execs"]}, "exception"),
])
def test_unresolvable_rules_are_cannot_tell_never_covered(rule: dict[str, Any], why: str) -> None:
    op = _op([{"name": "grp", "policy": "A", "priority": 0, **rule},
              {"name": "later", "policy": "A", "priority": 1, "from_values": ["alice@contoso.com"]}])
    eff = effective_policy(op, ALICE)
    assert eff.policy is None and eff.unknown and why in eff.unknown and "'grp'" in eff.unknown
    assert policy_exception(op, eff, "books.example") is None  # no suppression on a guess
    d = delivery(op, eff, "books.example")
    assert d.state == "unknown" and "cannot tell" in d.detail


def test_group_rule_that_cannot_match_is_skipped() -> None:
    # An AND with a failing From makes the group condition irrelevant.
    op = _op([{"name": "grp", "policy": "A", "from_member_of": ["AP"], "from_values": ["bob@contoso.com"]}])
    eff = effective_policy(op, ALICE)
    assert eff.policy is not None and eff.policy.is_default


def test_remote_domain_specificity_and_delivery() -> None:
    rds = [{"name": "Default", "domain_name": "*", "auto_forward_enabled": False},
           {"name": "Parent", "domain_name": "*.books.example", "auto_forward_enabled": True},
           {"name": "Exact", "domain_name": "eu.books.example", "auto_forward_enabled": False}]
    op = _op([], policies=[{"name": "Default", "auto_forwarding_mode": "On", "is_default": True}], remote_domains=rds)
    assert remote_domain_for(op, "eu.books.example").name == "Exact"  # type: ignore[union-attr]
    assert remote_domain_for(op, "us.books.example").name == "Parent"  # type: ignore[union-attr]
    assert remote_domain_for(op, "books.example").name == "Parent"  # type: ignore[union-attr]
    assert remote_domain_for(op, "elsewhere.example").name == "Default"  # type: ignore[union-attr]
    eff = effective_policy(op, ALICE)
    assert delivery(op, eff, "us.books.example").state == "allowed"
    blocked = delivery(op, eff, "eu.books.example")
    assert blocked.state == "blocked" and "remote domain 'Exact'" in blocked.detail
    exc = policy_exception(op, eff, "us.books.example")
    assert exc is not None and exc.kind == "remote_domain" and exc.name == "Parent"
    assert policy_exception(op, eff, "eu.books.example") is None  # the exact entry blocks: no exception


@pytest.mark.parametrize(("mode", "state", "words"), [
    ("Off", "blocked", "AutoForwardingMode Off, forwards NDR with 5.7.520 — reported for intent"),
    ("Automatic", "blocked", "now the same as Off"),
    ("On", "allowed", "AutoForwardingMode On"),
    (None, "unknown", "not read"),
])
def test_default_policy_delivery(mode: str | None, state: str, words: str) -> None:
    op = OutboundPolicy(policies=(OutboundSpamPolicy(name="Default", auto_forwarding_mode=mode, is_default=True),),
                        remote_domains=(RemoteDomain(name="Default", domain_name="*", auto_forward_enabled=True),))
    eff = effective_policy(op, ALICE)
    d = delivery(op, eff, "books.example")
    assert d.state == state and words in d.detail
    assert policy_exception(op, eff, "books.example") is None  # the default policy is never an exception


# ---- the detectors ---------------------------------------------------------------------------------------------------
def _run(spec: dict[str, Any], detector: str) -> list[Any]:
    from tests.detectors.test_detectors import BY_ID

    acc = account_from_spec(spec)
    findings, gaps = run_detectors(acc, context_for(spec, acc), [BY_ID[detector]])
    assert gaps == []
    return findings


def test_suppressed_forward_names_the_policy() -> None:
    (f,) = _run({"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP}, MBX)
    assert f.suppressed == "outbound policy 'AP bookkeeping' (rule 'AP bookkeeping') allows automatic forwarding for " \
                           "this sender"
    assert f.severity.label == "info" and f.score == 0
    assert f.evidence["delivery"] == "allowed" and f.evidence["outbound_policy"] == "AP bookkeeping"
    assert f.evidence["domain_class"] == "external"


def test_blocked_forward_keeps_its_severity_and_says_so() -> None:
    (f,) = _run({"forwarding": {"forwarding_smtp_address": "smtp:x@gmail.com"}, "outbound_policy": OUTBOUND_OFF}, MBX)
    assert f.suppressed is None and f.severity.label == "critical"  # free-mail, no copy kept: as without the policy
    assert f.evidence["delivery"] == "blocked" and f.evidence["outbound_policy"] == "Default"
    assert f.evidence["delivery_detail"] == ("blocked: outbound policy 'Default' AutoForwardingMode Off, forwards NDR "
                                             "with 5.7.520 — reported for intent")
    sentence = evidence_sentence(MBX, f.evidence)
    assert sentence.startswith("Redirects all mail to x@gmail.com") and \
        "Auto-forwarding blocked: outbound policy 'Default' AutoForwardingMode Off" in sentence


def test_freemail_under_an_exception_is_reported_with_the_exception_named() -> None:
    fwd = {**BOOKKEEPER, "forwarding_smtp_address": "smtp:ap.books@gmail.com"}
    (f,) = _run({"forwarding": fwd, "outbound_policy": OUTBOUND_AP}, MBX)
    assert f.suppressed is None and f.severity.label == "high" and f.evidence["delivery"] == "allowed"
    assert "AP bookkeeping" in f.evidence["outbound_exception"]
    assert "reported regardless" in evidence_sentence(MBX, f.evidence)


def test_new_exception_is_flagged_not_trusted() -> None:
    (f,) = _run({"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP, "has_previous": True,
                 "previous_outbound_policy": OUTBOUND_OFF}, MBX)
    assert f.suppressed is None and f.severity.label == "high" and f.evidence["outbound_exception_new"] is True
    assert "new since the last scan" in evidence_sentence(MBX, f.evidence)
    # A rule newly scoped to this sender (the policy existed, for someone else) is new too.
    before = {**OUTBOUND_AP, "rules": [{**OUTBOUND_AP["rules"][0], "from_values": ["bob@contoso.com"]}]}
    (g,) = _run({"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP, "has_previous": True,
                 "previous_outbound_policy": before}, MBX)
    assert g.suppressed is None and g.evidence["outbound_exception_new"] is True


def test_rule_and_campaign_detectors_carry_the_policy_evidence() -> None:
    (r,) = _run({"rules": [{"actions": {"forwardTo": ["me@gmail.com"]}}], "outbound_policy": OUTBOUND_OFF}, RULE)
    assert r.suppressed is None and r.evidence["delivery"] == "blocked"
    (s,) = _run({"forwarding": {"forwarding_smtp_address": "invoices@ledgerline-books.com"},
                 "outbound_policy": OUTBOUND_AP,
                 "others": [{"upn": "bob@contoso.com", "forwarding": {"forwarding_smtp_address":
                                                                      "invoices@ledgerline-books.com"}}]}, SHARED)
    assert s.suppressed and "AP bookkeeping" in s.suppressed and s.severity.label == "info"


def test_no_policy_read_no_policy_evidence() -> None:
    (f,) = _run({"forwarding": BOOKKEEPER}, MBX)
    assert f.suppressed is None and "delivery" not in f.evidence  # the tenant coverage gap tells the story


def test_assess_ignores_internal_and_partner() -> None:
    ctx = ScanContext(tenant=TENANT.model_copy(update={"outbound_policy": OutboundPolicy.model_validate(OUTBOUND_AP)}),
                      now=NOW)
    acc = account_from_spec({})
    assert assess(acc, ctx, classify("bob@contoso.com", TENANT.domains)).evidence == {}


# ---- the simulator and whole scans -------------------------------------------------------------------------------------
async def test_simulator_serves_the_three_cmdlets() -> None:
    t = generate_tenant(users=30, seed=7, scenarios=True)
    app = create_app(t)
    url = f"http://localhost:8765/adminapi/beta/{t.tenant_id}/InvokeCommand"
    h = {"Authorization": f"Bearer {app.exchange_token}"}

    async def call(c: httpx.AsyncClient, cmdlet: str, **params: Any) -> httpx.Response:
        return await c.post(url, headers=h, json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as c:
        rds = (await call(c, "Get-RemoteDomain")).json()["value"]
        assert [(r["Name"], r["DomainName"], r["AutoForwardEnabled"]) for r in rds] == [
            ("Default", "*", True), ("Ledgerline bookkeeping", "ledgerline-books.com", True)]
        pols = (await call(c, "Get-HostedOutboundSpamFilterPolicy")).json()["value"]
        assert [(p["Name"], p["AutoForwardingMode"], p["IsDefault"]) for p in pols] == [
            ("Default", "Automatic", True), ("AP bookkeeping", "On", False)]
        (rule,) = (await call(c, "Get-HostedOutboundSpamFilterRule")).json()["value"]
        assert rule["HostedOutboundSpamFilterPolicy"] == "AP bookkeeping" and rule["State"] == "Enabled"
        assert rule["From"] == ["ap-invoices@contoso.com"] and rule["From@odata.type"] == "#Collection(String)"
        assert rule["FromMemberOf"] == [] and rule["Priority"] == 0
        one = (await call(c, "Get-RemoteDomain", Identity="Default")).json()["value"]
        assert [r["Name"] for r in one] == ["Default"]
        assert (await call(c, "Get-HostedOutboundSpamFilterRule", Identity="nope")).status_code == 404
        assert (await call(c, "Get-RemoteDomain", ResultSize="Unlimited")).status_code == 400  # takes none
    # Without the planted scenario only the built-in objects exist.
    bare = sim_outbound.state(generate_tenant(users=20, seed=7, scenarios=False))
    assert [len(bare[k]) for k in ("remote_domains", "policies", "rules")] == [1, 1, 0]


async def test_collector_reads_through_the_client(make_sim_env: Any) -> None:
    env = make_sim_env(users=30, seed=7, scenarios=True)
    async with connect(env.cfg, credential=env.credential, transport=env.transport) as conn:
        op = OutboundPolicy.model_validate(await read_outbound_policy(conn.exchange))
    assert [p.name for p in op.policies] == ["Default", "AP bookkeeping"]
    assert op.rules[0].from_values == ("ap-invoices@contoso.com",)
    assert {rd.domain_name for rd in op.remote_domains} == {"*", "ledgerline-books.com"}


def _findings(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "findings.json").read_text("utf-8"))["findings"]


async def test_scan_suppresses_the_documented_exception_only(make_sim_env: Any, tmp_path: Path) -> None:
    env = make_sim_env(users=60, seed=7, scenarios=True)
    # An ordinary user forwarding to the same bookkeeper domain is NOT covered (the policy is scoped to AP invoices).
    other = env.tenant.find_user("debra.berger@contoso.com")
    other.mailbox.forwarding_smtp = "smtp:debra@ledgerline-books.com"
    other.mailbox.deliver_and_forward = True
    r = await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out")
    assert [e for e in r.errors if e["collector"] == "outbound_policy"] == []
    by = {(f["account"], f["detector"]): f for f in _findings(tmp_path / "out")}
    ap = by[("ap-invoices@contoso.com", MBX)]
    assert ap["severity"] == "info" and "outbound policy 'AP bookkeeping'" in ap["suppressed"]
    assert ap["evidence"]["delivery"] == "allowed"
    debra = by[("debra.berger@contoso.com", MBX)]
    assert debra["suppressed"] is None and debra["severity"] == "high"
    assert debra["evidence"]["delivery"] == "blocked" and "Automatic" in debra["evidence"]["delivery_detail"]
    adele = by[("adele.vance@contoso.com", MBX)]  # planted compromise: free-mail, no copy kept
    assert adele["suppressed"] is None and adele["severity"] == "critical" and adele["evidence"]["delivery"] == "blocked"
    diego = by[("diego.siciliani@contoso.com", MBX)]  # planted compromise: look-alike
    assert diego["suppressed"] is None and diego["severity"] == "critical"
    accounts = {a["userPrincipalName"]: a["verdict"] for a in json.loads(
        (tmp_path / "out" / "findings.json").read_text("utf-8"))["accounts"]}
    assert accounts["ap-invoices@contoso.com"] == "clean" and accounts["adele.vance@contoso.com"] == "compromised"
    report = (tmp_path / "out" / "report.html").read_text("utf-8")
    assert "outbound policy &#39;AP bookkeeping&#39;" in report and "Auto-forwarding blocked" in report


@pytest.mark.parametrize("refusal", ["rbac", "access_denied"])
async def test_refused_policy_read_is_a_gap_and_forwards_stay_reported(make_sim_env: Any, tmp_path: Path,
                                                                       refusal: str) -> None:
    options = {"exchange_rbac_denied": frozenset({"Get-HostedOutboundSpamFilterPolicy"})} if refusal == "rbac" else {}
    env = make_sim_env(users=30, seed=7, scenarios=True, app_options=options)
    if refusal == "access_denied":
        env.tenant.faults.add("Get-RemoteDomain", status=403, times=None)
    r = await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "out")
    gaps = [e for e in r.errors if e["collector"] == "outbound_policy"]
    assert len(gaps) == 1 and gaps[0]["upn"] is None and "View-Only Configuration" in gaps[0]["message"], r.errors
    assert r.exit_code == 3  # never a clean 0 with the policies unread
    by = {(f["account"], f["detector"]): f for f in _findings(tmp_path / "out")}
    ap = by[("ap-invoices@contoso.com", MBX)]
    assert ap["suppressed"] is None and ap["severity"] == "high" and "delivery" not in ap["evidence"]


async def test_exception_added_overnight_is_not_trusted_until_it_has_stood(make_sim_env: Any, tmp_path: Path) -> None:
    env = make_sim_env(users=40, seed=7, scenarios=True)
    state = sim_outbound.state(env.tenant)
    policy, rule = state["policies"].pop(), state["rules"].pop()  # the AP exception does not exist yet
    state["remote_domains"].pop()
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "one")
    first = {(f["account"], f["detector"]): f for f in _findings(tmp_path / "one")}[("ap-invoices@contoso.com", MBX)]
    assert first["suppressed"] is None and first["evidence"]["delivery"] == "blocked"
    # Overnight someone adds a custom policy On scoped to the mailbox: not trusted on the scan that first sees it.
    sim_outbound.add(env.tenant, "policies", {k: v for k, v in policy.items() if not k.startswith("_")})
    sim_outbound.add(env.tenant, "rules", {k: v for k, v in rule.items() if not k.startswith("_")})
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "two")
    second = {(f["account"], f["detector"]): f for f in _findings(tmp_path / "two")}[("ap-invoices@contoso.com", MBX)]
    assert second["suppressed"] is None and second["severity"] == "high"
    assert second["evidence"]["outbound_exception_new"] is True and second["evidence"]["delivery"] == "allowed"
    # Still there the night after: now a standing, documented exception.
    await run_scan(env.cfg, **env.kwargs, out_dir=tmp_path / "three")
    third = {(f["account"], f["detector"]): f for f in _findings(tmp_path / "three")}[("ap-invoices@contoso.com", MBX)]
    assert third["severity"] == "info" and "AP bookkeeping" in third["suppressed"]
