"""remove_auth_methods when the attacker's method is the user's default MFA method (Graph refuses that delete while
other methods exist, and changing the default is beta-only): the simulator answers as Graph does."""

from __future__ import annotations

from pathlib import Path

from remhelpers import Scanned, user_mailboxes

from scanner.simulator import create_app, generate_tenant

PHONE_MOBILE = "3179e48a-750b-4051-897c-87b9720928f7"


def _setup(tmp_path: Path, *, legit_phone: bool) -> tuple[Scanned, str, list[str]]:
    t = generate_tenant(users=40, seed=11, scenarios=False)
    upn = user_mailboxes(t, 1)[0]
    u = t.user(upn)
    # Start from a user with only a password, plus (maybe) their own phone, registered long ago.
    u._methods = [m for m in t.methods(u) if m["@odata.type"].endswith("passwordAuthenticationMethod")]
    u._default_method = None
    if legit_phone:
        t.add_method(u, "phoneMethods", {"phoneNumber": "+1 425 555 0100", "phoneType": "mobile",
                                         "smsSignInState": "notSupported"}, log=False)
    s = Scanned(tmp_path, t, create_app(t))  # baseline scan
    evil = [t.add_method(u, "microsoftAuthenticatorMethods",
                         {"displayName": name, "deviceTag": "SoftwareTokenActivated", "phoneAppVersion": "6.2404.2229"},
                         created=t.now(), default=(i == 0))["id"]
            for i, name in enumerate(("SM-A546E", "Pixel 7"))]
    s.rescan()
    return s, upn, evil


def test_default_attacker_method_goes_last_when_the_other_methods_are_the_attackers_too(tmp_path: Path) -> None:
    s, upn, evil = _setup(tmp_path, legit_phone=False)
    t, u = s.tenant, s.tenant.user(upn)
    assert u._default_method == evil[0]
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--yes")
    assert res.exit_code == 0, res.output
    assert not {m["id"] for m in t.methods(u)} & set(evil)
    rows = [r for r in s.journal(upn) if r["step"] == "remove_auth_methods" and r["target"] == evil[0]]
    assert [r["status"] for r in rows if r["status"] in ("failed", "applied")] == ["failed", "applied"]


def test_default_attacker_method_with_a_legitimate_method_left_is_a_clear_manual_action(tmp_path: Path) -> None:
    s, upn, evil = _setup(tmp_path, legit_phone=True)
    t, u = s.tenant, s.tenant.user(upn)
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--yes", "--json")
    assert res.exit_code == 1, res.output
    ids = {m["id"] for m in t.methods(u)}
    assert evil[1] not in ids and evil[0] in ids and PHONE_MOBILE in ids  # the legitimate phone is never touched
    failed = [r for r in s.journal(upn) if r["step"] == "remove_auth_methods" and r["status"] == "failed"]
    assert failed and all(r["target"] == evil[0] for r in failed)
    detail = failed[-1]["detail"]
    assert "default MFA method" in detail and "mobile phone" in detail and "Pixel 7" not in detail
    assert "beta" in detail and "run remediate again" in detail
    # No attempt to switch the default through an API the product does not use.
    assert not [m for m in t.mutations_for(upn) if "signInPreferences" in m["path"]]
