"""Secrets never leak: a full scan, a manual and an automatic remediation (with ``--debug`` and JSON logging at debug
level) run with recognisable secret values, then EVERY artefact is searched for them: the database and its WAL/SHM
files, every file in the output directory, stdout and stderr of every command. Plus: a config that seems to hold a
secret is refused, and a certificate key readable by others is warned about.

The generated password is the only secret that must exist somewhere: in the 0600 password file, and nowhere else.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scanner.simulator import SimOptions, SimulatorServer, create_app, generate_tenant
from tests.conftest import served_sim_toml

CLIENT_SECRET = "Zq7~SENTINEL-client-secret-4f1c9e2a"  # noqa: S105 - a test sentinel, not a secret


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("m365sweep")
    return [str(script), *args] if script.exists() else [sys.executable, "-c",
                                                         "from scanner.cli import main; main()", *args]


def _needles(secret: str) -> list[bytes]:
    """The secret, and pieces long enough to identify it (a log line that cut a token still leaks it)."""
    out = {secret}
    if secret.count(".") == 2:  # a JWT: header.payload.signature — the signature alone identifies it
        out.add(secret.rsplit(".", 1)[1])
    if len(secret) >= 24:
        out.add(secret[len(secret) // 3: len(secret) // 3 + 16])
    return [s.encode() for s in out]


def _leaks(blobs: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    found = []
    for where, blob in blobs.items():
        for name, secret in secrets.items():
            for needle in _needles(secret):
                if needle in blob:
                    found.append(f"{name} in {where}")
    return found


def test_no_secret_in_any_artefact_of_a_scan_and_remediation(tmp_path: Path) -> None:
    tenant = generate_tenant(users=40, seed=11, scenarios=True)
    victims = sorted(u for u, lab in tenant.labels.items() if lab["label"] == "compromised"
                     and tenant.user(u).mailbox is not None and not tenant.user(u).onPremisesSyncEnabled)
    assert victims
    db, out, pw = tmp_path / "s.db", tmp_path / "out", tmp_path / "passwords.txt"
    outputs: dict[str, bytes] = {}
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        env = {**os.environ, "M365SWEEP_GRAPH_TOKEN": srv.graph_token, "M365SWEEP_EXCHANGE_TOKEN": srv.exchange_token,
               "M365SWEEP_CLIENT_SECRET": CLIENT_SECRET, "NO_COLOR": "1"}
        cfg = tmp_path / "c.toml"
        cfg.write_text(served_sim_toml(srv, db, f"""
            [logging]
            format = "json"
            level = "debug"
            [remediation]
            allow_auto = true
            max_accounts_per_run = 2
            password_file = "{tmp_path / 'auto-passwords.txt'}"
            """))
        commands = {
            "scan": ["--debug", "scan", "--config", str(cfg), "--out", str(out)],
            "remediate": ["--debug", "remediate", "--config", str(cfg), "--user", victims[0], "--yes",
                          "--password-file", str(pw)],
            "auto": ["--debug", "remediate", "--config", str(cfg), "--auto", "--yes", "--json"],
            "report": ["--debug", "report", "--config", str(cfg), "--out", str(out)],
            "check": ["--debug", "check", "--config", str(cfg)],
            "error": ["--debug", "remediate", "--config", str(cfg), "--user", "nobody@nowhere.example", "--yes"],
        }
        codes = {}
        for name, args in commands.items():
            proc = subprocess.run(cli(*args), env=env, capture_output=True, timeout=300, check=False)
            codes[name] = proc.returncode
            outputs[f"{name} stdout"], outputs[f"{name} stderr"] = proc.stdout, proc.stderr
    assert codes["scan"] in (0, 1, 3) and codes["remediate"] in (0, 1), outputs["remediate stderr"][-2000:]
    assert codes["error"] == 2
    assert b'"level": "debug"' in outputs["scan stderr"]  # debug logging really ran

    passwords = [line.split("\t", 1)[1] for line in pw.read_text().splitlines() if "\t" in line]
    auto_pw = tmp_path / "auto-passwords.txt"
    if auto_pw.exists():
        assert stat.S_IMODE(auto_pw.stat().st_mode) == 0o600
        passwords += [line.split("\t", 1)[1] for line in auto_pw.read_text().splitlines() if "\t" in line]
    assert passwords and stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert tenant.user(victims[0]).password_changed_at is not None

    artefacts = dict(outputs)
    for p in [*tmp_path.rglob("*")]:
        if p.is_file() and p.name not in ("passwords.txt", "auto-passwords.txt", "c.toml"):
            artefacts[str(p.relative_to(tmp_path))] = p.read_bytes()
    assert any(k.startswith("s.db") for k in artefacts) and "out/report.html" in artefacts
    secrets: dict[str, str] = {"client secret": CLIENT_SECRET, "graph token": srv.graph_token,
                               "exchange token": srv.exchange_token, "simulator token key": tenant.token_secret.hex()}
    secrets.update({f"password {i}": p for i, p in enumerate(passwords)})
    assert _leaks(artefacts, secrets) == []


def _config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(textwrap.dedent(body))
    return p


@pytest.mark.parametrize("body", [
    '[tenant]\ntenant_id = "contoso.com"\nclient_secret = "abc"\n',
    '[tenant]\ntenant_id = "contoso.com"\n[auth]\nmethod = "client_secret"\nclient_secret = "x"\n',
    '[tenant]\ntenant_id = "contoso.com"\nname = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"\n',
    '[tenant]\ntenant_id = "contoso.com"\nname = "abc8Q~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n',
    '[tenant]\ntenant_id = "contoso.com"\n[notify]\nwebhook_url = "x"\ntoken = "abc"\n',
    '[tenant]\ntenant_id = "contoso.com"\n[allowlist]\naccounts = ["-----BEGIN PRIVATE KEY-----"]\n',
])
def test_config_that_seems_to_hold_a_secret_is_refused(tmp_path: Path, body: str) -> None:
    proc = subprocess.run(cli("scan", "--config", str(_config(tmp_path, body))), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret" in lines[0] and "Traceback" not in proc.stderr
    for value in ("abc8Q~", "eyJhbGci", "BEGIN PRIVATE"):
        assert value not in proc.stderr  # the refusal does not echo the secret


def _self_signed(path: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365sweep test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("command", ["scan", "check"])
@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_certificate_key_readable_by_others_is_warned_about(tmp_path: Path, command: str, mode: int) -> None:
    pem = tmp_path / "app.pem"
    _self_signed(pem)
    pem.chmod(mode)
    cfg = _config(tmp_path, f"""
        [tenant]
        tenant_id = "contoso.onmicrosoft.com"
        client_id = "11111111-1111-1111-1111-111111111111"
        [auth]
        method = "certificate"
        certificate_path = "{pem}"
        [endpoints]
        graph = "http://127.0.0.1:9"
        exchange = "http://127.0.0.1:9"
        authority = "https://127.0.0.1:9"
        [storage]
        database = "{tmp_path / 'c.db'}"
        """)
    # The warning comes before sign-in (which cannot work here): read stderr's first line, then stop the process.
    # cwd: the killed scan may be probing its default ./output directory's parent (the checkout) for writability.
    proc = subprocess.Popen(cli(command, "--config", str(cfg), *(["-q"] if command == "scan" else [])),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        first = proc.stderr.readline() if proc.stderr else ""
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert (f"certificate key {pem} is readable by other users" in first) == (mode == 0o644), first
    assert "BEGIN" not in first


def test_debug_traceback_of_a_refused_sign_in_carries_no_secret(tmp_path: Path) -> None:
    tenant = generate_tenant(users=5, seed=1, scenarios=False)
    other = generate_tenant(users=5, seed=2, scenarios=False)  # its tokens are signed with another key: 401
    with SimulatorServer(create_app(tenant, SimOptions()), port=0) as srv:
        bad = create_app(other, SimOptions())
        cfg = _config(tmp_path, f"""
            [tenant]
            tenant_id = "{srv.tenant_id}"
            [auth]
            method = "access_token"
            [endpoints]
            graph = "{srv.graph_url}"
            exchange = "{srv.exchange_url}"
            [storage]
            database = "{tmp_path / 'c.db'}"
            [logging]
            format = "json"
            """)
        env = {**os.environ, "M365SWEEP_CLIENT_SECRET": CLIENT_SECRET, "M365SWEEP_GRAPH_TOKEN": bad.graph_token,
               "M365SWEEP_EXCHANGE_TOKEN": bad.exchange_token}
        proc = subprocess.run(cli("--debug", "scan", "--config", str(cfg), "-q"), env=env, capture_output=True,
                              text=True, timeout=180, check=False)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr  # --debug shows it...
    assert proc.stderr.strip().splitlines()[-1].startswith("error: sign-in refused")
    assert _leaks({"stderr": proc.stderr.encode(), "stdout": proc.stdout.encode()},  # ...without a secret
                  {"client secret": CLIENT_SECRET, "graph token": bad.graph_token,
                   "exchange token": bad.exchange_token}) == []
