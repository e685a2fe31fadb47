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
