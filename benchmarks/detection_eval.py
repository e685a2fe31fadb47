"""Detection quality over the labelled evaluation set (tests/detectors/cases/*.json).

Prints malicious recall (verdict not clean), malicious rated compromised, benign accounts rated compromised (must be
zero: auto-remediation acts on that verdict), plain-benign accounts rated clean, and technique recall.
Run: ``python benchmarks/detection_eval.py [-v]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.detectors.evaluation import run  # noqa: E402


def main(argv: list[str]) -> int:
    rep = run()
    total = rep.malicious + rep.benign_lookalike + rep.benign
    print(f"cases: {total} (malicious {rep.malicious}, benign look-alikes {rep.benign_lookalike}, "
          f"plain benign {rep.benign})")
    print(f"malicious recall (not clean):        {rep.recall:.3f}  ({rep.malicious_flagged}/{rep.malicious})")
    print(f"malicious rated compromised:         {rep.malicious_compromised}/{rep.malicious}")
    print(f"benign accounts rated compromised:   {len(rep.benign_compromised)}")
    print(f"plain-benign rated clean:            {rep.plain_clean_rate:.3f}  ({rep.plain_clean}/{rep.benign})")
    print(f"benign look-alikes rated clean:      {rep.lookalike_clean}/{rep.benign_lookalike}")
    print(f"technique recall:                    {rep.technique_recall:.3f}  "
          f"({rep.techniques_found}/{rep.techniques_expected})")
    if rep.verdicts_expected:
        agree = rep.verdicts_expected - len(rep.verdict_mismatches)
        print(f"expected verdict matched:            {agree}/{rep.verdicts_expected}  (cases with an 'expected' verdict)")
    for name in rep.benign_compromised:
        print(f"  BENIGN COMPROMISED: {name}")
    for name in rep.missed:
        print(f"  missed: {name}")
    for t in rep.missed_techniques:
        print(f"  technique missed: {t}")
    for m in rep.verdict_mismatches:
        print(f"  verdict differs: {m}")
    if "-v" in argv:
        for r in rep.rows:
            print(f"  [{r['label']:<16}] {r['verdict']:<11} {r['score']:>4}  {r['name']}  {r['detectors']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
