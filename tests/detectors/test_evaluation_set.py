"""The labelled evaluation set: the hard safety property and the recall floor (targets from issue 4).

``independent.json`` (written from detections.md and public write-ups without reading the detectors) is held to the
same targets on its own, so the shared set cannot carry it, and to its per-case ``expected`` verdicts.
"""

from __future__ import annotations

import pytest

from tests.detectors.evaluation import load_cases, run

VERDICTS = ("compromised", "suspicious", "clean")


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


@pytest.fixture(scope="module")
def independent() -> list[dict]:
    return load_cases("independent.json")


def test_independent_set_shape(independent: list[dict]) -> None:
    assert len(independent) >= 40
    labels = [c["label"] for c in independent]
    assert labels.count("malicious") >= 20 and labels.count("benign_lookalike") >= 20
    assert len({c["name"] for c in independent}) == len(independent)
    for c in independent:
        assert c["expected"] in VERDICTS, c["name"]
        if c["label"] == "malicious":
            assert c["techniques"] and c["expected"] != "clean", c["name"]
        else:
            assert c["expected"] != "compromised", c["name"]


def test_independent_set_meets_the_same_targets(independent: list[dict]) -> None:
    rep = run(independent)
    assert rep.malicious >= 20 and rep.benign_lookalike >= 20 and rep.benign >= 1
    assert rep.benign_compromised == [], "auto-remediation would act on benign accounts"
    assert rep.recall >= 0.95, rep.missed
    assert rep.plain_clean_rate >= 0.85
    assert rep.technique_recall >= 0.9, rep.missed_techniques


def test_independent_set_expected_verdicts(independent: list[dict]) -> None:
    rep = run(independent)
    assert rep.verdicts_expected == len(independent)
    assert rep.verdict_mismatches == []
