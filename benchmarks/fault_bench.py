"""Sweep a simulated tenant under random faults and Microsoft's throttling, and account for every mailbox:

    accounts read      stored with every collection read (no gap)
    accounts with gaps stored, but one or more collections named as not read (with the reason)
    accounts not read  not stored, named in the errors (e.g. a whole $batch chunk failed)
    accounts lost      neither stored nor named anywhere — must be 0

The simulator runs in a separate process (``m365sweep simulate --fault-rate 0.05 --throttle``): 5 % of requests
fail at random (503/504 with Retry-After, connection resets, malformed and truncated JSON), on top of throttling.
Prints figures only; never passes or fails on time. Exit status 1 when any account is lost.

    python benchmarks/fault_bench.py [--users 10000] [--fault-rate 0.05] [--latency-ms 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_simulator(users: int, latency_ms: int, fault_rate: float, seed: int) -> tuple[subprocess.Popen[str],
                                                                                        dict[str, str]]:
    exe = shutil.which("m365sweep")
    cmd = [exe] if exe else [sys.executable, "-c", "from scanner.cli import main; main()"]
    cmd += ["simulate", "--port", "0", "--users", str(users), "--seed", str(seed), "--latency-ms", str(latency_ms),
            "--throttle", "--fault-rate", str(fault_rate)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("graph="):
        proc.terminate()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, dict(part.split("=", 1) for part in line.split())


async def sweep(info: dict[str, str], db: Path, concurrency: int) -> object:
    from scanner.config import parse_config
    from scanner.graph.factory import StaticTokenCredential
    from scanner.sweep import run_scan

    cfg = parse_config({
        "tenant": {"tenant_id": info["tenant"]},
        "auth": {"method": "access_token"},
        "endpoints": {"graph": info["graph"], "exchange": info["exchange"]},
        "storage": {"database": str(db)},
        "scan": {"concurrency": concurrency},
    })
    cred = StaticTokenCredential(graph=info["graph_token"], exchange=info["exchange_token"])
    return await run_scan(cfg, credential=cred, out_dir=None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--fault-rate", type=float, default=0.05)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from scanner.simulator import generate_tenant
    from scanner.store import Store

    # The same seed and size regenerate the served tenant's directory: the ground truth of who must be accounted for.
    expected = {u.userPrincipalName.lower() for u in generate_tenant(users=args.users, seed=args.seed).iter_users()}
    proc, info = start_simulator(args.users, args.latency_ms, args.fault_rate, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="m365sweep-faultbench-"))
    try:
        t0 = time.monotonic()
        result = asyncio.run(sweep(info, tmp / "bench.db", args.concurrency))
        wall = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with Store(tmp / "bench.db") as store:
        stored = {a["upn"].lower(): a for a in store.accounts(result.scan_id)}  # type: ignore[attr-defined]
    errors = result.errors  # type: ignore[attr-defined]
    named = collections.defaultdict(set)
    for e in errors:
        if e["upn"]:
            named[e["upn"].lower()].add(e["collector"])
    tenant_wide = sorted({e["collector"] for e in errors if not e["upn"]})
    read = {u for u in stored if u not in named}
    with_gaps = {u for u in stored if u in named}
    not_read = {u for u in named if u not in stored}
    lost = expected - set(stored) - set(named)
    # Without a tenant-wide "users" gap, every directory user must have been listed.
    if "users" in tenant_wide:
        print("note: the user list itself was incomplete (a 'users' gap is reported)")
    by_collector = collections.Counter(c for cs in named.values() for c in cs)
    stats = result.stats  # type: ignore[attr-defined]
    print(f"tenant users          {len(expected)}")
    print(f"fault rate / throttle {args.fault_rate:.0%} / on   latency {args.latency_ms} ms")
    print(f"wall seconds          {wall:.1f}")
    print(f"accounts read         {len(read)}")
    print(f"accounts with gaps    {len(with_gaps)} (stored; the unread collections are listed)")
    print(f"accounts not read     {len(not_read)} (listed in the errors)")
    print(f"accounts reported as gaps  {len(with_gaps) + len(not_read)}")
    print(f"accounts lost         {len(lost)}")
    print(f"tenant-wide gaps      {', '.join(tenant_wide) or 'none'}")
    for e in errors:
        if not e["upn"]:
            print(f"  {e['collector']}: {e['message'][:160]}")
    print(f"gaps by collector     {dict(by_collector.most_common())}")
    print(f"http requests         {stats['http_requests']}  retries {stats['retries']}  429s {stats['throttled']}  "
          f"5xx {stats['server_errors']}")
    print(f"exit code             {result.exit_code}")  # type: ignore[attr-defined]
    if lost:
        print("lost (first 10):", ", ".join(sorted(lost)[:10]))
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
