"""Property-based fuzzing (hypothesis) of everything that reads outside input: the config, and the parsers that turn
Graph / Exchange JSON into snapshots. Hostile but well-typed input (the right JSON type at each key, any content:
huge, Unicode, control characters, odd dates, empty) must never raise; the config may only raise ConfigError.
The detectors' fuzz test is tests/detectors/test_catalogue.py."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.collectors.auth_methods import parse_methods
from scanner.collectors.exchange import MailboxDirectory
from scanner.collectors.folders import FolderSet, parse_folder
from scanner.collectors.forwarding import forwarding_from_mailbox
from scanner.collectors.inbox_rules import exchange_folder_path, merge_rules, translate_exchange_rule
from scanner.collectors.protocols import protocols_from_cas
from scanner.collectors.registration import registration_from_row
from scanner.collectors.users import parse_user
from scanner.config import ConfigError, parse_config
from scanner.snapshot import AccountSnapshot

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\u202e", "smtp:", "SMTP:a@b", "[smtp:x@y]", "\"\"", "=1+1", "<script>",
                     "a" * 5000, "2026-13-45T99:99:99Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z",
                     "2024-02-30T00:00:00+25:00", "NaN", "-1", "True", "$false", "\\\\server\\share", "exo-path:x",
                     "a:\\\\b\\\\c", "𝕿𝖍𝖊 😈", "\ud7ff", "Junk E-mail Rule", "Microsoft.Exchange.OOF.x"]),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                        st.floats(allow_nan=False), hostile_text)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    hostile_text, inner, max_size=4), max_leaves=12)
text_list = st.lists(hostile_text, max_size=5)
recipient = st.fixed_dictionaries({"emailAddress": st.fixed_dictionaries({"name": hostile_text,
                                                                         "address": hostile_text})})


# ---- config ------------------------------------------------------------------------------------------------------
SECTIONS = ("tenant", "auth", "endpoints", "storage", "allowlist", "remediation", "schedule", "notify", "logging",
            "scan", "bogus")
KEYS = ("tenant_id", "client_id", "cloud", "name", "method", "certificate_path", "graph", "exchange", "authority",
        "database", "keep_scans", "forwarding_domains", "accounts", "protected_accounts", "max_accounts_per_run",
        "steps", "allow_auto", "cron", "timezone", "format", "level", "concurrency", "request_timeout",
        "max_retries", "webhook_url", "value", "expires", "reason", "client_secret", "token", "password")


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS) | hostile_text,
                       st.dictionaries(st.sampled_from(KEYS) | hostile_text, json_value, max_size=6) | json_value,
                       max_size=6))
def test_parse_config_raises_only_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err).strip()  # one line for the user


@FUZZ
@given(tenant=st.fixed_dictionaries({"tenant_id": hostile_text}, optional={"name": hostile_text,
                                                                           "cloud": hostile_text}),
       scan=st.fixed_dictionaries({}, optional={"concurrency": st.integers(), "request_timeout": st.floats(),
                                                "max_retries": st.integers()}))
def test_parse_config_well_typed_values(tenant: dict[str, Any], scan: dict[str, Any]) -> None:
    try:
        cfg = parse_config({"tenant": tenant, "scan": scan})
    except ConfigError:
        return
    assert 1 <= cfg.scan.concurrency <= 256 and 0 <= cfg.scan.max_retries <= 20


# ---- Graph users / methods / folders / rules ----------------------------------------------------------------------
graph_user = st.fixed_dictionaries(
    {"id": hostile_text, "userPrincipalName": hostile_text},
    optional={"displayName": hostile_text | st.none(), "mail": hostile_text | st.none(),
              "accountEnabled": st.booleans() | st.none(), "userType": hostile_text | st.none(),
              "onPremisesSyncEnabled": st.booleans() | st.none(), "mobilePhone": hostile_text | st.none(),
              "otherMails": text_list, "businessPhones": text_list, "jobTitle": hostile_text | st.none(),
              "department": hostile_text | st.none(), "createdDateTime": hostile_text | st.none(),
              "lastPasswordChangeDateTime": hostile_text | st.none()})


@FUZZ
@given(graph_user, hostile_text | st.none())
def test_parse_user_never_raises_on_well_typed_input(raw: dict[str, Any], mailbox_type: str | None) -> None:
    user = parse_user(raw, mailbox_type)
    AccountSnapshot(user=user).to_json()  # and it serialises for the store


method = st.fixed_dictionaries(
    {"id": hostile_text, "@odata.type": hostile_text},
    optional={"createdDateTime": hostile_text, "displayName": hostile_text | st.none(),
              "phoneNumber": hostile_text | st.none(), "phoneType": hostile_text | st.none(),
              "emailAddress": hostile_text | st.none(), "isUsable": st.booleans(), "startDateTime": hostile_text,
              "lifetimeInMinutes": st.integers(), "deviceTag": hostile_text | st.none()})


@FUZZ
@given(st.lists(method | st.dictionaries(hostile_text, json_value, max_size=4), max_size=6))
def test_parse_methods_never_raises(values: list[dict[str, Any]]) -> None:
    parse_methods(values)


folder = st.fixed_dictionaries({"id": hostile_text}, optional={
    "displayName": hostile_text, "parentFolderId": hostile_text | st.none(), "isHidden": st.booleans(),
    "childFolderCount": st.integers()})


@FUZZ
@given(st.lists(folder, max_size=6), hostile_text)
def test_parse_folder_and_exchange_paths_never_raise(raws: list[dict[str, Any]], path: str) -> None:
    fs = FolderSet([f for f in (parse_folder(r) for r in raws) if f])
    fid = fs.resolve_path(exchange_folder_path(path))
    assert fid in {f.id for f in fs.folders()}


predicates = st.fixed_dictionaries({}, optional={
    "subjectContains": text_list, "bodyOrSubjectContains": text_list, "senderContains": text_list,
    "fromAddresses": st.lists(recipient, max_size=3), "hasAttachments": st.booleans()})
actions = st.fixed_dictionaries({}, optional={
    "forwardTo": st.lists(recipient, max_size=3), "redirectTo": st.lists(recipient, max_size=3),
    "forwardAsAttachmentTo": st.lists(recipient, max_size=3), "moveToFolder": hostile_text,
    "copyToFolder": hostile_text, "delete": st.booleans(), "permanentDelete": st.booleans(),
    "markAsRead": st.booleans(), "stopProcessingRules": st.booleans(), "assignCategories": text_list})
graph_rule = st.fixed_dictionaries({"id": hostile_text}, optional={
    "displayName": hostile_text, "sequence": st.integers(), "isEnabled": st.booleans(),
    "isReadOnly": st.booleans(), "hasError": st.booleans(), "conditions": predicates, "exceptions": predicates,
    "actions": actions})
exchange_scalar = st.one_of(hostile_text, st.booleans(), st.integers(), st.none())
exchange_rule = st.fixed_dictionaries({}, optional={
    k: exchange_scalar | st.lists(hostile_text, max_size=3) for k in (
        "Name", "Priority", "Enabled", "InError", "RuleIdentity", "Identity", "ForwardTo", "RedirectTo",
        "ForwardAsAttachmentTo", "DeleteMessage", "SoftDeleteMessage", "MoveToFolder", "CopyToFolder", "MarkAsRead",
        "StopProcessingRules", "MarkImportance", "ApplyCategory", "SubjectContainsWords", "From", "SentTo",
        "MessageTypeMatches", "WithImportance", "FlaggedForAction", "HasCategory", "WithinSizeRangeMinimum",
        "ExceptIfSubjectContainsWords", "ReceivedAfterDate", "SendTextMessageNotificationTo")})


@FUZZ
@given(st.lists(graph_rule, max_size=4), st.lists(exchange_rule, max_size=4))
def test_rule_translation_and_merge_never_raise(graph_raw: list[dict[str, Any]],
                                                exchange_raw: list[dict[str, Any]]) -> None:
    fs = FolderSet([])
    translated = [translate_exchange_rule(r, resolve_recipient=lambda _n: None,
                                          resolve_folder=lambda p: fs.resolve_path(exchange_folder_path(p)))
                  for r in exchange_raw]
    rules = merge_rules(graph_raw, translated, lambda a: a.endswith("@contoso.com"))
    AccountSnapshot.model_validate({"user": {"id": "1", "user_principal_name": "a@b.c"}, "inbox_rules": rules}
                                   ).to_json()


# ---- Exchange bulk rows -------------------------------------------------------------------------------------------
mailbox_row = st.fixed_dictionaries({"id": hostile_text}, optional={
    "upn": hostile_text, "primary": hostile_text, "names": text_list, "addresses": text_list,
    "fwd_smtp": hostile_text | st.none(), "fwd_addr": hostile_text | st.none(), "deliver": st.booleans() | st.none(),
    "type": hostile_text})
cas_row = st.fixed_dictionaries({}, optional={k: st.booleans() | st.none() for k in (
    "mapi", "ews", "eas", "imap", "pop", "owa", "smtp_auth_disabled")})
registration_row = st.fixed_dictionaries({}, optional={
    "isAdmin": st.booleans() | st.none(), "isMfaRegistered": st.booleans() | st.none(),
    "methodsRegistered": text_list, "lastUpdatedDateTime": hostile_text | st.none()})


@FUZZ
@given(st.lists(mailbox_row, min_size=1, max_size=5), cas_row, registration_row)
def test_forwarding_protocols_registration_never_raise(rows: list[dict[str, Any]], cas: dict[str, Any],
                                                       reg: dict[str, Any]) -> None:
    directory = MailboxDirectory.from_rows(rows)
    for row in rows:
        forwarding_from_mailbox(row, directory)
        directory.resolve(row.get("fwd_addr"))
    protocols_from_cas(cas)
    registration_from_row(reg)


# ---- wrong types through a real scan -------------------------------------------------------------------------------
async def test_wrongly_typed_json_is_a_gap_for_that_account_only(tmp_path: Any) -> None:
    """A service answering with the wrong JSON types (a number for a name, a list for an object) for one mailbox:
    that account's collection is listed as not read; the 19 other accounts of its $batch chunk are read normally."""
    from scanner.simulator import SimOptions, create_app, generate_tenant
    from tests.reliability.helpers import MangleJson, env_for, gaps_of, scan, snapshot

    victim, other = "megan.bowen@contoso.com", "alex.wilber@contoso.com"
    tenant = generate_tenant(users=40, seed=7, scenarios=True)
    uid = tenant.user(victim).id

    def mangle(doc: dict[str, Any]) -> dict[str, Any]:
        for rule in doc.get("value") or []:
            rule["displayName"], rule["conditions"], rule["actions"] = 12345, ["not", "an", "object"], "x@y"
        return doc

    u = tenant.user(other)
    u.jobTitle = {"nested": ["object"]}
    tenant.mark_dirty(u)
    app = create_app(tenant, SimOptions())
    env = env_for(tmp_path, tenant, app, asgi=MangleJson(app, f"users('{uid}')/mailFolders('inbox')/messageRules",
                                                         mangle))
    result = await scan(env)
    assert result.exit_code == 3
    victim_gaps = [e["message"] for e in result.errors if e["upn"] == victim and e["collector"] == "inbox_rules"]
    assert any("unexpected data from the service" in m for m in victim_gaps), victim_gaps
    assert "user" in gaps_of(result, other) or snapshot(env, result, other).user.job_title is None
    assert snapshot(env, result, victim).status("auth_methods") == "collected"
    assert [e for e in result.errors if e["upn"] not in (victim, other)] == []
    assert result.accounts_scanned == tenant.user_count
