"""Delegates end to end: FullAccess, SendAs and SendOnBehalf planted in the simulator between two scans land in the
snapshot and are reported new by ``delegates.new_mailbox_delegate``; Deny / inherited / SELF entries never do."""

from __future__ import annotations

from typing import Any

from scanner.collectors.delegates import index_send_as, send_as_grants
from scanner.collectors.exchange import MailboxDirectory, _mailbox_row
from scanner.store import Store
from scanner.sweep import run_scan

TRUSTEE = "nestor.wilke@contoso.com"


def _background_mailboxes(tenant: Any, n: int) -> list[Any]:
    return [u for u in tenant.iter_users()
            if not u.explicit and u.mailbox is not None and u.mailbox.kind == "user" and u.accountEnabled][:n]


async def test_planted_delegates_land_in_the_snapshot_and_are_new_on_the_next_scan(sim_env: Any) -> None:
    t = sim_env.tenant
    first = await run_scan(sim_env.cfg, **sim_env.kwargs)
    full, send_as, on_behalf, noise = (u.userPrincipalName for u in _background_mailboxes(t, 4))
    t.add_delegate(full, TRUSTEE, "FullAccess")
    t.add_delegate(send_as, TRUSTEE, "SendAs")
    t.add_delegate(on_behalf, TRUSTEE, "SendOnBehalf")
    # Entries that are not delegations: a Deny ACE, an inherited one, and SELF (already on every mailbox).
    nu = t.user(noise)
    t.mark_dirty(nu)
    t.recipient_permissions(nu).extend([
        {"Trustee": TRUSTEE, "AccessRights": ["SendAs"], "AccessControlType": "Deny", "IsInherited": False,
         "InheritanceType": "None"},
        {"Trustee": "megan.bowen@contoso.com", "AccessRights": ["SendAs"], "AccessControlType": "Allow",
         "IsInherited": True, "InheritanceType": "All"},
    ])
    second = await run_scan(sim_env.cfg, **sim_env.kwargs)
    assert second.exit_code in (0, 1) and not [e for e in second.errors if e["collector"] == "delegates"]

    with Store(sim_env.cfg.database_path) as store:
        def delegates(upn: str) -> set[tuple[str, str | None]]:
            acc = store.get_account(second.scan_id, upn)
            assert acc is not None
            return {(d.access_right, d.trustee_address) for d in acc.require("delegates")}

        assert delegates(full) == {("FullAccess", TRUSTEE)}
        assert delegates(send_as) == {("SendAs", TRUSTEE)}
        assert delegates(on_behalf) == {("SendOnBehalf", TRUSTEE)}  # Get-Mailbox shows the display name
        assert delegates(noise) == set()
        new = {(f["account"], f["evidence"]["access_right"]) for f in store.findings(second.scan_id)
               if f["detector"] == "delegates.new_mailbox_delegate" and f["new_since_last_scan"]}
        before = {f["account"] for f in store.findings(first.scan_id)
                  if f["detector"] == "delegates.new_mailbox_delegate"}
    assert new == {(full, "FullAccess"), (send_as, "SendAs"), (on_behalf, "SendOnBehalf")}
    assert not before & {full, send_as, on_behalf}


def _directory() -> MailboxDirectory:
    rows = [
        {"Identity": "lidiah", "Name": "lidiah", "Alias": "lidiah", "DisplayName": "Lidia Holloway",
         "UserPrincipalName": "lidia.holloway@contoso.com", "PrimarySmtpAddress": "lidia@contoso.com",
         "ExternalDirectoryObjectId": "AAAA0000-0000-4000-8000-000000000001", "RecipientTypeDetails": "UserMailbox",
         "EmailAddresses": ["SMTP:lidia@contoso.com", "smtp:lidiah@contoso.onmicrosoft.com"]},
        {"Identity": "Finance Team", "Name": "Finance Team", "Alias": "finance", "DisplayName": "Finance Team",
         "UserPrincipalName": "finance@contoso.com", "PrimarySmtpAddress": "finance@contoso.com",
         "ExternalDirectoryObjectId": "aaaa0000-0000-4000-8000-000000000002", "RecipientTypeDetails": "SharedMailbox"},
    ]
    return MailboxDirectory.from_rows([_mailbox_row(r) for r in rows])


def test_send_as_identity_joins_by_any_exchange_name() -> None:
    raw = [
        {"Identity": "Lidia Holloway", "Trustee": "attacker@contoso.com", "AccessControlType": "Allow",
         "AccessRights": ["SendAs"], "IsInherited": False},  # display name
        {"Identity": "lidiah@contoso.onmicrosoft.com", "Trustee": "helper@contoso.com", "AccessControlType": "Allow",
         "AccessRights": "SendAs", "IsInherited": "False"},  # a secondary address; string booleans
        {"Identity": "finance", "Trustee": "lidia@contoso.com", "AccessControlType": "Allow",
         "AccessRights": ["SendAs"], "IsInherited": False},  # alias
        {"Identity": "lidiah", "Trustee": "NT AUTHORITY\\SELF", "AccessControlType": "Allow",
         "AccessRights": ["SendAs"], "IsInherited": False},
        {"Identity": "lidiah", "Trustee": "denied@contoso.com", "AccessControlType": "Deny",
         "AccessRights": ["SendAs"], "IsInherited": False},
        {"Identity": "lidiah", "Trustee": "parent@contoso.com", "AccessControlType": "Allow",
         "AccessRights": ["SendAs"], "IsInherited": True},
        {"Identity": "lidiah", "Trustee": "other@contoso.com", "AccessControlType": "Allow",
         "AccessRights": ["ReadPermission"], "IsInherited": False},
        {"Identity": "Nobody Known", "Trustee": "x@contoso.com", "AccessControlType": "Allow",
         "AccessRights": ["SendAs"], "IsInherited": False},
    ]
    grants = send_as_grants(raw)
    assert [g["trustee"] for g in grants] == ["attacker@contoso.com", "helper@contoso.com", "lidia@contoso.com",
                                              "x@contoso.com"]
    by_id = index_send_as(grants, _directory())
    assert {k: sorted(g["trustee"] for g in v) for k, v in by_id.items()} == {
        "aaaa0000-0000-4000-8000-000000000001": ["attacker@contoso.com", "helper@contoso.com"],
        "aaaa0000-0000-4000-8000-000000000002": ["lidia@contoso.com"],
    }
