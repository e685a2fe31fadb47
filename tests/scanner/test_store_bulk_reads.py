"""The store's bulk reads used by the incremental sweep, detection's second night and the report: many accounts'
snapshots (or findings) a few queries at a time, matched case-insensitively, keyed by lower-case UPN; a partial read
parses only the collections asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scanner.snapshot import AccountSnapshot, AuthMethod, InboxRule, Registration, User
from scanner.store import Store

WHEN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def snap(i: int) -> AccountSnapshot:
    upn = f"User{i}@Contoso.com"
    return AccountSnapshot(
        user=User(id=f"id-{i}", user_principal_name=upn, mailbox_type="UserMailbox"),
        auth_methods=(AuthMethod(id=f"m{i}", method_type="phoneAuthenticationMethod", phone_number=f"+1 555 010{i}"),),
        registration=Registration(methods_registered=("mobilePhone",), last_updated_date_time=WHEN),
        inbox_rules=(InboxRule(id=f"r{i}", display_name=f"rule {i}"),),
    )


def test_get_accounts_reads_many_case_insensitively_in_chunks(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        sid = store.begin_scan("contoso.onmicrosoft.com")
        store.put_accounts(sid, [snap(i) for i in range(7)])
        asked = [f"user{i}@contoso.COM" for i in (0, 3, 5, 6)] + ["nobody@contoso.com", "USER3@contoso.com"]

        got = store.get_accounts(sid, asked, chunk=2)  # several queries, a duplicate, an absent account
        assert set(got) == {"user0@contoso.com", "user3@contoso.com", "user5@contoso.com", "user6@contoso.com"}
        assert got["user5@contoso.com"] == snap(5)  # the whole snapshot
        assert store.get_account(sid, "USER5@CONTOSO.COM") == snap(5)
        assert store.get_account(sid, "nobody@contoso.com") is None

        part = store.get_accounts(sid, asked, fields=("auth_methods", "registration"))["user3@contoso.com"]
        assert part.user == snap(3).user
        assert part.auth_methods == snap(3).auth_methods
        assert part.registration == snap(3).registration
        assert part.inbox_rules is None  # not asked for: absent, never "no rules"
        assert part.status("inbox_rules") == "absent"


def test_findings_by_account_matches_findings_per_account(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        sid = store.begin_scan("contoso.onmicrosoft.com")
        store.put_accounts(sid, [snap(i) for i in range(3)])
        store.put_findings(sid, [
            {"id": f"f{i}-{d}", "account": f"User{i}@Contoso.com", "detector": d, "technique": "T1114.003",
             "severity": sev, "title": "t", "evidence": {"n": i}}
            for i in range(3) for d, sev in (("mail.a", "low"), ("mail.b", "high"))])
        upns = ["user0@contoso.com", "USER2@contoso.com"]
        got = store.findings_by_account(sid, upns, chunk=1)
        assert set(got) == {"user0@contoso.com", "user2@contoso.com"}
        every = store.findings(sid)  # the whole scan's query, not the per-account one
        for upn in upns:
            assert got[upn.lower()] == [f for f in every if f["account"].lower() == upn.lower()]
            assert store.findings(sid, upn) == got[upn.lower()]
        assert [f["severity"] for f in got["user2@contoso.com"]] == ["high", "low"]
