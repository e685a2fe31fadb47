"""The operations docs and deploy files stay true: the unit's and the image's command lines parse with the real CLI,
every config key the docs show exists, and the app-registration guide grants exactly the scanning permissions the
permission matrix names."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click

from scanner.cli import cli
from scanner.config import Config
from scanner.permissions import COLLECTORS

ROOT = Path(__file__).resolve().parents[2]


def _parses(argv: list[str]) -> None:
    name, *args = argv
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, name
    with cmd.make_context(name, list(args)) as ctx:
        assert ctx.params


def test_systemd_unit_runs_a_valid_schedule_command() -> None:
    unit = (ROOT / "deploy" / "m365sweep.service").read_text()
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit, re.M)
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/m365sweep") and argv[1] == "schedule"
    _parses(argv[1:])
    assert "RestartPreventExitStatus=2" in unit and re.search(r"^User=m365sweep$", unit, re.M)


def test_dockerfile_default_command_is_valid() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert entry == ["m365sweep"]
    _parses(cmd)
    assert re.search(r"^USER m365sweep$", text, re.M)


def test_config_keys_in_operations_doc_exist() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    for block in re.findall(r"```toml\n(.*?)```", doc, re.S):
        section = None
        for line in block.splitlines():
            if m := re.match(r"^\[(\w+)\]", line):
                section = m.group(1)
                assert section in Config.model_fields, section
            elif (m := re.match(r"^#?\s*(\w+)\s*=", line)) and section:
                sect_model = Config.model_fields[section].annotation
                assert m.group(1) in sect_model.model_fields, f"{section}.{m.group(1)}"
    for opt in ("--run-now", "--no-catch-up", "--resume"):
        assert opt in doc


def test_app_registration_grants_every_scanning_permission() -> None:
    doc = (ROOT / "docs" / "app-registration.md").read_text()
    needed = {n.permission for needs in COLLECTORS.values() for n in needs}
    for perm in needed:
        assert f"`{perm}`" in doc, perm
    assert "certificate" in doc and "admin consent" in doc.lower() and "Exchange.ManageAsApp" in doc
