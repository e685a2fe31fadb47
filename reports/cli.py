"""``m365sweep report --config FILE [--scan ID] [--out DIR]``: re-render the outputs of a stored scan.

Wired into ``scanner/cli.py`` as the ``report`` command. Bad input (missing config, unknown scan id, unusable database)
is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scanner.config import ConfigError, load_config
from scanner.store import Store, StoreError

DEFAULT_OUT = "m365sweep-report"


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command("report")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file (TOML); its [storage] database holds the scans.")
@click.option("--scan", "scan_id", default=None, help="Scan id to render (default: the latest finished scan).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help=f"Output directory (default: [storage] output_dir or ./{DEFAULT_OUT}).")
def report_command(config_path: Path, scan_id: str | None, out_dir: Path | None) -> None:
    """Re-render report.html, findings.json and findings.csv of a stored scan."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
        return
    db = cfg.database_path
    if not db.exists():
        _fail(f"database {db} does not exist: run 'm365sweep scan --config {config_path}' first")
    try:
        store = Store(db)
    except StoreError as exc:
        _fail(str(exc))
        return
    try:
        if scan_id is None:
            scan_id = store.latest_scan_id(complete_only=True)
            if scan_id is None:
                _fail(f"no finished scan in {db}: run 'm365sweep scan --config {config_path}' first")
                return
        else:
            try:
                store.scan(scan_id)
            except StoreError:
                _fail(f"unknown scan id {scan_id!r} in {db}")
                return
        target = out_dir or (cfg.resolve(cfg.storage.output_dir) if cfg.storage.output_dir else Path(DEFAULT_OUT))
        from reports import write_outputs

        try:
            paths = write_outputs(store, scan_id, target, cfg)
        except OSError as exc:
            _fail(f"cannot write to {target}: {exc.strerror or exc}")
            return
    finally:
        store.close()
    click.echo(f"scan {scan_id}: {paths['html']} {paths['json']} {paths['csv']}")
