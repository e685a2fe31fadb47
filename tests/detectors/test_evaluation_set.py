"""The labelled evaluation set: the hard safety property and the recall floor (targets from issue 4)."""

from __future__ import annotations

from tests.detectors.evaluation import load_cases, run


def test_case_set_shape() -> None:
    cases = load_cases()
    assert len(cases) >= 60
    lookalikes = [c for c in cases if c["label"] == "benign_lookalike"]
    assert len(lookalikes) * 2 >= len(cases), "at least half of the accounts must be benign look-alikes"
    for c in cases:
        assert c["label"] in ("malicious", "benign_lookalike", "benign")
        assert c["source"].startswith("https://") or ": " in c["source"], c["name"]
        if c["label"] == "malicious":
            assert c["techniques"], c["name"]


def test_no_benign_account_is_ever_compromised_and_recall_holds() -> None:
    rep = run()
    assert rep.benign_compromised == [], "auto-remediation would act on benign accounts"
    assert rep.recall >= 0.95, rep.missed
    assert rep.plain_clean_rate >= 0.85
    assert rep.technique_recall >= 0.9, rep.missed_techniques
