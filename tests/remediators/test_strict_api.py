"""Remediation steps against rules Microsoft documents and a lenient server would let slide: the simulator enforces
them, the steps must follow them (tenant state is read back from the simulator, never from the journal alone)."""

from __future__ import annotations

from pathlib import Path

from remhelpers import Scanned, plant_compromise, user_mailboxes

from scanner.simulator import create_app, generate_tenant

PHONE_MOBILE = "3179e48a-750b-4051-897c-87b9720928f7"
PHONE_ALTERNATE = "b6332ec1-7057-4abe-9331-3d72feddfe41"


def _fresh_user(seed: int) -> tuple:
    t = generate_tenant(users=40, seed=seed, scenarios=False)
    upn = user_mailboxes(t, 1)[0]
    u = t.user(upn)
    u._methods = [m for m in t.methods(u) if m["@odata.type"].endswith("passwordAuthenticationMethod")]
    u._default_method = None
    return t, upn, u


def test_attacker_mobile_and_alternate_phone_are_both_removed(tmp_path: Path) -> None:
    # Graph: "A user can't have an alternateMobile number without a mobile number" — deleting the mobile number
    # while the alternate exists is refused, so the alternate has to go first.
    t, upn, u = _fresh_user(21)
    legit = t.add_method(u, "microsoftAuthenticatorMethods", {"displayName": "iPhone 14", "deviceTag":
                         "SoftwareTokenActivated", "phoneAppVersion": "6.7.1"}, log=False, default=True)
    s = Scanned(tmp_path, t, create_app(t))  # baseline
    t.add_method(u, "phoneMethods", {"phoneNumber": "+44 7700 900123", "phoneType": "mobile",
                                     "smsSignInState": "notSupported"})
    t.add_method(u, "phoneMethods", {"phoneNumber": "+44 7700 900456", "phoneType": "alternateMobile",
                                     "smsSignInState": "notSupported"})
    s.rescan()
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--yes")
    assert res.exit_code == 0, res.output
    assert {m["id"] for m in t.methods(u)} == {"28c10230-6103-485e-b985-444c60001490", legit["id"]}
    deletes = [m["path"].rsplit("/", 1)[-1] for m in t.mutations_for(upn) if m["method"] == "DELETE"]
    assert deletes == [PHONE_ALTERNATE, PHONE_MOBILE]


def test_attacker_mobile_with_a_legitimate_alternate_is_a_clear_manual_action(tmp_path: Path) -> None:
    t, upn, u = _fresh_user(22)
    t.add_method(u, "microsoftAuthenticatorMethods", {"displayName": "iPhone 14", "deviceTag":
                 "SoftwareTokenActivated", "phoneAppVersion": "6.7.1"}, log=False, default=True)
    t.add_method(u, "phoneMethods", {"phoneNumber": "+44 7700 900456", "phoneType": "alternateMobile",
                                     "smsSignInState": "notSupported"}, log=False)
    s = Scanned(tmp_path, t, create_app(t))
    t.add_method(u, "phoneMethods", {"phoneNumber": "+44 7700 900123", "phoneType": "mobile",
                                     "smsSignInState": "notSupported"})
    s.rescan()
    res = s.remediate("--user", upn, "--step", "remove_auth_methods", "--yes")
    assert res.exit_code == 1, res.output
    assert {PHONE_MOBILE, PHONE_ALTERNATE} <= {m["id"] for m in t.methods(u)}  # nothing legitimate touched
    (row,) = [r for r in s.journal(upn) if r["step"] == "remove_auth_methods" and r["status"] == "failed"]
    assert row["target"] == PHONE_MOBILE and "alternate mobile phone" in row["detail"]
    assert "run remediate again" in row["detail"]


def _applied(s: Scanned, upn: str, step: str) -> list[dict]:
    return [r for r in s.journal(upn) if r["step"] == step and r["status"] == "applied"]


def test_forwarding_to_an_internal_recipient_is_cleared_and_restored_by_undo(tmp_path: Path) -> None:
    # Get-Mailbox prints ForwardingAddress as the recipient's name, not an address; Set-Mailbox takes any value that
    # uniquely identifies the recipient (Name included), so the name read back is what undo writes.
    t = generate_tenant(users=40, seed=23, scenarios=False)
    upn, other = user_mailboxes(t, 2)
    s = Scanned(tmp_path, t, create_app(t))
    t.set_forwarding(upn, address=other, deliver_and_forward=True)
    s.rescan()
    mbx = t.user(upn).mailbox
    res = s.remediate("--user", upn, "--step", "remove_forwarding", "--yes")
    assert res.exit_code == 0, res.output
    assert (mbx.forwarding_address, mbx.forwarding_smtp, mbx.deliver_and_forward) == (None, None, False)
    (row,) = _applied(s, upn, "remove_forwarding")
    res = s.undo(row["action_id"])
    assert res.exit_code == 0, res.output
    assert (mbx.forwarding_address, mbx.deliver_and_forward) == (other, True)


def test_full_access_with_another_inheritance_is_removed_and_restored_as_it_was(tmp_path: Path) -> None:
    # Remove-MailboxPermission takes the rights off the ACE with the same inheritance (-InheritanceType, default All);
    # for any other it warns "the ACE doesn't exist" and succeeds without changing anything.
    t = generate_tenant(users=40, seed=24, scenarios=False)
    upn, other = user_mailboxes(t, 2)
    u = t.user(upn)
    s = Scanned(tmp_path, t, create_app(t))
    t.add_delegate(upn, other, "FullAccess")
    t.mailbox_permissions(u)[-1]["InheritanceType"] = "SelfAndChildren"
    s.rescan()
    res = s.remediate("--user", upn, "--step", "remove_delegates", "--yes")
    assert res.exit_code == 0, res.output
    assert [p["User"] for p in t.mailbox_permissions(u)] == ["NT AUTHORITY\\SELF"]
    (row,) = _applied(s, upn, "remove_delegates")
    res = s.undo(row["action_id"])
    assert res.exit_code == 0, res.output
    back = [p for p in t.mailbox_permissions(u) if p["User"].lower() == other.lower()]
    assert [(p["AccessRights"], p["Deny"], p["InheritanceType"]) for p in back] == [
        (["FullAccess"], False, "SelfAndChildren")]


def test_send_as_on_a_mailbox_whose_address_is_not_its_upn(tmp_path: Path) -> None:
    # The *-RecipientPermission cmdlets take a RecipientIdParameter (name, alias, DN, email address, GUID), not a
    # user principal name: the steps name the mailbox by its primary SMTP address.
    t = generate_tenant(users=40, seed=25, scenarios=False)
    u = t.user("grady.archie@contoso.com")
    u.mail = "g.archie@contoso.com"  # renamed: the UPN is no longer one of the mailbox's addresses
    other = user_mailboxes(t, 1)[0]
    s = Scanned(tmp_path, t, create_app(t))
    t.add_delegate(u, other, "SendAs")
    s.rescan()
    res = s.remediate("--user", u.userPrincipalName, "--step", "remove_delegates", "--yes")
    assert res.exit_code == 0, res.output
    assert [p["Trustee"] for p in t.recipient_permissions(u)] == ["NT AUTHORITY\\SELF"]
    (row,) = _applied(s, u.userPrincipalName, "remove_delegates")
    res = s.undo(row["action_id"])
    assert res.exit_code == 0, res.output
    assert [(p["Trustee"], p["AccessRights"]) for p in t.recipient_permissions(u)][-1] == (other, ["SendAs"])


def test_a_user_whose_upn_begins_with_a_dollar_sign(tmp_path: Path) -> None:
    # Graph: /users/$x@contoso.com is a bad request (OData reserves '$'); /users('$x@contoso.com') addresses the user.
    t = generate_tenant(users=40, seed=26, scenarios=False)
    u = t.user("lynne.robbins@contoso.com")
    upn = "$lynne.robbins@contoso.com"
    u.userPrincipalName = upn
    t._upn_explicit[upn] = u.index
    s = Scanned(tmp_path, t, create_app(t))
    res = s.remediate("--user", upn, "--step", "block_sign_in", "--yes")
    assert res.exit_code == 0, res.output
    assert u.accountEnabled is False


def test_hidden_rule_is_disabled_and_re_enabled_in_a_mailbox_used_with_outlook(tmp_path: Path) -> None:
    # Saving rules through Exchange deletes Outlook's rules blob, which Disable-/Enable-InboxRule confirm first; -Force
    # is "for tasks run programmatically where prompting is inappropriate". Without it, over REST, nothing is saved.
    t = generate_tenant(users=40, seed=27, scenarios=False)
    upn = user_mailboxes(t, 1)[0]
    s = Scanned(tmp_path, t, create_app(t))
    plant_compromise(t, upn)
    s.rescan()
    mbx = t.user(upn).mailbox
    assert mbx.outlook_rules_blob
    (hidden,) = [r for r in t.rules(t.user(upn)) if r.hidden and r.displayName == ".."]
    res = s.remediate("--user", upn, "--step", "disable_rules", "--yes")
    assert res.exit_code == 0, res.output
    assert hidden.isEnabled is False
    assert not mbx.always_delete_outlook_rules_blob  # the user's own Outlook option is left alone
    row = next(r for r in _applied(s, upn, "disable_rules") if r["target"].startswith("exo:"))
    assert s.undo(row["action_id"]).exit_code == 0
    assert hidden.isEnabled is True
