"""Meta-tests over the whole catalogue (Sigma/pySigma-style validators)."""

from __future__ import annotations

import importlib
import re

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.cli import detectors_command
from detectors.engine import catalogue, run_detectors
from scanner.config import STEP_NAMES
from scanner.snapshot import COLLECTIONS, USER
from tests.detectors.builders import account_from_spec, clean_account, context_for
from tests.detectors.detector_cases import CASES

ALLOWED_TECHNIQUES = {"T1114.003", "T1564.008", "T1098.005", "T1556.006", "T1098.003", "T1098.002", "T1528",
                      "T1114.002", "T1534", "T1078.004", "T1098"}
CAT = catalogue()


def test_catalogue_is_complete_and_sorted() -> None:
    ids = [d.meta.id for d in CAT]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert len(ids) >= 25


def test_ids_equal_module_paths_and_metadata_is_complete() -> None:
    for d in CAT:
        m = d.meta
        assert d.module == f"detectors.{m.id}", m.id
        assert re.fullmatch(r"T\d{4}(\.\d{3})?", m.technique) and m.technique in ALLOWED_TECHNIQUES, m.id
        assert m.title and not m.title.lower().startswith("ensure"), m.id
        assert m.rationale and m.false_positives and m.remediation, m.id
        assert set(m.remediation) <= set(STEP_NAMES), m.id
        assert set(m.requires) <= set(COLLECTIONS) | {USER}, m.id
        doc = importlib.import_module(d.module).__doc__ or ""
        assert "Sees" in doc and "Misses" in doc, f"{m.id}: docstring must say what it sees and misses"


def test_every_detector_has_a_firing_and_a_silent_case() -> None:
    fires = {c[0] for c in CASES if c[3] is True}
    silent = {c[0] for c in CASES if c[3] is False}
    ids = {d.meta.id for d in CAT}
    assert ids - fires == set(), "detectors without a firing case"
    assert ids - silent == set(), "detectors without a silent case"
    assert {c[0] for c in CASES} <= ids


def test_cli_lists_catalogue() -> None:
    r = CliRunner().invoke(detectors_command, [])
    assert r.exit_code == 0
    for d in CAT:
        assert d.meta.id in r.output
    r = CliRunner().invoke(detectors_command, ["--json"])
    assert r.exit_code == 0 and '"technique": "T1114.003"' in r.output


# ---- fuzz: hostile but well-typed snapshots never crash a detector ------------------------------------------------
_hostile_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**9) | st.floats(allow_nan=True) | _hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_hostile_text, inner, max_size=4), max_leaves=10)
_keys = st.sampled_from(["subjectContains", "bodyContains", "bodyOrSubjectContains", "fromAddresses",
                         "senderContains", "withinSizeRange", "isNonDeliveryReport", "headerContains", "forwardTo",
                         "redirectTo", "forwardAsAttachmentTo", "moveToFolder", "copyToFolder", "delete",
                         "permanentDelete", "markAsRead", "x"])
_dict = st.dictionaries(_keys, _value, max_size=5)


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_hostile_text, conditions=_dict, actions=_dict, fwd=_hostile_text, phone=_hostile_text,
       app=_hostile_text, scopes=st.lists(_hostile_text, max_size=3), trustee=_hostile_text,
       sent=st.integers(-5, 10**7), hist=st.lists(st.integers(-5, 10**6), max_size=5))
def test_detectors_never_crash_on_hostile_snapshots(name, conditions, actions, fwd, phone, app, scopes, trustee,
                                                    sent, hist) -> None:
    from scanner.snapshot import AuthMethod, Delegate, InboxRule, MailboxForwarding, OAuthGrant, SendingStatus

    base = clean_account()
    acc = base.model_copy(update={
        "inbox_rules": (InboxRule(id=name or "r", display_name=name, conditions=conditions, actions=actions,
                                  hidden=bool(sent % 2)),),
        "forwarding": MailboxForwarding(forwarding_smtp_address=fwd, forwarding_address=fwd,
                                        deliver_to_mailbox_and_forward=bool(sent % 3)),
        "auth_methods": (AuthMethod(id=phone or "m", method_type="phoneAuthenticationMethod", phone_number=phone,
                                    email_address=fwd),),
        "oauth_grants": (OAuthGrant(id="g", client_id=app or "c", app_display_name=app, scopes=tuple(scopes)),),
        "delegates": (Delegate(trustee=trustee, access_right=trustee or "FullAccess", trustee_address=fwd),),
        "sending": SendingStatus(blocked_from_sending=bool(sent % 5 == 0), sent_last_24h=sent),
        "user": base.user.model_copy(update={"other_mails": (fwd,), "mobile_phone": phone, "display_name": name}),
    })
    spec = {"has_previous": True, "sent_history": hist, "protected": ["alice@contoso.com"] if sent % 7 == 0 else []}
    ctx = context_for(spec, acc)
    findings, gaps = run_detectors(acc, ctx, CAT)
    assert [g for g in gaps if g.collection == "detector"] == [], gaps
    for f in findings:
        assert f.to_json()["detector"] == f.detector


def test_spec_builder_roundtrip() -> None:
    acc = account_from_spec({"rules": [{"actions": {"forwardTo": ["x@gmail.com"]}}]})
    assert acc.inbox_rules[-1].actions["forwardTo"][0]["emailAddress"]["address"] == "x@gmail.com"
