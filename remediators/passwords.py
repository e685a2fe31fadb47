"""Generated passwords and where they go: shown once on an interactive terminal, or appended to a 0600 file.

A password never reaches a log line, a report, the database or the journal. The journal records only "password
reset, delivered to <terminal|file path>". The file is created with mode 0600 (``os.open`` with the mode, so it is
never world-readable even for an instant) and refused when it exists with a looser mode or another owner.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Entra password rules: 8-256 characters, three of four classes; avoid characters that break copy/paste or shells.
_SYMBOLS = "!#%+-.:=?@^_~"
_ALPHABET = string.ascii_letters + string.digits + _SYMBOLS


def generate_password(length: int = 24) -> str:
    """A strong random password with every character class (secrets module, ~140 bits at 24 characters)."""
    if length < 16:
        raise ValueError("password length must be at least 16")
    while True:
        pw = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw)
                and any(c in _SYMBOLS for c in pw)):
            return pw


class PasswordDeliveryError(Exception):
    """The password could not be delivered: the reset must not happen."""


class PasswordSink(Protocol):
    description: str  # what the journal says: "terminal" or "file <path>"

    def prepare(self) -> None:
        """Check the destination can take a password, before any account is changed."""

    def deliver(self, upn: str, password: str) -> None:
        """Called BEFORE the reset: a reset password must never be undeliverable."""

    def commit(self, upn: str) -> None:
        """The reset succeeded."""

    def abort(self, upn: str) -> None:
        """The reset failed: the delivered password is not the account's."""


@dataclass
class TerminalSink:
    """Shows each password once, on the operator's interactive terminal (the only deliberate display)."""

    echo: Callable[[str], None]
    description: str = "terminal"
    shown: list[str] = field(default_factory=list)  # UPNs, never passwords
    _pending: dict[str, str] = field(default_factory=dict, repr=False)

    def prepare(self) -> None:
        return None

    def deliver(self, upn: str, password: str) -> None:
        # The terminal is always there: show the password only once the reset has succeeded.
        self._pending[upn] = password

    def commit(self, upn: str) -> None:
        password = self._pending.pop(upn, None)
        if password is not None:
            self.echo(f"New password for {upn} (shown once; the user must change it at next sign-in): {password}")
            self.shown.append(upn)

    def abort(self, upn: str) -> None:
        self._pending.pop(upn, None)

    def __repr__(self) -> str:
        return f"TerminalSink(shown={self.shown!r})"


@dataclass
class FileSink:
    """Appends ``<upn>\\t<password>`` lines to a file only its owner can read (0600)."""

    path: Path

    @property
    def description(self) -> str:
        return f"file {self.path}"

    def prepare(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            parent = self.path.parent
            if not parent.is_dir():
                raise PasswordDeliveryError(f"password file directory does not exist: {parent}") from None
            return
        if not stat.S_ISREG(st.st_mode):
            raise PasswordDeliveryError(f"password file {self.path} is not a regular file")
        if st.st_mode & 0o077:
            raise PasswordDeliveryError(f"password file {self.path} is readable by others; chmod 600 it or "
                                        "name a new file")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise PasswordDeliveryError(f"password file {self.path} belongs to another user")

    def deliver(self, upn: str, password: str) -> None:
        self.prepare()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise PasswordDeliveryError(f"cannot write password file {self.path}: {exc.strerror}") from None
        try:
            os.write(fd, f"{upn}\t{password}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self, upn: str) -> None:
        return None

    def abort(self, upn: str) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return
        try:
            os.write(fd, f"# {upn}: the reset FAILED, the password above was not set\n".encode())
        finally:
            os.close(fd)
