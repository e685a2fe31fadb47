"""Helpers for the remediation tests: plant a compromise in the simulated tenant, scan it, drive the CLI.

Everything goes through the simulator (real msgraph-sdk pipeline, in-process ASGI transport) and the real scanner;
assertions read the simulator's Tenant object, never a mock.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from remediators.cli import ConnectOptions, remediate_command, undo_command
from scanner.store import Store


def _root_conftest() -> Any:
    # tests/conftest.py's helpers, loaded under a unique name (several directories have a conftest module).
    name = "_m365sweep_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "conftest.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


make_sim_config = _root_conftest().make_sim_config
sim_config_dict = _root_conftest().sim_config_dict
sim_tokens = _root_conftest().sim_tokens

BENIGN_RULE = "Newsletters to folder"


def user_mailboxes(tenant: Any, n: int) -> list[str]:
    out = []
    for u in tenant.iter_users():
        if u.mailbox is not None and u.mailbox.kind == "user" and u.accountEnabled and not u.onPremisesSyncEnabled \
                and u.userType == "Member" and u.userPrincipalName.lower() not in tenant.labels:
            out.append(u.userPrincipalName)
        if len(out) == n:
            break
    return out


def plant_compromise(tenant: Any, upn: str, i: int = 0, *, hidden: bool = True, blocked: bool = True) -> None:
    """Mailbox forward to free-mail, a visible and a hidden malicious rule, a benign rule, restricted sending."""
    tenant.set_forwarding(upn, smtp=f"smtp:drop{i}@gmail.com", deliver_and_forward=False)
    tenant.add_rule(upn, displayName=".", conditions={"bodyOrSubjectContains": ["invoice", "payment"]},
                    actions={"forwardTo": [{"emailAddress": {"name": "x", "address": f"pay{i}@gmail.com"}}],
                             "moveToFolder": "RSS Feeds", "markAsRead": True})
    if hidden:
        tenant.add_rule(upn, displayName="..", conditions={},
                        actions={"redirectTo": [{"emailAddress": {"name": "y", "address": f"all{i}@c0ntoso.com"}}]},
                        hidden=True)
    tenant.add_rule(upn, displayName=BENIGN_RULE,
                    conditions={"fromAddresses": [{"emailAddress": {"name": "News", "address": "news@contoso.com"}}]},
                    actions={"moveToFolder": "Inbox/Newsletters", "stopProcessingRules": False})
    if blocked:
        tenant.block_sender(upn)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class Scanned:
    """A simulated tenant that has been scanned once; ``cli(...)`` runs remediate/undo against it."""

    def __init__(self, tmp_path: Path, tenant: Any, app: Any, **sections: Any) -> None:
        from scanner.sweep import run_scan

        self.tmp = tmp_path
        self.tenant = tenant
        self.env = make_sim_config(tmp_path, tenant, app, **sections)
        self.config_path = write_config(tmp_path / "m365sweep.toml", sim_config_dict(tenant, tmp_path, **sections))
        asyncio.run(run_scan(self.env.cfg, **self.env.kwargs))
        self.store = Store(self.env.cfg.database_path)
        self.scan_id = self.store.latest_scan_id()

    def rescan(self) -> None:
        from scanner.sweep import run_scan

        asyncio.run(run_scan(self.env.cfg, **self.env.kwargs))
        self.scan_id = self.store.latest_scan_id()

    def verdict(self, upn: str) -> str:
        return next(a["verdict"] for a in self.store.accounts(self.scan_id) if a["upn"].lower() == upn.lower())

    def options(self) -> ConnectOptions:
        return ConnectOptions(credential=self.env.credential, transport=self.env.transport, verify_timeout=0.0,
                              poll_interval=0.0)

    def remediate(self, *args: str) -> Any:
        return CliRunner().invoke(remediate_command, ["--config", str(self.config_path), *args],
                                  obj=self.options(), catch_exceptions=False)

    def undo(self, action_id: str) -> Any:
        return CliRunner().invoke(undo_command, ["--config", str(self.config_path), action_id],
                                  obj=self.options(), catch_exceptions=False)

    def journal(self, upn: str | None = None) -> list[dict[str, Any]]:
        return self.store.journal(upn=upn)
