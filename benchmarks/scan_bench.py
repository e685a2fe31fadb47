"""Sweep a simulated tenant (default 10,000 mailboxes, 30 ms latency, Microsoft's throttling) and print figures:
mailboxes/s, HTTP requests, 429s, client CPU seconds, peak RSS. Prints figures only; never passes or fails on time.

The simulator runs in a separate process (``m365sweep simulate``) so its CPU is not counted as the client's.

    python benchmarks/scan_bench.py [--users 10000] [--latency-ms 30] [--no-throttle] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_simulator(users: int, latency_ms: int, throttle: bool, seed: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    exe = shutil.which("m365sweep")
    cmd = [exe] if exe else [sys.executable, "-c", "from scanner.cli import main; main()"]
    cmd += ["simulate", "--port", "0", "--users", str(users), "--seed", str(seed), "--latency-ms", str(latency_ms)]
    if throttle:
        cmd.append("--throttle")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # noqa: S603
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--latency-ms", type=int, default=30)
    ap.add_argument("--no-throttle", action="store_true")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    proc, info = start_simulator(args.users, args.latency_ms, not args.no_throttle, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="m365sweep-bench-"))
    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        result = asyncio.run(sweep(info, tmp / "bench.db", args.concurrency))
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    stats = result.stats  # type: ignore[attr-defined]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    n = result.accounts_scanned  # type: ignore[attr-defined]
    print(f"tenant users          {args.users}")
    print(f"latency / throttle    {args.latency_ms} ms / {'on' if not args.no_throttle else 'off'}")
    print(f"accounts scanned      {n}")
    print(f"wall seconds          {wall:.1f}")
    print(f"mailboxes/s           {n / wall:.1f}")
    print(f"http requests         {stats['http_requests']} (graph {stats['by_service'].get('graph', 0)}, "
          f"exchange {stats['by_service'].get('exchange', 0)})")
    print(f"logical requests      {stats['logical_requests']}")
    print(f"429 responses         {stats['throttled']}")
    print(f"retries               {stats['retries']}")
    print(f"coverage gaps         {len(result.errors)}")  # type: ignore[attr-defined]
    print(f"client cpu seconds    {cpu:.1f}")
    print(f"peak rss MiB          {peak_kb / 1024:.0f}")
    print(f"database MiB          {os.path.getsize(tmp / 'bench.db') / 2**20:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
