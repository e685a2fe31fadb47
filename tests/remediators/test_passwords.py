"""The generated password appears in no file, log line or database row — except the 0600 file the operator named."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from remhelpers import Scanned, plant_compromise, user_mailboxes

from remediators.passwords import FileSink, PasswordDeliveryError, TerminalSink, generate_password
from scanner.simulator import create_app, generate_tenant


def test_password_only_in_the_0600_file(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = generate_tenant(users=30, seed=5, scenarios=False)
    upn = user_mailboxes(tenant, 1)[0]
    plant_compromise(tenant, upn)
    s = Scanned(tmp_path, tenant, create_app(tenant))
    out_dir = tmp_path / "secret-store"
    out_dir.mkdir()
    pw_file = out_dir / "passwords.txt"
    res = s.remediate("--user", upn, "--yes", "--password-file", str(pw_file), "--json")
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(os.stat(pw_file).st_mode) == 0o600
    line = pw_file.read_text().strip()
    file_upn, password = line.split("\t")
    assert file_upn == upn and len(password) >= 16
    # The simulator accepted it: its salted hash is this password's.
    import hashlib
    assert tenant.user(upn).password_hash == hashlib.sha256(tenant.password_salt + password.encode()).hexdigest()
    needle = password.encode()
    s.store.db.execute("PRAGMA wal_checkpoint(FULL)")
    for f in tmp_path.rglob("*"):
        if f.is_file() and f != pw_file:
            assert needle not in f.read_bytes(), f"password found in {f}"
    for row in s.store.journal():
        assert password not in repr(row)
    journal_detail = [r["detail"] for r in s.journal(upn) if r["step"] == "reset_password" and r["status"] == "applied"]
    assert journal_detail == [f"password reset, delivered to file {pw_file}"]
    assert password not in res.output
    captured = capfd.readouterr()
    assert password not in captured.out and password not in captured.err
    assert all(password not in r.getMessage() and password not in str(r.args) for r in caplog.records)
    assert password not in repr(tenant.mutations)


def test_password_file_with_loose_mode_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "pw.txt"
    f.write_text("")
    f.chmod(0o644)
    with pytest.raises(PasswordDeliveryError, match="readable by others"):
        FileSink(f).prepare()


def test_terminal_shows_once_and_only_after_success() -> None:
    shown: list[str] = []
    sink = TerminalSink(echo=shown.append)
    sink.deliver("a@contoso.com", "Secret-1234567890abc")
    assert shown == []  # not before the reset succeeded
    sink.commit("a@contoso.com")
    sink.commit("a@contoso.com")
    assert len(shown) == 1 and "Secret-1234567890abc" in shown[0]
    sink.deliver("b@contoso.com", "Other-1234567890abcd")
    sink.abort("b@contoso.com")
    sink.commit("b@contoso.com")
    assert len(shown) == 1
    assert "Secret" not in repr(sink)


def test_generated_passwords_are_strong_and_distinct() -> None:
    pws = {generate_password() for _ in range(200)}
    assert len(pws) == 200
    for p in pws:
        assert len(p) == 24 and any(c.islower() for c in p) and any(c.isupper() for c in p)
        assert any(c.isdigit() for c in p) and not any(c.isspace() for c in p)
