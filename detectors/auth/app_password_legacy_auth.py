"""App password registered, or legacy mail protocols re-enabled (detections.md §C5).

Sees: ``appPassword`` in the registration report's ``methodsRegistered`` (new since the last scan: High; standing:
Low hygiene) and IMAP/POP/SMTP AUTH switched on since the last scan (``Get-CASMailbox``), the protocols app passwords
and BAV2ROPC sign-ins use.
Misses: the app passwords themselves (no Graph API lists them); legacy sign-ins (sign-in logs, not state).
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors._model import DetectorMeta, Finding, ScanContext, Severity, make_finding
from scanner.snapshot import AccountSnapshot, NotCollectedError

META = DetectorMeta(
    id="auth.app_password_legacy_auth",
    title="App password or legacy mail protocol enabled",
    severity=Severity.HIGH,
    technique="T1078.004",
    rationale="App passwords are not revoked by a password reset and legacy-protocol sign-ins (BAV2ROPC) are common "
              "in account takeover; Microsoft's response guide calls them out.",
    remediation=("disable_email_apps", "reset_password"),
    requires=("registration", "protocols"),
    false_positives=("Old devices, printers and scan-to-mail still using basic auth (standing: Low).",),
)


def _has_app_password(reg) -> bool:  # noqa: ANN001 - Registration
    return any(str(m).lower().replace("_", "") == "apppassword" for m in reg.methods_registered)


def detect(account: AccountSnapshot, ctx: ScanContext) -> Iterator[Finding]:
    reg = account.get("registration")
    proto = account.get("protocols")
    if reg is None and proto is None:
        account.require("registration")
    prev = ctx.previous
    if reg is not None and _has_app_password(reg):
        prev_reg = prev.get("registration") if prev is not None else None
        new = prev_reg is not None and not _has_app_password(prev_reg)
        ev = {"signal": "app password registered", "new": new}
        yield make_finding(META, account, evidence=ev, artefact="apppassword",
                           severity=Severity.HIGH if new else Severity.LOW, score=30 if new else 3)
    if proto is not None and prev is not None:
        try:
            pp = prev.require("protocols")
        except NotCollectedError:
            return
        turned_on = []
        for name, attr in (("IMAP", "imap_enabled"), ("POP", "pop_enabled")):
            if getattr(proto, attr) is True and getattr(pp, attr) is False:
                turned_on.append(name)
        if proto.smtp_client_authentication_disabled is False and pp.smtp_client_authentication_disabled is True:
            turned_on.append("SMTP AUTH")
        if turned_on:
            ev = {"signal": "legacy protocols enabled since the last scan", "protocols": turned_on}
            yield make_finding(META, account, evidence=ev, artefact="legacy:" + ",".join(turned_on),
                               severity=Severity.MEDIUM, score=10,
                               title="Legacy mail protocol enabled since the last scan")
