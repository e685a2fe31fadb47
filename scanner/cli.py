"""The ``m365sweep`` console script.

Commands are imported lazily (``m365sweep --help`` must stay fast: msgraph alone costs ~0.4 s to import, pandas as
much), and other engineers' commands (remediate, undo, report, detectors, schedule, simulate) are wired in only when
their module imports — a missing optional part never breaks the CLI.

Errors the user must fix (config, storage, permissions, sign-in) are one line on stderr and exit 2; ``--debug`` adds
the traceback (never a secret: tokens live only in the credential objects and the redacting log filter).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

# == scanner.config.SEVERITIES (a test checks); not imported here so `--help` does not load pydantic.
SEVERITIES = ("info", "low", "medium", "high", "critical")

DEFAULT_OUT = "m365sweep-report"
DEMO_OUT = "m365sweep-demo"

# name -> (module:attribute, short help shown by --help without importing the module)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("scanner.simulator.cli:simulate_command", "Serve the simulated tenant on 127.0.0.1 until stopped."),
    "remediate": ("remediators.cli:remediate_command", "Apply Microsoft's response steps to one account or auto."),
    "undo": ("remediators.cli:undo_command", "Reverse a journaled remediation action."),
    "report": ("reports.cli:report_command", "Re-render the outputs of a stored scan."),
    "detectors": ("detectors.cli:detectors_command", "List the detector catalogue."),
    "schedule": ("scanner.schedule:schedule_command", "Run scans (and auto-remediation) on a cron schedule."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        target = LAZY_COMMANDS[cmd_name][0]
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                module = LAZY_COMMANDS[name][0].partition(":")[0]
                if not _module_exists(module):
                    continue
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                cmd = self.commands[name]
                rows.append((name, cmd.get_short_help_str(limit=formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    """Whether ``pkg.sub`` exists, without importing ``pkg`` (its __init__ may import pandas)."""
    import importlib.util

    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if not rest:
        return True
    for base in spec.submodule_search_locations or ():
        path = Path(base, *rest.split("."))
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


class UserError(Exception):
    """One line for the user, exit 2."""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (never secrets).")
@click.version_option(package_name="m365sweep", message="m365sweep %(version)s")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Find and remove the back-doors an attacker leaves in a Microsoft 365 tenant after taking over a mailbox."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug:
        os.environ["M365SWEEP_DEBUG"] = "1"


def _logging(cfg: Any = None, quiet: bool = False) -> None:
    from scanner.logsetup import setup_logging

    fmt = cfg.logging.format if cfg is not None else "plain"
    level = cfg.logging.level if cfg is not None else "info"
    if os.environ.get("M365SWEEP_DEBUG"):
        level = "debug"
    elif quiet and level in ("debug", "info"):
        level = "warning"
    extra = [cfg.notify.webhook_url_env] if cfg is not None and cfg.notify.webhook_url_env else []
    setup_logging(fmt, level, extra_env=extra)


def _summary(result: Any, *, out: Path | None) -> None:
    v = result.verdicts
    click.echo(f"scan {result.scan_id}: {result.accounts_scanned} accounts scanned — "
               f"{v.get('compromised', 0)} compromised, {v.get('suspicious', 0)} suspicious, "
               f"{v.get('clean', 0)} clean")
    sev = result.findings_by_severity
    if sev:
        click.echo("findings: " + ", ".join(f"{sev[s]} {s}" for s in reversed(SEVERITIES) if sev.get(s)))
    if result.compromised:
        click.echo("compromised accounts:")
        for upn in result.compromised:
            click.echo(f"  - {_printable(upn)}")
    if result.suspicious:
        click.echo("suspicious accounts (a human should look):")
        for upn in result.suspicious:
            click.echo(f"  - {_printable(upn)}")
    tenant_wide = _tenant_wide_findings(result)
    if tenant_wide:
        click.echo("tenant-wide findings (apps and other non-user principals):")
        for who, title, severity in tenant_wide:
            click.echo(f"  - [{SEVERITIES[severity]}] {_printable(who)}: {_printable(title)}")
    if result.errors:
        click.echo(f"coverage gaps: {len(result.errors)} (listed in the outputs)")
    if out is not None and result.outputs:
        click.echo(f"outputs: {out / 'report.html'}, {out / 'findings.json'}, {out / 'findings.csv'}")


def _tenant_wide_findings(result: Any) -> list[tuple[str, str, int]]:
    """Active findings about non-user principals (pseudo-accounts with no verdict row), most severe first."""
    db = getattr(result, "database", None)
    if not db:
        return []
    from scanner.store import Store, StoreError

    try:
        with Store(db) as store:
            rows = store.db.execute(
                "select upn, title, severity from findings f where scan_id = ? and status = 'active' "
                "and suppressed is null and not exists (select 1 from accounts a where a.scan_id = f.scan_id "
                "and a.upn = f.upn) order by severity desc, upn", [result.scan_id]).fetchall()
    except StoreError:
        return []
    return [(str(u), str(t), int(sv)) for u, t, sv in rows]


def _printable(text: str) -> str:
    # Tenant strings are attacker-controlled: never let them drive the terminal.
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


# ---------------------------------------------------------------------------------------------------------- scan
@cli.command("scan")
@click.option("--config", "config_paths", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Configuration file (TOML). Repeat it, or give a directory of *.toml, to sweep several tenants "
                   "(each into <out>/<tenant label>/, plus <out>/summary.json and summary.html).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Output directory (default: [storage] output_dir or ./{DEFAULT_OUT}).")
@click.option("--fail-on", type=click.Choice(SEVERITIES, case_sensitive=False), default=None,
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--resume", is_flag=True, help="Continue this tenant's unfinished scan, skipping stored accounts.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def scan_command(config_paths: tuple[Path, ...], out_dir: Path | None, fail_on: str | None, resume: bool,
                 quiet: bool) -> None:
    """One full tenant sweep: collect, detect, store, report."""
    if len(config_paths) > 1 or config_paths[0].is_dir():
        # Several tenants (scanner/tenants.py, ops): independent units of work plus one summary.
        from scanner.tenants import scan_many_cli

        sys.exit(scan_many_cli(config_paths, out_dir=out_dir, default_out=DEFAULT_OUT, fail_on=fail_on,
                               resume=resume, quiet=quiet))
    config_path = config_paths[0]
    from scanner.config import load_config
    from scanner.progress import make_progress
    from scanner.sweep import run_scan

    cfg = load_config(config_path)
    _logging(cfg, quiet)
    _certificate_warning(cfg)
    out = out_dir or (cfg.resolve(cfg.storage.output_dir) if cfg.storage.output_dir else Path(DEFAULT_OUT))
    _writable_dir(out)
    progress = make_progress(quiet=quiet, tenant=cfg.label)
    try:
        result = asyncio.run(run_scan(cfg, out_dir=out, resume=resume, progress=progress, fail_on=fail_on))
    finally:
        _close(progress)
    _summary(result, out=out)
    from scanner.tenants import after_scan_of

    after_scan_of(cfg, result, out)  # retention + webhook notification (ops); never raises
    sys.exit(result.exit_code)


def _writable_dir(out: Path) -> None:
    """Prove the output directory can be created and written before the sweep: a bad ``--out`` is one line and
    exit 2 now, not an internal error after the whole tenant was read. Creates nothing: a probe file in the directory,
    or in its nearest existing parent, is removed at once (a refused scan leaves no empty output directory)."""
    import tempfile

    probe = out.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(probe))
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".m365sweep-write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to the output directory {out}: {exc.strerror or exc}") from None


def _certificate_warning(cfg: Any) -> None:
    """Before signing in: say so when the certificate's private key is readable by other local users."""
    from scanner.config import certificate_warning

    warn = certificate_warning(cfg)
    if warn:
        click.echo(warn, err=True)


def _close(progress: Any) -> None:
    close = getattr(progress, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001, S110 - display teardown only
            pass


# ---------------------------------------------------------------------------------------------------------- demo
DEMO_ALLOWLIST = {"forwarding_domains": [{"value": "partner-accounting.com",
                                          "reason": "outsourced bookkeeper (demo allow-list entry)"}]}


def demo_config(srv: Any, out: Path) -> Any:
    from scanner.config import parse_config

    return parse_config({
        "tenant": {"tenant_id": srv.tenant_id, "name": "Contoso (simulated)"},
        "auth": {"method": "access_token"},
        "endpoints": {"graph": srv.graph_url, "exchange": srv.exchange_url},
        "storage": {"database": str(out / "m365sweep-demo.db")},
        "allowlist": DEMO_ALLOWLIST,
        "remediation": {"protected_accounts": [f"breakglass@{srv.tenant.onmicrosoft_domain}"]},
    }, out / "demo.toml")


@cli.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(DEMO_OUT),
              show_default=True, help="Output directory.")
@click.option("--users", default=200, show_default=True, type=click.IntRange(min=1),
              help="Users in the simulated tenant.")
@click.option("--seed", default=7, show_default=True, type=int, help="Simulator seed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def demo_command(out_dir: Path, users: int, seed: int, quiet: bool) -> None:
    """Scan an embedded simulated tenant with the real scanner (no credentials, no network)."""
    from scanner.graph.factory import EXCHANGE_TOKEN_ENV, GRAPH_TOKEN_ENV, build_credential
    from scanner.progress import make_progress
    from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
    from scanner.sweep import run_scan

    _logging(None, quiet)
    out = out_dir.resolve()
    _writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):  # a fresh demo each run: no drift against an earlier demo
        (out / f"m365sweep-demo.db{suffix}").unlink(missing_ok=True)
    tenant = generate_tenant(users=users, seed=seed, scenarios=True)
    app = create_app(tenant, SimOptions())
    with SimulatorServer(app, port=0) as srv:
        click.echo(f"simulated tenant {srv.tenant_id} ({users} users) served at {srv.graph_url}")
        cfg = demo_config(srv, out)
        # The demo uses the real access_token sign-in path, tokens from the environment of this process only.
        os.environ[GRAPH_TOKEN_ENV], os.environ[EXCHANGE_TOKEN_ENV] = srv.graph_token, srv.exchange_token
        try:
            credential = build_credential(cfg)
        finally:
            os.environ.pop(GRAPH_TOKEN_ENV, None)
            os.environ.pop(EXCHANGE_TOKEN_ENV, None)
        progress = make_progress(quiet=quiet, tenant=cfg.label)
        try:
            result = asyncio.run(run_scan(cfg, credential=credential, out_dir=out, progress=progress))
        finally:
            _close(progress)
    _summary(result, out=out)
    sys.exit(result.exit_code)


# --------------------------------------------------------------------------------------------------------- check
@cli.command("check")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file (TOML).")
def check_command(config_path: Path) -> None:
    """Sign in and list the permissions the app holds and the collectors and steps they enable."""
    from scanner.config import load_config

    cfg = load_config(config_path)
    _logging(cfg, quiet=True)
    _certificate_warning(cfg)
    code = asyncio.run(_check(cfg))
    sys.exit(code)


async def _check(cfg: Any, *, credential: Any = None, transport: Any = None) -> int:
    from scanner.graph.client import ApiError
    from scanner.graph.factory import connect, token_claims
    from scanner.permissions import COLLECTORS, REQUIRED_COLLECTORS, STEPS, missing

    conn = connect(cfg, credential=credential, transport=transport)
    try:
        try:
            graph_token = await conn.graph_token()
        except Exception as exc:  # noqa: BLE001 - any sign-in failure is a user-fixable problem
            raise UserError(f"sign-in to Microsoft Graph failed: {_first_line(exc)}") from None
        try:
            exchange_token: str | None = await conn.exchange_token()
        except Exception as exc:  # noqa: BLE001
            exchange_token = None
            click.echo(f"Exchange sign-in failed: {_first_line(exc)}")
        g_claims, x_claims = token_claims(graph_token), token_claims(exchange_token or "")
        g_roles = sorted(set(g_claims.get("roles") or []))
        x_roles = sorted(set(x_claims.get("roles") or []))
        click.echo(f"tenant: {cfg.tenant.tenant_id}  graph: {cfg.graph_url}  exchange: {cfg.exchange_url}")
        if not g_claims:
            click.echo("Graph token is not a readable JWT: permissions cannot be listed from it")
        click.echo(f"Graph application permissions: {', '.join(g_roles) or '(none)'}")
        click.echo(f"Exchange application permissions: {', '.join(x_roles) or '(none)'}")
        if "Exchange.ManageAsApp" in x_roles:
            click.echo("note: Exchange also needs an Exchange RBAC role for the app (e.g. Exchange Recipient "
                       "Administrator for the mailbox cmdlets, View-Only Configuration for transport rules, "
                       "outbound policies and role groups); a token cannot show it. Global Reader cannot run Get-InboxRule.")
        width = max(len(n) for n in (*COLLECTORS, *STEPS))
        click.echo("\ncollectors:")
        required_missing = []
        for name, needs in COLLECTORS.items():
            miss = missing(needs, g_roles, x_roles)
            state = "available" if not miss else "MISSING " + ", ".join(f"{n.permission} ({n.service})" for n in miss)
            click.echo(f"  {name:{width}} {state}")
            if name in REQUIRED_COLLECTORS and any(n.service == "graph" for n in miss):
                required_missing.extend(n.permission for n in miss if n.service == "graph")
        click.echo("\nremediation steps:")
        for name, needs in STEPS.items():
            miss = missing(needs, g_roles, x_roles)
            state = "available" if not miss else "MISSING " + ", ".join(f"{n.permission} ({n.service})" for n in miss)
            click.echo(f"  {name:{width}} {state}")
        try:
            await conn.graph.get_json("/users", params={"$top": 1, "$select": "id"})
            click.echo("\nprobe GET /users: ok")
        except ApiError as err:
            if err.is_permission:
                required_missing = required_missing or ["User.Read.All"]
            elif err.is_auth:
                raise UserError(f"Microsoft Graph refused the token ({err.code or 401}): {err.message}") from None
            else:
                click.echo(f"\nprobe GET /users failed: {err.short()}")
        if required_missing:
            raise UserError(f"the app cannot list users: grant the Graph application permission "
                            f"{required_missing[0]} (and admin consent)")
        return 0
    finally:
        await conn.aclose()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # Error texts can quote the service or the tenant (a rule name, an Exchange message): printable only.
    return _printable((text[0] if text else type(exc).__name__)[:300])


# ---------------------------------------------------------------------------------------------------------- main
def _user_error_types() -> tuple[type[BaseException], ...]:
    from scanner.config import ConfigError
    from scanner.store import StoreError
    from scanner.sweep import ScanAbort

    return (ConfigError, StoreError, ScanAbort, UserError)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="m365sweep", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `m365sweep` (click >= 8.2): the help is the message
            exc.show()
            sys.exit(exc.exit_code)
        # One line, like every other exit 2 (interface.md), instead of click's Usage / Try / blank / Error block.
        where = exc.ctx.command_path if exc.ctx is not None else "m365sweep"
        click.echo(f"error: {' '.join(exc.format_message().split())} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        sys.exit(_handle(exc, debug))
    if isinstance(rv, int):
        sys.exit(rv)


def _handle(exc: BaseException, debug: bool) -> int:
    from scanner.graph.client import ApiError

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, _user_error_types()):
        click.echo(f"error: {_first_line(exc)}", err=True)
        return 2
    if isinstance(exc, ApiError) and (exc.is_permission or exc.is_auth):
        click.echo(f"error: {_printable(exc.short())}", err=True)
        return 2
    name = type(exc).__name__
    if name in ("ClientAuthenticationError", "CredentialUnavailableError", "AuthenticationRequiredError"):
        click.echo(f"error: sign-in failed: {_first_line(exc)}", err=True)
        return 2
    click.echo(f"error: internal error {name}: {_first_line(exc)}"
               + ("" if debug else " (run with --debug for details)"), err=True)
    return 2


if __name__ == "__main__":  # pragma: no cover
    main()
