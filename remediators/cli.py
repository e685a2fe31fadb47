"""``m365sweep remediate`` and ``m365sweep undo`` (click commands; scanner/cli.py adds them to the group).

The plan is always shown first (step, target, before → after, reversible?). Changes need ``--yes`` or an interactive
confirmation; with no terminal and no ``--yes`` the command refuses (exit 2) rather than guess. ``--dry-run`` never
changes anything. Exit codes: 0 done; 1 a step failed, was skipped (e.g. a synced account's password) or did not verify; 2 usage / config / sign-in problems (one
line on stderr, no traceback).

Connection seam: tests (and embedders) pass ``obj=ConnectOptions(credential=..., transport=...)`` to click, which
reaches ``scanner.graph.factory.connect``; nothing else is replaceable.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from remediators._model import StepResult
from remediators.journal import os_user
from remediators.passwords import FileSink, PasswordDeliveryError, PasswordSink, TerminalSink
from remediators.runner import (
    AccountOutcome,
    AccountRun,
    AutoResult,
    RemediationError,
    UndoError,
    remediate_user,
    run_auto,
    undo_action,
)
from remediators.steps import ORDER, STEPS


@dataclass(frozen=True)
class ConnectOptions:
    """What ``connect()`` gets besides the config: a credential and an httpx transport (the simulator in tests)."""

    credential: Any = None
    transport: Any = None
    verify_timeout: float | None = None  # seconds to wait for Exchange writes to read back
    poll_interval: float | None = None


def _fail(msg: str) -> None:
    # The message can quote tenant strings (a UPN, a rule, the service's error): never let them drive the terminal.
    click.echo("error: " + "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in msg), err=True)
    sys.exit(2)


def _options() -> ConnectOptions:
    ctx = click.get_current_context(silent=True)
    opts = ctx.find_object(ConnectOptions) if ctx is not None else None
    return opts or ConnectOptions()


def _console() -> Console:
    # Tenant strings are attacker-controlled: every one goes through escape() (no rich markup injection).
    return Console(soft_wrap=False, width=max(100, Console().width), highlight=False)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "null" if value is None else str(value)


def plan_table(run: AccountRun) -> Table:
    t = Table(title=escape(f"Plan for {run.account.upn}"), show_lines=False)
    t.add_column("step", no_wrap=True)
    for col in ("target", "before", "after", "reversible?"):
        t.add_column(col)
    for name in run.steps:
        plan = run.plans.get(name)
        step = STEPS[name]
        rev = "yes" if step.reversible else f"NO: {step.irreversible_reason}"
        if plan is None:
            t.add_row(name, escape(f"could not read: {run.plan_errors.get(name, '')}"), "", "", rev)
            continue
        if plan.skip_reason:
            t.add_row(name, escape(f"skipped: {plan.skip_reason}"), "", "", rev)
            continue
        if not plan.targets:
            t.add_row(name, "nothing to do", "", "", rev)
        for tg in plan.targets:
            t.add_row(name, escape(tg.label), escape(_fmt(dict(tg.before))), escape(_fmt(dict(tg.after))), rev)
        for note in plan.notes:
            t.add_row("", escape(f"note: {note}"), "", "", "")
    return t


def result_table(outcome: AccountOutcome, title: str = "") -> Table:
    t = Table(title=escape(title or f"Result for {outcome.upn}"))
    for col in ("step", "status", "verified", "target", "action id", "detail"):
        t.add_column(col, no_wrap=col in ("step", "status", "action id"))
    for r in outcome.results:
        _result_rows(t, r)
    return t


def _result_rows(t: Table, r: StepResult) -> None:
    ver = {None: "", True: "yes", False: "NO"}[r.verified]
    if not r.outcomes:
        t.add_row(r.step, r.status, ver, "", "", escape(r.detail))
        return
    for o in r.outcomes:
        detail = o.detail or r.detail
        if r.verified is False and o.status == "applied" and r.detail:
            detail = r.detail  # "not confirmed yet: ..." is what the operator needs on an applied target
        t.add_row(r.step, o.status, ver, escape(o.label), o.action_id or "", escape(detail))


def _load(config: str) -> tuple[Any, Any]:
    from scanner.config import ConfigError, load_config
    from scanner.store import Store, StoreError

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    # The configured log format with the secret-redacting filter; without it Python's last-resort handler printed
    # library warnings (azure-identity's get_token failures) raw next to our one error line.
    from scanner.cli import _logging

    _logging(cfg, quiet=True)
    try:
        store = Store(cfg.database_path)
    except StoreError as exc:
        _fail(str(exc))
    return cfg, store


async def _with_connection(cfg: Any, fn: Any) -> Any:
    from scanner.graph.factory import connect

    opts = _options()
    async with connect(cfg, credential=opts.credential, transport=opts.transport) as conn:
        return await fn(conn)


def _run(coro_fn: Any) -> Any:
    from scanner.config import ConfigError
    from scanner.graph.client import ApiError

    try:
        return asyncio.run(coro_fn())
    except (RemediationError, UndoError, PasswordDeliveryError) as exc:
        _fail(str(exc))
    except ConfigError as exc:
        _fail(str(exc))
    except ApiError as exc:
        if exc.is_auth:
            _fail(f"sign-in failed: {exc.short()}")
        if exc.is_permission:
            _fail(f"permission denied: {exc.short()} (run `m365sweep check` to see what the app holds)")
        _fail(exc.short())
    except Exception as exc:  # noqa: BLE001 - azure-identity sign-in failures have many types
        name = type(exc).__name__
        if "Authentication" in name or "Credential" in name:
            _fail(f"sign-in failed: {str(exc).splitlines()[0] if str(exc) else name}")
        raise


def _is_tty() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


@click.command("remediate")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--user", "user", default=None, help="UPN (or object id) of the account to remediate.")
@click.option("--step", "steps", multiple=True, metavar="STEP",
              help=f"Run exactly these steps (repeatable): {', '.join(ORDER)}.")
@click.option("--auto", "auto", is_flag=True, help="Remediate the latest scan's compromised accounts as "
                                                   "[remediation] allows.")
@click.option("--dry-run", "dry_run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--yes", "yes", is_flag=True, help="Apply without asking.")
@click.option("--password-file", "password_file", type=click.Path(dir_okay=False), default=None,
              help="Append generated passwords to this file (created 0600) instead of showing them.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (no passwords, ever).")
def remediate_command(config: str, user: str | None, steps: Sequence[str], auto: bool, dry_run: bool, yes: bool,
                      password_file: str | None, as_json: bool) -> None:
    """Microsoft's response steps for a compromised account: plan, confirm, apply, verify, journal."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        _fail(f"unknown step {unknown[0]!r}; known steps: {', '.join(ORDER)}")
    if auto and user:
        _fail("use either --user or --auto, not both")
    if not auto and not user:
        _fail("name the account with --user UPN (or use --auto)")
    if auto and steps:
        _fail("--step does not apply to --auto: the policy's [remediation] steps are its playbook")
    cfg, store = _load(config)
    opts = _options()
    timing: dict[str, float] = {}
    if opts.verify_timeout is not None:
        timing["verify_timeout"] = opts.verify_timeout
    if opts.poll_interval is not None:
        timing["poll_interval"] = opts.poll_interval
    console = _console()
    if auto:
        _remediate_auto(cfg, store, console, dry_run=dry_run, yes=yes, as_json=as_json, timing=timing)
        return
    assert user is not None  # noqa: S101 - type narrowing only: `not auto and not user` exited above
    if not dry_run and not yes and not _is_tty():
        _fail("no terminal to confirm on: pass --yes to apply the plan, or --dry-run to only show it")
    sink: PasswordSink | None = None
    if password_file:
        sink = FileSink(Path(password_file).expanduser())
        try:
            sink.prepare()
        except PasswordDeliveryError as exc:
            _fail(str(exc))
    elif _is_tty():
        # The one deliberate display of a password: the operator's interactive terminal, after the reset.
        sink = TerminalSink(echo=lambda line: click.echo(line))

    def confirm(run: AccountRun) -> bool:
        console.print(plan_table(run))
        if yes:
            return True
        return click.confirm("Apply this plan?", default=False)

    async def go(conn: Any) -> AccountOutcome:
        return await remediate_user(cfg, store, conn, user, steps=list(steps) or None, dry_run=dry_run,
                                    confirm=confirm, actor=os_user(), password_sink=sink, **timing)

    outcome: AccountOutcome = _run(lambda: _with_connection(cfg, go))
    if dry_run and outcome.run is not None:
        console.print(plan_table(outcome.run))
        click.echo("dry run: nothing was changed")
        return
    if not outcome.results:
        click.echo("nothing was changed (plan declined)")
        return
    if as_json:
        click.echo(json.dumps(_outcome_json(outcome), indent=2))
    else:
        console.print(result_table(outcome))
    if not outcome.ok:
        sys.exit(1)


def _outcome_json(outcome: AccountOutcome) -> dict[str, Any]:
    return {"account": outcome.upn, "ok": outcome.ok, "steps": [
        {"step": r.step, "status": r.status, "verified": r.verified, "detail": r.detail,
         "targets": [{"target": o.key, "label": o.label, "status": o.status, "action_id": o.action_id,
                      "detail": o.detail} for o in r.outcomes]} for r in outcome.results]}


def _remediate_auto(cfg: Any, store: Any, console: Console, *, dry_run: bool, yes: bool, as_json: bool,
                    timing: dict[str, float]) -> None:
    async def go(conn: Any) -> AutoResult:
        return await run_auto(cfg, store, conn, dry_run=dry_run, confirmed=yes, actor=os_user(), **timing)

    result: AutoResult = _run(lambda: _with_connection(cfg, go))
    if as_json:
        click.echo(json.dumps({
            "run_id": result.run_id, "dry_run": result.dry_run, "dry_run_reason": result.dry_run_reason,
            "scan_id": result.scan_id, "acted": [_outcome_json(o) for o in result.acted],
            "pending": result.pending, "protected": result.protected, "skipped_clean": result.gone,
            "errors": result.errors}, indent=2))
    else:
        if result.scan_id is None:
            click.echo("no finished scan in the database: run `m365sweep scan` first")
            return
        head = f"DRY RUN ({result.dry_run_reason}): nothing was changed" if result.dry_run else "auto-remediation"
        click.echo(f"{head}; run {result.run_id}, scan {result.scan_id}")
        for o in result.acted:
            if result.dry_run and o.run is not None:
                console.print(plan_table(o.run))
            else:
                console.print(result_table(o))
        for label, items in (("pending (over max_accounts_per_run)", result.pending),
                             ("protected (never touched automatically)", result.protected),
                             ("skipped (live state already clean)", result.gone)):
            if items:
                click.echo(f"{label}: {', '.join(items)}")
    if not result.ok and not result.dry_run:
        sys.exit(1)


@click.command("undo")
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.argument("action_id")
def undo_command(config: str, action_id: str) -> None:
    """Reverse a journaled action where possible (a role assignment, a disabled rule, cleared forwarding ...)."""
    if not action_id.strip():
        # An empty id would match the journal's decision rows (pending, protected ...), which carry no action id.
        _fail("ACTION_ID is empty: give the action id shown in the remediation result table")
    cfg, store = _load(config)

    async def go(conn: Any) -> str:
        return await undo_action(store, conn, action_id.strip(), actor=os_user())

    message: str = _run(lambda: _with_connection(cfg, go))
    click.echo(message)
