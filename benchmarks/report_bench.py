"""Report rendering at scale: a store with N synthetic accounts (default 100,000), ~1 % flagged, rendered to
report.html / findings.json / findings.csv. Prints build time, render time and file sizes (target: render <= 30 s).

    python benchmarks/report_bench.py [--accounts 100000] [--flagged-pct 1.0] [--out DIR]

Rows go in through Store methods (put_accounts, put_findings, set_verdict, add_error, journal_append), like a scan.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from reports import write_outputs
from scanner.snapshot import AccountSnapshot, MailboxForwarding, NotCollected, User
from scanner.store import Store

TENANT = "00000000-0000-0000-0000-00000000beef"


def build(db: Path, n: int, flagged_pct: float, seed: int = 7) -> str:
    rnd = random.Random(seed)
    store = Store(db)
    scan_id = store.begin_scan(TENANT)
    store.set_tenant(scan_id, {"tenant_id": TENANT, "display_name": "Bench Corp", "default_domain": "bench.example"})
    n_flagged = int(n * flagged_pct / 100)
    flagged = set(rnd.sample(range(n), n_flagged))
    batch: list[AccountSnapshot] = []
    findings: list[dict] = []
    for i in range(n):
        upn = f"user{i:06d}@bench.example"
        fwd: MailboxForwarding | NotCollected = MailboxForwarding()
        if i % 997 == 0:
            fwd = NotCollected(reason="Access denied", code="ErrorAccessDenied")
        batch.append(AccountSnapshot(user=User(id=f"id-{i}", user_principal_name=upn, display_name=f"User {i}",
                                               mailbox_type="UserMailbox", on_premises_sync_enabled=i % 3 == 0),
                                     forwarding=fwd, inbox_rules=()))
        if i in flagged:
            findings.append({
                "id": f"f{i:06d}a", "account": upn, "detector": "mail.inbox_rule_external_forward",
                "technique": "T1114.003", "severity": rnd.choice(["high", "critical"]),
                "title": "Inbox rule forwards mail to an external address", "new_since_last_scan": True,
                "evidence": {"rule_name": ".", "conditions": "bodyOrSubjectContains 'invoice', 'payment'",
                             "actions": f"forward to x{i}@gmail.com (freemail); mark as read",
                             "destinations": [{"destination": f"x{i}@gmail.com", "domain_class": "freemail"}]},
                "artefact": f"rule:{i}", "score": 50})
            findings.append({
                "id": f"f{i:06d}b", "account": upn, "detector": "auth.new_method", "technique": "T1098.005",
                "severity": "medium", "title": "New authentication method", "new_since_last_scan": True,
                "evidence": {"method_type": "phoneAuthenticationMethod", "method": "phone +1 555 0100"},
                "artefact": f"m:{i}", "score": 15})
        if len(batch) >= 2000:
            store.put_accounts(scan_id, batch)
            batch = []
    store.put_accounts(scan_id, batch)
    store.put_findings(scan_id, findings)
    started = store.scan(scan_id)["started"]
    store.record_history(scan_id, started, findings)
    with store.db.conn:
        for i in flagged:
            store.set_verdict(scan_id, f"user{i:06d}@bench.example", "compromised", 65, ["forward + new method"],
                              False)
        for i in range(0, n, 997):
            store.add_error(scan_id, f"user{i:06d}@bench.example", "forwarding", "Access denied",
                            "ErrorAccessDenied")
    for i in list(flagged)[:20]:
        store.journal_append({"upn": f"user{i:06d}@bench.example", "step": "disable_rules", "status": "applied",
                              "scan_id": scan_id, "target": "rule ."})
    store.finish_scan(scan_id, "partial")
    store.close()
    return scan_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--flagged-pct", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="m365sweep-report-bench-"))
    out = args.out or work / "out"
    t0 = time.perf_counter()
    scan_id = build(work / "bench.db", args.accounts, args.flagged_pct)
    t1 = time.perf_counter()
    store = Store(work / "bench.db")
    paths = write_outputs(store, scan_id, out)
    t2 = time.perf_counter()
    store.close()
    print(f"accounts={args.accounts} flagged={int(args.accounts * args.flagged_pct / 100)} "
          f"build={t1 - t0:.1f}s render_all_outputs={t2 - t1:.1f}s (target <= 30 s)")
    for kind, p in paths.items():
        print(f"  {kind:5s} {p.stat().st_size / 1e6:8.2f} MB  {p}")


if __name__ == "__main__":
    main()
