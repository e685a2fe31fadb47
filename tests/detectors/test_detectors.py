"""Every detector fires on its case and stays silent on the benign look-alikes (cases in detector_cases.py)."""

from __future__ import annotations

import pytest

from detectors.engine import catalogue, run_detectors
from tests.detectors.builders import account_from_spec, context_for
from tests.detectors.detector_cases import CASES

BY_ID = {d.meta.id: d for d in catalogue()}


@pytest.mark.parametrize(("detector", "name", "spec", "expected"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_detector_case(detector: str, name: str, spec: dict, expected: object) -> None:
    acc = account_from_spec(spec)
    findings, gaps = run_detectors(acc, context_for(spec, acc), [BY_ID[detector]])
    assert gaps == []
    if expected is False:
        assert findings == [], f"{name}: unexpected {[f.evidence for f in findings]}"
        return
    assert findings, f"{name}: {detector} did not fire"
    f = findings[0]
    assert f.detector == detector and f.account == acc.upn
    if expected == "suppressed":
        assert all(x.suppressed for x in findings)
    else:
        assert any(x.suppressed is None and x.score > 0 for x in findings)
        assert f.evidence, "evidence must be renderable"


def test_failed_collection_is_a_gap_not_clean() -> None:
    spec = {"not_collected": ["inbox_rules", "auth_methods"], "forwarding": {"forwarding_smtp_address": "x@gmail.com"}}
    acc = account_from_spec(spec)
    findings, gaps = run_detectors(acc, context_for(spec, acc), catalogue())
    gap_detectors = {g.detector for g in gaps}
    assert "mail.inbox_rule_external_forward" in gap_detectors and "auth.new_method" in gap_detectors
    assert {g.collection for g in gaps} >= {"inbox_rules", "auth_methods"}
    assert any(f.detector == "mail.mailbox_external_forward" for f in findings)


def test_hidden_folder_move_needs_folders() -> None:
    spec = {"not_collected": ["folders"], "rules": [{"actions": {"moveToFolder": "f-rss"}}]}
    acc = account_from_spec(spec)
    findings, gaps = run_detectors(acc, context_for(spec, acc), [BY_ID["mail.inbox_rule_hidden_folder_move"]])
    assert findings == [] and [g.collection for g in gaps] == ["folders"]


def _only(detector: str, spec: dict) -> list:
    acc = account_from_spec(spec)
    findings, gaps = run_detectors(acc, context_for(spec, acc), [BY_ID[detector]])
    assert gaps == []
    return findings


@pytest.mark.parametrize(("trustee", "address", "right", "severity", "score"), [
    ("Temp IT 02", "it-temp02@contoso.com", "FullAccess", "medium", 20),  # read-everything granted overnight
    ("Bob", "bob@contoso.com", "SendAs", "medium", 20),
    ("Helpdesk Ops", "hd-ops@contoso.com", "FullAccess", "low", 10),  # §F1: help-desk identity
    ("Pat Assistant", "pat.assistant@contoso.com", "FullAccess", "low", 10),  # §F1: assistant
    ("Pat", "pat@contoso.com", "SendOnBehalf", "low", 10),  # visible "on behalf of"
])
def test_new_internal_delegate_is_rated_by_right_and_trustee(trustee: str, address: str, right: str, severity: str,
                                                             score: int) -> None:
    (f,) = _only("delegates.new_mailbox_delegate", {"has_previous": True, "delegates": [
        {"trustee": trustee, "trustee_address": address, "access_right": right}]})
    assert (f.severity.label, f.score) == (severity, score)


@pytest.mark.parametrize(("sent", "history", "score"), [
    (1400, [28, 35, 31, 26, 30], 25),  # ≥ 20× and ≥ 1,000: a human should look on its own
    (900, [100, 120, 90], 15),  # an invitation burst (9×): corroboration only
    (6000, [], 25),  # near the service limits without history
])
def test_volume_spike_scales_with_the_distance_from_baseline(sent: int, history: list[int], score: int) -> None:
    (f,) = _only("sending.volume_spike", {"sending": {"sent_last_24h": sent}, "sent_history": history})
    assert f.score == score and f.evidence["large"] is (score == 25)


@pytest.mark.parametrize(("app", "technique", "also"), [
    ("PerfectData Software", "T1114.002", "T1528"),
    ("Newsletter Software SuperMailer", "T1534", "T1528"),
    ("eM Client", "T1528", None),
])
def test_known_bec_tool_always_carries_t1528(app: str, technique: str, also: str | None) -> None:
    (f,) = _only("oauth.known_bec_tool", {"grants": [{"app_display_name": app, "scopes": ["Mail.ReadWrite"]}]})
    assert (f.technique, f.evidence.get("also_technique")) == (technique, also)
