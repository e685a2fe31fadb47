"""`m365sweep simulate`: serve the simulated tenant on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import sys

import click


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.option("--users", default=200, show_default=True, type=click.IntRange(min=1),
              help="Number of users in the tenant.")
@click.option("--seed", default=7, show_default=True, type=int, help="Generator seed.")
@click.option("--latency-ms", default=0, show_default=True, type=int, help="Added latency per request.")
@click.option("--throttle", is_flag=True, help="Enforce Microsoft's published Graph limits (429 + Retry-After).")
@click.option("--fault-rate", default=0.0, show_default=True, type=float, help="Share of requests that fail randomly.")
@click.option("--exchange-lag-seconds", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Exchange read-after-write lag: Get-* cmdlets show a mailbox's old state for this many seconds "
                   "after a write to it, as the real service can.")
@click.option("--exchange-lag-reads", default=0, show_default=True, type=click.IntRange(min=0),
              help="Exchange read-after-write lag counted in reads: the next N Get-* reads of a mailbox after a "
                   "write show its old state.")
def simulate_command(host: str, port: int, users: int, seed: int, latency_ms: int, throttle: bool, fault_rate: float,
                     exchange_lag_seconds: float, exchange_lag_reads: int) -> None:
    """Serve a simulated Microsoft 365 tenant (Graph v1.0 + Exchange admin API)."""
    from . import SimOptions, SimulatorServer, create_app, generate_tenant

    tenant = generate_tenant(users=users, seed=seed)
    app = create_app(tenant, SimOptions(latency_ms=latency_ms, throttle=throttle, fault_rate=fault_rate, seed=seed,
                                            exchange_read_lag_reads=exchange_lag_reads,
                                            exchange_read_lag_seconds=exchange_lag_seconds))
    try:
        srv = SimulatorServer(app, host=host, port=port)
    except OSError as exc:  # port taken, address not local: one line, exit 2
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(srv.banner())
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


__all__ = ["simulate_command"]
