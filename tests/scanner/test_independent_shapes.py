"""The scanner against a tenant that answers in other documented forms than our simulator happens to use.

Each test wraps the simulator in an ASGI middleware that rewrites its answers into a form Microsoft's services use (or
that Microsoft documents), then scans through the real scanner and checks the snapshot and findings come out right.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanner.simulator import SimOptions, create_app, generate_tenant
from scanner.store import Store
from scanner.sweep import TENANT_KEY
from tests.reliability.helpers import (
    assert_nothing_lost,
    env_for,
    read_findings_json,
    read_request,
    rewrite_body,
    scan,
    snapshot,
)

Doc = dict[str, Any]


class ExchangeAs:
    """ASGI middleware over the simulator's Exchange admin API (``InvokeCommand``).

    ``fix(cmdlet, parameters, doc) -> doc`` rewrites each JSON answer; ``answer(cmdlet, parameters) -> doc | None``
    answers a cmdlet itself (one the simulator does not implement). Calls are recorded as (cmdlet, parameters)."""

    def __init__(self, app: Any, fix: Callable[[str, Doc, Doc], Doc] | None = None,
                 answer: Callable[[str, Doc], Doc | None] | None = None) -> None:
        self.app = app
        self.fix = fix or (lambda _c, _p, doc: doc)
        self.answer = answer or (lambda _c, _p: None)
        self.calls: list[tuple[str, Doc]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or "/adminapi/" not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return
        if scope["path"].endswith("/$batch"):
            # An implementation without the admin API's JSON batch: the scanner must fall back to single cmdlets.
            self.calls.append(("$batch", {}))
            await _send_json(send, 404, {})
            return
        raw, again = await read_request(receive)
        try:
            cmd = json.loads(raw)["CmdletInput"]
            cmdlet, params = str(cmd["CmdletName"]), dict(cmd.get("Parameters") or {})
        except (ValueError, KeyError, TypeError):
            cmdlet, params = "", {}
        self.calls.append((cmdlet, params))
        own = self.answer(cmdlet, params)
        if own is not None:
            await _send_json(send, 200, own)
            return

        def fix(status: int, data: bytes) -> bytes:
            return json.dumps(self.fix(cmdlet, params, json.loads(data))).encode() if status == 200 and data else data

        await self.app(scope, again, rewrite_body(send, fix))


async def _send_json(send: Any, status: int, doc: Doc) -> None:
    data = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def _findings(out: Path) -> list[dict[str, Any]]:
    return read_findings_json(out)["findings"]


def _keys(out: Path) -> set[tuple[str, str, str]]:
    return {(f["account"], f["detector"], f["severity"]) for f in _findings(out)}


# ------------------------------------------------------------------------------------------------------------------
# Get-InboxRule names a recipient of the organisation by its legacyExchangeDN: '"Name" [EX:/o=ExchangeLabs/...]'.
# Only one-off addresses read '"Name" [SMTP:addr]' (what the simulator prints for every recipient).

LEGACY_DN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={hex}-{alias}"
_SMTP_RECIPIENT = re.compile(r'^"(?P<name>[^"]*)" \[SMTP:(?P<addr>[^\]]+)\]$')
RULE_RECIPIENT_KEYS = ("ForwardTo", "RedirectTo", "ForwardAsAttachmentTo", "From", "SentTo", "ExceptIfFrom",
                       "ExceptIfSentTo")
OWNER = "isaiah.langer@contoso.com"
COLLEAGUE = "lynne.robbins@contoso.com"


def _legacy_dns(tenant: Any) -> dict[str, str]:
    """Primary SMTP address (lower case) -> the mailbox's legacyExchangeDN, as Exchange Online forms it."""
    out = {}
    for u in tenant.iter_users():
        if u.mailbox is not None and u.mail:
            out[u.mail.lower()] = LEGACY_DN.format(hex=u.id.replace("-", ""), alias=u.mailNickname)
    return out


def _as_directory_recipients(dns: dict[str, str]) -> Callable[[str, Doc, Doc], Doc]:
    def fix(cmdlet: str, _params: Doc, doc: Doc) -> Doc:
        for row in doc.get("value") or []:
            if cmdlet == "Get-Mailbox":
                dn = dns.get(str(row.get("PrimarySmtpAddress") or "").lower())
                if dn:
                    row["LegacyExchangeDN"] = dn
            elif cmdlet == "Get-InboxRule":
                for key in RULE_RECIPIENT_KEYS:
                    if isinstance(row.get(key), list):
                        row[key] = [_ex_form(v, dns) for v in row[key]]
        return doc

    return fix


def _ex_form(value: Any, dns: dict[str, str]) -> Any:
    m = _SMTP_RECIPIENT.match(str(value))
    dn = dns.get(m.group("addr").lower()) if m else None
    return f'"{m.group("name")}" [EX:{dn}]' if m and dn else value


def _rule_tenant() -> Any:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    # Hidden rules are read only through Exchange, so Exchange's recipient form is all the scan has.
    tenant.add_rule(OWNER, displayName="Copy to Lynne", hidden=True,
                    conditions={"fromAddresses": [{"emailAddress": {"name": "Lynne Robbins", "address": COLLEAGUE}}]},
                    actions={"forwardTo": [{"emailAddress": {"name": "Lynne Robbins", "address": COLLEAGUE}}],
                             "redirectTo": [{"emailAddress": {"name": "Home", "address": "isaiah@gmail.example"}}]})
    return tenant


def test_rule_recipients_named_by_legacy_exchange_dn_resolve_to_their_address(tmp_path: Path) -> None:
    base_tenant = _rule_tenant()
    base = env_for(tmp_path / "base", base_tenant, create_app(base_tenant, SimOptions()))
    base_result = asyncio.run(scan(base, tmp_path / "base" / "out"))
    assert base_result.exit_code == 0

    tenant = _rule_tenant()
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_as_directory_recipients(_legacy_dns(tenant)))
    env = env_for(tmp_path, tenant, app, asgi=exo)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == [] and result.exit_code == 0
    assert any(c == "Get-InboxRule" for c, _ in exo.calls)

    rule = next(r for r in snapshot(env, result, OWNER).require("inbox_rules") if r.display_name == "Copy to Lynne")
    assert rule.hidden
    assert rule.actions["forwardTo"] == [{"emailAddress": {"name": "Lynne Robbins", "address": COLLEAGUE}}]
    assert rule.actions["redirectTo"] == [{"emailAddress": {"name": "Home", "address": "isaiah@gmail.example"}}]
    assert rule.conditions["fromAddresses"] == [{"emailAddress": {"name": "Lynne Robbins", "address": COLLEAGUE}}]
    # The same tenant read in either form gives the same findings.
    assert _keys(tmp_path / "out") == _keys(tmp_path / "base" / "out")
    assert_nothing_lost(env, result)


# ------------------------------------------------------------------------------------------------------------------
# Get-Mailbox prints ForwardingAddress as the target recipient's identity (its name), never as an address: a mailbox
# forwarding to a mail contact outside the tenant names the contact. Get-Recipient says where the contact's mail goes
# (ExternalEmailAddress). The simulator prints an external target's address itself.

FORWARDER = "grady.archie@contoso.com"
CONTACT = "Evil Forwarder"
OUTSIDE = "collector@evil-mail.example"
CONTACT_DN = ("/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
              "cn=5b7c0e1a4d2f4c0b9e6f1a2b3c4d5e6f-Evil Forwa")


def _contact_forward_tenant() -> Any:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    tenant.set_forwarding(FORWARDER, address=OUTSIDE, deliver_and_forward=False, log=False)
    return tenant


def _forward_to_contact(cmdlet: str, _params: Doc, doc: Doc) -> Doc:
    for row in doc.get("value") or []:
        if cmdlet == "Get-Mailbox" and str(row.get("ForwardingAddress") or "").lower() == OUTSIDE:
            row["ForwardingAddress"] = CONTACT
    return doc


def _get_recipient(cmdlet: str, params: Doc) -> Doc | None:
    """Get-Recipient as Exchange answers it for the contact, named by its name or by its legacyExchangeDN."""
    if cmdlet != "Get-Recipient":
        return None
    rows = []
    if str(params.get("Identity") or "").lower() in (CONTACT.lower(), CONTACT_DN.lower()):
        rows.append({"Identity": CONTACT, "Name": CONTACT, "DisplayName": CONTACT, "Alias": "EvilForwarder",
                     "RecipientType": "MailContact", "RecipientTypeDetails": "MailContact",
                     "LegacyExchangeDN": CONTACT_DN, "PrimarySmtpAddress": OUTSIDE,
                     "ExternalEmailAddress": f"SMTP:{OUTSIDE}",
                     "EmailAddresses@odata.type": "#Collection(String)", "EmailAddresses": [f"SMTP:{OUTSIDE}"]})
    return {"@odata.context": "https://outlook.office365.com/adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)",
            "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": [], "value": rows}


def test_forwarding_address_naming_a_mail_contact_is_resolved_and_found(tmp_path: Path) -> None:
    tenant = _contact_forward_tenant()
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_forward_to_contact, answer=_get_recipient)
    env = env_for(tmp_path, tenant, app, asgi=exo)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.errors == [] and result.exit_code == 0

    fwd = snapshot(env, result, FORWARDER).require("forwarding")
    assert fwd.forwarding_address == CONTACT
    assert fwd.forwarding_address_resolved == OUTSIDE
    hits = [f for f in _findings(tmp_path / "out")
            if f["account"] == FORWARDER and f["detector"] == "mail.mailbox_external_forward"]
    assert len(hits) == 1 and hits[0]["evidence"]["destination"] == OUTSIDE
    # One lookup for the one name no mailbox carries; mailbox forwards are resolved without asking.
    assert [p.get("Identity") for c, p in exo.calls if c == "Get-Recipient"] == [CONTACT]
    assert_nothing_lost(env, result)


def test_forwarding_address_that_cannot_be_looked_up_stays_unresolved_and_noted(tmp_path: Path) -> None:
    # A service without Get-Recipient (403 with a NUL byte, as Exchange answers an unknown cmdlet): the forward keeps its
    # raw identity, the scan says why, nothing else changes.
    tenant = _contact_forward_tenant()
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_forward_to_contact)
    env = env_for(tmp_path, tenant, app, asgi=exo)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.exit_code == 0
    fwd = snapshot(env, result, FORWARDER).require("forwarding")
    assert fwd.forwarding_address == CONTACT and fwd.forwarding_address_resolved is None
    with Store(env.cfg.database_path) as store:
        notes = store.get_tenant_data(result.scan_id, TENANT_KEY)["notes"]
    assert any("Get-Recipient" in n and CONTACT in n for n in notes), notes


# A hidden rule (made with New-InboxRule through the GAL) that forwards to a mail contact: Get-InboxRule prints the
# contact by its legacyExchangeDN, '"Name" [EX:/o=…]', with no address; Get-Recipient says where its mail goes.
RULE_OWNER = "megan.bowen@contoso.com"


def _hidden_rule_to_contact_tenant() -> Any:
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    tenant.add_rule(RULE_OWNER, displayName="sync", conditions={},
                    actions={"forwardTo": [{"emailAddress": {"name": CONTACT, "address": OUTSIDE}}]}, hidden=True)
    return tenant


def _rule_names_contact_by_dn(cmdlet: str, _params: Doc, doc: Doc) -> Doc:
    for row in doc.get("value") or []:
        if cmdlet == "Get-InboxRule" and row.get("ForwardTo"):
            fwd = row["ForwardTo"] if isinstance(row["ForwardTo"], list) else [row["ForwardTo"]]
            row["ForwardTo"] = [f'"{CONTACT}" [EX:{CONTACT_DN}]' if OUTSIDE in str(x) else x for x in fwd]
    return doc


def test_hidden_rule_forwarding_to_a_mail_contact_by_legacy_dn_is_resolved(tmp_path: Path) -> None:
    tenant = _hidden_rule_to_contact_tenant()
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_rule_names_contact_by_dn, answer=_get_recipient)
    env = env_for(tmp_path, tenant, app, asgi=exo)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.exit_code == 0, result.errors[:3]
    rule = next(r for r in snapshot(env, result, RULE_OWNER).require("inbox_rules") if r.display_name == "sync")
    assert rule.hidden
    assert [a["emailAddress"]["address"] for a in rule.actions["forwardTo"]] == [OUTSIDE]
    hits = [f for f in _findings(tmp_path / "out")
            if f["account"] == RULE_OWNER and f["detector"] == "mail.inbox_rule_external_forward"]
    assert hits and OUTSIDE in json.dumps(hits[0]["evidence"])
    # Asked once, by the DN (mailbox destinations never are).
    assert [p.get("Identity") for c, p in exo.calls if c == "Get-Recipient"] == [CONTACT_DN]


def test_hidden_rule_to_an_unresolvable_dn_is_still_reported(tmp_path: Path, caplog: Any) -> None:
    tenant = _hidden_rule_to_contact_tenant()
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_rule_names_contact_by_dn)  # no Get-Recipient: 403 like an unknown cmdlet
    env = env_for(tmp_path, tenant, app, asgi=exo)
    result = asyncio.run(scan(env, tmp_path / "out"))
    assert result.exit_code == 0
    detectors = {f["detector"] for f in _findings(tmp_path / "out") if f["account"] == RULE_OWNER}
    assert "mail.inbox_rule_hidden" in detectors
    assert len([c for c, _p in exo.calls if c == "Get-Recipient"]) == 1  # not asked again per chunk
    assert any("Get-Recipient could not resolve" in r.getMessage() and CONTACT_DN in r.getMessage()
               for r in caplog.records)  # the unresolved destination is said, not dropped


def test_auto_remediation_clears_a_forward_to_a_mail_contact(tmp_path: Path) -> None:
    # The finding names the contact's external address; the live mailbox names the contact. Auto mode acts only on
    # destinations the findings name, so the finding must carry the identity Get-Mailbox shows too.
    from click.testing import CliRunner

    from remediators.cli import ConnectOptions, remediate_command
    from tests.conftest import sim_config_dict

    tenant = generate_tenant(users=30, seed=11, scenarios=False)
    victim = next(u.userPrincipalName for u in tenant.iter_users() if u.mailbox is not None and u.mailbox.kind == "user")
    tenant.set_forwarding(victim, address=OUTSIDE, log=False)
    # A second family of evidence (a rule hiding security notices), so the account reads "compromised".
    tenant.add_rule(victim, displayName=".", conditions={"subjectContains": ["hacked", "phishing", "suspicious"]},
                    actions={"delete": True, "markAsRead": True}, log=False)
    app = create_app(tenant, SimOptions())
    exo = ExchangeAs(app, fix=_forward_to_contact, answer=_get_recipient)
    sections = {"remediation": {"allow_auto": True, "steps": ["remove_forwarding"]}}
    env = env_for(tmp_path, tenant, app, asgi=exo, **sections)
    assert asyncio.run(scan(env)).exit_code == 0
    config = tmp_path / "m365sweep.toml"
    config.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                              for name, values in sim_config_dict(tenant, tmp_path, **sections).items()))
    options = ConnectOptions(credential=env.credential, transport=env.transport, verify_timeout=0.0, poll_interval=0.0)
    res = CliRunner().invoke(remediate_command, ["--config", str(config), "--auto", "--yes"], obj=options,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert tenant.user(victim).mailbox.forwarding_address is None, res.output
    assert any(c == "Set-Mailbox" and p.get("Identity") == victim for c, p in exo.calls)


# ---- Graph: OData details a service may use -------------------------------------------------------------------------
def test_sent_items_count_sent_as_a_string_is_read_as_the_count(tmp_path: Path) -> None:
    # OData JSON lets a service write Edm.Int64 values, @odata.count among them, as strings (IEEE754Compatible=true).
    from tests.reliability.helpers import MangleJson

    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    app = create_app(tenant, SimOptions())

    def as_text(doc: Doc) -> Doc:
        if isinstance(doc.get("@odata.count"), int):
            doc["@odata.count"] = str(doc["@odata.count"])
            doc["value"] = []  # and no page to count instead
            doc.pop("@odata.nextLink", None)
        return doc

    env = env_for(tmp_path, tenant, app, asgi=MangleJson(app, "/messages", as_text))
    result = asyncio.run(scan(env))
    assert result.errors == [] and result.exit_code == 0
    assert snapshot(env, result, "lee.gu@contoso.com").require("sending").sent_last_24h == 900


def test_timestamps_with_a_lowercase_z_are_utc() -> None:
    from datetime import UTC, datetime

    from scanner.collectors._util import parse_dt

    want = datetime(2026, 11, 30, 8, 15, 2, 123456, tzinfo=UTC)
    assert parse_dt("2026-11-30T08:15:02.1234567z") == want
    assert parse_dt("2026-11-30T08:15:02.1234567Z") == want
    assert parse_dt("2026-11-30T09:15:02.1234567+01:00") == want
    assert parse_dt("2026-11-30T08:15:02.123456") == want  # no zone: UTC, as Graph means it
