"""Evaluation of the catalogue + verdict over the labelled case set in ``cases/`` (used by the benchmark and tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.detectors.builders import evaluate_spec

CASES_DIR = Path(__file__).parent / "cases"


def load_cases(pattern: str = "*.json") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in sorted(CASES_DIR.glob(pattern)):
        out.extend(json.loads(p.read_text()))
    return out


@dataclass
class EvalReport:
    malicious: int = 0
    malicious_flagged: int = 0  # verdict != clean
    malicious_compromised: int = 0
    benign_lookalike: int = 0
    benign: int = 0
    benign_compromised: list[str] = field(default_factory=list)
    plain_clean: int = 0
    lookalike_clean: int = 0
    techniques_expected: int = 0
    techniques_found: int = 0
    missed: list[str] = field(default_factory=list)
    missed_techniques: list[str] = field(default_factory=list)
    # Cases that carry an ``expected`` verdict (independent.json): how many, and which disagree ("name: exp -> got").
    verdicts_expected: int = 0
    verdict_mismatches: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.malicious_flagged / self.malicious if self.malicious else 1.0

    @property
    def plain_clean_rate(self) -> float:
        return self.plain_clean / self.benign if self.benign else 1.0

    @property
    def technique_recall(self) -> float:
        return self.techniques_found / self.techniques_expected if self.techniques_expected else 1.0


def run(cases: list[dict[str, Any]] | None = None) -> EvalReport:
    rep = EvalReport()
    for case in load_cases() if cases is None else cases:
        res = evaluate_spec(case["spec"])
        label = case["label"]
        techniques = set()
        for f in res.findings:
            if f.suppressed is None:
                techniques.add(f.technique)
                also = f.evidence.get("also_technique")
                if isinstance(also, str):
                    techniques.add(also)
        rep.rows.append({"name": case["name"], "label": label, "verdict": res.verdict, "score": res.score,
                         "detectors": sorted({f.detector for f in res.findings if f.suppressed is None})})
        if "expected" in case:
            rep.verdicts_expected += 1
            if res.verdict != case["expected"]:
                rep.verdict_mismatches.append(f"{case['name']}: expected {case['expected']}, got {res.verdict}")
        if label == "malicious":
            rep.malicious += 1
            rep.malicious_flagged += res.verdict != "clean"
            rep.malicious_compromised += res.verdict == "compromised"
            if res.verdict == "clean":
                rep.missed.append(case["name"])
            for t in case.get("techniques", []):
                rep.techniques_expected += 1
                if t in techniques:
                    rep.techniques_found += 1
                else:
                    rep.missed_techniques.append(f"{case['name']}: {t}")
        else:
            if res.verdict == "compromised":
                rep.benign_compromised.append(case["name"])
            if label == "benign":
                rep.benign += 1
                rep.plain_clean += res.verdict == "clean"
            else:
                rep.benign_lookalike += 1
                rep.lookalike_clean += res.verdict == "clean"
    return rep
