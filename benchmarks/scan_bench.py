"""Sweep a simulated tenant (default 10,000 mailboxes, 30 ms latency, Microsoft's throttling) and print figures:
mailboxes/s, requests by throttle class, 429s, client CPU (per logical request), peak RSS, the throttling floor for
the request mix the sweep made and the ratio actual / floor, and the same work done "per-mailbox script" style (one
mailbox at a time, one request at a time) on a sample, extrapolated. Prints figures only; never passes or fails.

The simulator runs in a separate process (``m365sweep simulate``) so its CPU is not counted as the client's.

    python benchmarks/scan_bench.py [--users 10000] [--latency-ms 30] [--no-throttle] [--concurrency 16]
                                    [--script-sample 2000] [--exchange-concurrency 16] [--outputs] [--incremental]

--incremental: after the full sweep, a second sweep of the same (unchanged) tenant with ``[scan] incremental = true``
(the nightly mode: authentication methods re-read only where the registration report changed), with its own figures
and floor. Its findings are compared with the full sweep's (same accounts, detectors and severities).

The floor (see benchmarks/README.md) is the largest of the times the simulator's enforced limits allow for the
requests the sweep made, assuming perfect overlap of everything else:
  reports     5 requests / 10 s per app+tenant         -> (ceil(n_reports / 5) - 1) * 10 s
  directory   8,000 RU / 10 s (tenant > 500 users)     -> (RU - 8,000) / 800 s  (RU costed by the simulator's rules)
  outlook     4 concurrent + 10,000 / 10 min per mailbox: per mailbox, not tenant-wide -> the busiest mailbox only
  global      130,000 requests / 10 s per app          -> n_graph / 13,000 s
  exchange    no published limit; ASSUMED at most --exchange-concurrency cmdlets in flight -> n_ex * latency / C
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


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


FAST_EXCHANGE = False  # --fast-exchange-transport: [scan] fast_exchange_transport (opt-in, see README)


def bench_config(info: dict[str, str], db: Path, concurrency: int, incremental: bool = False) -> Any:
    from scanner.config import parse_config

    return parse_config({
        "tenant": {"tenant_id": info["tenant"]},
        "auth": {"method": "access_token"},
        "endpoints": {"graph": info["graph"], "exchange": info["exchange"]},
        "storage": {"database": str(db)},
        "scan": {"concurrency": concurrency, "fast_exchange_transport": FAST_EXCHANGE, "incremental": incremental},
    })


def credential(info: dict[str, str]) -> Any:
    from scanner.graph.factory import StaticTokenCredential

    return StaticTokenCredential(graph=info["graph_token"], exchange=info["exchange_token"])


class RuMeter:
    """Costs every logical Graph request with the simulator's published-limits model (resource units)."""

    def __init__(self) -> None:
        from scanner.simulator.throttle import resource_units

        self._cost = resource_units
        self.ru = 0
        self.per_mailbox: Counter[str] = Counter()

    def __call__(self, method: str, url: str, scope: str) -> None:
        from urllib.parse import parse_qsl, urlsplit

        if scope.startswith("mailbox:"):
            self.per_mailbox[scope] += 1
            return
        if scope != "directory":
            return
        parts = urlsplit(url)
        path = parts.path.split("/v1.0", 1)[-1]
        self.ru += self._cost(method, path, dict(parse_qsl(parts.query)))


async def sweep(info: dict[str, str], db: Path, concurrency: int, meter: RuMeter, incremental: bool = False) -> Any:
    from scanner.graph import factory
    from scanner.sweep import run_scan

    real_connect = factory.connect

    def connect(*a: Any, **kw: Any) -> Any:  # attach the RU meter to the connection the sweep builds
        conn = real_connect(*a, **kw)
        conn.stats.observer = meter
        return conn

    factory.connect = connect
    try:
        return await run_scan(bench_config(info, db, concurrency, incremental), credential=credential(info))
    finally:
        factory.connect = real_connect


async def script_style(info: dict[str, str], db: Path, sample: int) -> tuple[int, float, int]:
    """The per-mailbox-script way: for each mailbox, each read in turn (no $batch, nothing concurrent)."""
    from scanner.collectors.account import _sent_filter
    from scanner.collectors.folders import FOLDER_LIST_PARAMS, FOLDER_SELECT, rule_folder_ids
    from scanner.collectors.users import USER_SELECT
    from scanner.graph.client import ApiError
    from scanner.graph.factory import connect

    cfg = bench_config(info, db, 1)
    conn = connect(cfg, credential=credential(info), concurrency=1)
    since = datetime.now(UTC) - timedelta(hours=24)
    n = 0
    try:
        users = []  # Graph pages /users by at most 999
        async for page in conn.graph.iter_pages("/users", params={"$select": ",".join(USER_SELECT), "$top": 999}):
            users.extend(page)
            if len(users) >= sample:
                break
        users = users[:sample]
        t0 = time.monotonic()
        for u in users:
            uid, upn = u["id"], u["userPrincipalName"]
            mb = f"mailbox:{uid}"

            async def get(path: str, scope: str) -> Any:
                try:
                    return await conn.graph.get_json(path, scope=scope)
                except ApiError:
                    return None

            await get(f"/users/{uid}/authentication/methods", "directory")
            rules = await get(f"/users/{uid}/mailFolders/inbox/messageRules", mb)
            listed = await get(f"/users/{uid}/mailFolders?{FOLDER_LIST_PARAMS}", mb)
            await get(f"/users/{uid}/mailFolders/sentitems/messages?{_sent_filter(since)}", mb)
            # the same folder work as the sweep: targets the list lacks are fetched by id (well-known names come
            # from the list's English default names in this simulated tenant)
            known = {f.get("id") for f in (listed or {}).get("value") or []}
            moves = rule_folder_ids((rules or {}).get("value") or []) - known
            for fid in sorted(moves):
                await get(f"/users/{uid}/mailFolders/{fid}?$select={FOLDER_SELECT}", mb)
            for cmdlet, params in (("Get-InboxRule", {"Mailbox": upn, "IncludeHidden": True}),
                                   ("Get-MailboxPermission", {"Identity": upn})):
                try:
                    await conn.exchange.invoke(cmdlet, params)
                except ApiError:
                    pass
            n += 1
        return n, time.monotonic() - t0, conn.stats.http_requests
    finally:
        await conn.aclose()


def floor_seconds(by_class: dict[str, int], ru: int, graph_http_logical: int, n_exchange: int, latency_s: float,
                  ex_conc: int, busiest_mailbox: int) -> dict[str, float]:
    from scanner.simulator.throttle import DIRECTORY_WINDOW_S, REPORTS_REQUESTS, REPORTS_WINDOW_S

    budget = 8000  # > 500 users (the simulator's directory_budget for tenants this size)
    n_reports = by_class.get("reports", 0)
    return {
        "reports": max(0, math.ceil(n_reports / REPORTS_REQUESTS) - 1) * REPORTS_WINDOW_S + latency_s,
        "directory": max(0.0, (ru - budget) / (budget / DIRECTORY_WINDOW_S)),
        "outlook": math.ceil(busiest_mailbox / 4) * latency_s,
        "global": graph_http_logical / 13_000,
        "exchange": n_exchange * latency_s / ex_conc,
    }


def request_cpu(n_users: int = 320) -> None:
    """Client CPU of the request path alone (thread time of the client thread; the simulator is served from another
    thread, latency 0): a $batch sub-request (20 per POST) and an Exchange cmdlet, as the sweep sends them."""
    from scanner.config import parse_config
    from scanner.graph.client import BatchItem
    from scanner.graph.factory import StaticTokenCredential, connect
    from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant

    tenant = generate_tenant(users=n_users + 80, seed=1)
    users = [u for u in tenant.iter_users() if u.mailbox is not None][:n_users]
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv, tempfile.TemporaryDirectory() as tmp:
        async def run(fast: bool) -> None:
            cfg = parse_config({"tenant": {"tenant_id": srv.tenant_id}, "auth": {"method": "access_token"},
                                "endpoints": {"graph": srv.graph_url, "exchange": srv.exchange_url},
                                "storage": {"database": str(Path(tmp) / "x.db")},
                                "scan": {"fast_exchange_transport": fast}})
            conn = connect(cfg, credential=StaticTokenCredential(graph=srv.graph_token, exchange=srv.exchange_token))
            try:
                items = [BatchItem(id=u.id, url=f"/users/{u.id}/mailFolders/inbox/messageRules",
                                   scope=f"mailbox:{u.id}") for u in users]
                await conn.graph.batch(items[:20])  # warm-up
                c0 = time.thread_time()
                for i in range(0, len(items), 20):
                    await conn.graph.batch(items[i:i + 20])
                print(f"graph $batch sub-request   {(time.thread_time() - c0) / len(items) * 1000:.3f} ms client CPU")
                sem = asyncio.Semaphore(16)

                async def one(upn: str) -> None:
                    async with sem:
                        await conn.exchange.invoke("Get-MailboxPermission", {"Identity": upn})

                await asyncio.gather(*(one(u.userPrincipalName) for u in users[:20]))
                c0 = time.thread_time()
                await asyncio.gather(*(one(u.userPrincipalName) for u in users))
                print(f"exchange cmdlet ({'lean ' if fast else 'httpx'})    "
                      f"{(time.thread_time() - c0) / len(users) * 1000:.3f} ms client CPU")
            finally:
                await conn.aclose()

        asyncio.run(run(False))
        asyncio.run(run(True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--latency-ms", type=int, default=30)
    ap.add_argument("--no-throttle", action="store_true")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--exchange-concurrency", type=int, default=16,
                    help="assumed Exchange admin API concurrency for the floor (no published limit)")
    ap.add_argument("--script-sample", type=int, default=2000, help="mailboxes for the script-style run (0: skip)")
    ap.add_argument("--outputs", action="store_true",
                    help="after the sweep, write report.html / findings.json / findings.csv and time it")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fast-exchange-transport", action="store_true",
                    help="[scan] fast_exchange_transport = true (the lean Exchange transport; opt-in)")
    ap.add_argument("--script-only", action="store_true", help="only the per-mailbox-script sample, extrapolated")
    ap.add_argument("--incremental", action="store_true",
                    help="after the full sweep, sweep again in incremental mode (the next night) and compare")
    ap.add_argument("--request-cpu", action="store_true",
                    help="only measure the client CPU of the request path (a $batch sub-request, a cmdlet)")
    args = ap.parse_args()
    global FAST_EXCHANGE
    FAST_EXCHANGE = args.fast_exchange_transport
    if args.request_cpu:
        request_cpu()
        return
    if args.script_only:
        proc, info = start_simulator(args.users, args.latency_ms, not args.no_throttle, args.seed)
        try:
            with tempfile.TemporaryDirectory() as tmpdir:
                sn, ssec, sreq = asyncio.run(script_style(info, Path(tmpdir) / "script.db", args.script_sample))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        per = ssec / max(sn, 1)
        print(f"script-style sample   {sn} mailboxes in {ssec:.1f}s ({per * 1000:.0f} ms/mailbox, {sreq} requests)")
        print(f"script extrapolated   {per * args.users:.0f}s for {args.users} mailboxes")
        return

    import psutil

    proc, info = start_simulator(args.users, args.latency_ms, not args.no_throttle, args.seed)
    sim = psutil.Process(proc.pid)
    tmp = Path(tempfile.mkdtemp(prefix="m365sweep-bench-"))
    script = incremental = None

    def timed(inc: bool) -> tuple[Any, float, float, RuMeter, float]:
        """A sweep with its wall time, client CPU, RU meter and simulator CPU."""
        meter = RuMeter()
        sim_cpu0 = sum(sim.cpu_times()[:2])
        cpu0, t0 = time.process_time(), time.monotonic()
        res = asyncio.run(sweep(info, tmp / "bench.db", args.concurrency, meter, incremental=inc))
        return res, time.monotonic() - t0, time.process_time() - cpu0, meter, sum(sim.cpu_times()[:2]) - sim_cpu0

    try:
        result, wall, cpu, meter, sim_cpu = timed(False)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, before the script run
        if args.incremental:  # the next night, nothing changed in the tenant: same database, incremental mode
            incremental = timed(True)
        if args.script_sample:
            script = asyncio.run(script_style(info, tmp / "script.db", min(args.script_sample, args.users)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"tenant users          {args.users}")
    print(f"latency / throttle    {args.latency_ms} ms / {'on' if not args.no_throttle else 'off'}")
    print(f"concurrency           {args.concurrency} (Graph and Exchange each)")
    print(f"exchange transport    {'lean (fast_exchange_transport)' if FAST_EXCHANGE else 'httpx (default)'}")
    print_sweep(args, result, wall, cpu, meter, sim_cpu)
    print(f"peak rss MiB          {peak_kb / 1024:.0f}")
    print(f"database MiB          {os.path.getsize(tmp / 'bench.db') / 2**20:.1f}")
    if script is not None:
        sn, ssec, sreq = script
        per = ssec / max(sn, 1)
        tenant_phase = 0.0  # generous to the script: its tenant-wide reads are not counted
        extrapolated = per * result.accounts_scanned + tenant_phase
        print(f"script-style sample   {sn} mailboxes in {ssec:.1f}s ({per * 1000:.0f} ms/mailbox, {sreq} requests)")
        print(f"script extrapolated   {extrapolated:.0f}s for {result.accounts_scanned} mailboxes")
        print(f"speed-up vs script    {extrapolated / wall:.1f}x")
    if args.outputs:  # the report of this very scan (not of synthetic rows: report_bench.py does that)
        outputs_figures(tmp / "bench.db", result.scan_id, tmp / "out")
    if incremental is not None:
        iresult, iwall, icpu, imeter, isim_cpu = incremental
        print("--- incremental sweep (the next night, tenant unchanged, [scan] incremental = true)")
        print_sweep(args, iresult, iwall, icpu, imeter, isim_cpu)
        full, incr = findings_of(tmp / "bench.db", result.scan_id), findings_of(tmp / "bench.db", iresult.scan_id)
        print(f"findings              full {len(full)}, incremental {len(incr)}; "
              f"{'the same' if full == incr else f'DIFFERENT: {len(full - incr)} only full, {len(incr - full)} only incremental'} "
              "(account, detector, severity)")
        print(f"incremental / full    {iwall / wall:.2f} wall, {iresult.stats['http_requests'] / max(result.stats['http_requests'], 1):.2f} HTTP requests")
    shutil.rmtree(tmp, ignore_errors=True)


def outputs_figures(db: Path, scan_id: str, out: Path) -> None:
    from reports import write_outputs
    from scanner.store import Store

    with Store(db) as store:
        verdicts = Counter(a["verdict"] for a in store.accounts(scan_id))
        t0 = time.monotonic()
        paths = write_outputs(store, scan_id, out)
        took = time.monotonic() - t0
    print(f"verdicts              {', '.join(f'{k} {v}' for k, v in verdicts.most_common())}")
    print(f"outputs seconds       {took:.1f} (report.html, findings.json, findings.csv; target <= 30 s)")
    for name, path in sorted(paths.items()):
        print(f"  {name:<8}{path.stat().st_size / 2**20:8.1f} MiB")


def findings_of(db: Path, scan_id: str) -> set[tuple[str, str, str]]:
    from scanner.store import Store

    with Store(db) as store:
        return {(f["account"], f["detector"], f["severity"]) for f in store.findings(scan_id)}


def print_sweep(args: argparse.Namespace, result: Any, wall: float, cpu: float, meter: RuMeter, sim_cpu: float) -> None:
    stats = result.stats
    n = result.accounts_scanned
    by_class = stats.get("by_class", {})
    n_graph_http = stats["by_service"].get("graph", 0)
    n_ex = stats["by_service"].get("exchange", 0)
    graph_logical = sum(v for k, v in by_class.items() if k != "exchange")
    lat = args.latency_ms / 1000
    busiest = max(meter.per_mailbox.values(), default=0)
    floors = floor_seconds(by_class, meter.ru, graph_logical, n_ex, lat, args.exchange_concurrency, busiest)
    floor = max(floors.values())
    collect_cpu = stats.get("collect_cpu_seconds", cpu)
    print(f"accounts scanned      {n}")
    print(f"wall seconds          {wall:.1f} (collect {stats.get('collect_seconds', 0):.1f})")
    print(f"mailboxes/s           {n / wall:.1f}")
    print(f"http requests         {stats['http_requests']} (graph {n_graph_http}, exchange {n_ex})")
    print(f"logical requests      graph {graph_logical} ({', '.join(f'{k} {v}' for k, v in sorted(by_class.items()) if k != 'exchange')}), "
          f"exchange cmdlets {by_class.get('exchange', 0)}")
    print(f"directory RU          {meter.ru}")
    busy = stats.get("busy_seconds", {})
    collect_s = stats.get("collect_seconds", wall) or wall
    for svc, n_http in (("graph", n_graph_http), ("exchange", n_ex)):
        if busy.get(svc):  # how full each service's pipe was: mean requests in flight over the collect phase
            print(f"{svc + ' in flight':<22}mean {busy[svc] / collect_s:.1f} of {args.concurrency} over the collect "
                  f"phase; mean round trip {busy[svc] / max(n_http, 1) * 1000:.1f} ms")
    print(f"429 responses         {stats['throttled']}")
    print(f"retries               {stats['retries']}")
    print(f"coverage gaps         {len(result.errors)}")
    print(f"client cpu seconds    {cpu:.1f} (collect {collect_cpu:.1f}; {collect_cpu / max(n, 1) * 1000:.2f} ms/mailbox; "
          f"{collect_cpu / max(graph_logical + by_class.get('exchange', 0), 1) * 1000:.3f} ms per logical request)")
    print(f"simulator cpu seconds {sim_cpu:.1f} (same 2 cores)")
    print("floor components      " + ", ".join(f"{k} {v:.1f}s" for k, v in floors.items())
          + f" (exchange assumes {args.exchange_concurrency} in flight)")
    print(f"floor seconds         {floor:.1f}")
    print(f"actual / floor        {wall / floor:.2f}" if floor > 0 else "actual / floor        n/a")
    if floor > 0:  # the requests alone (the floor's subject), without detection and outputs
        print(f"collect / floor       {stats.get('collect_seconds', wall) / floor:.2f}")


if __name__ == "__main__":
    main()
