"""The view model and the evidence renderer, tested as plain data (no template)."""

from __future__ import annotations

import pandas as pd
from report_builders import finding, make_scan, open_store, user

from reports.evidence import evidence_sentence, evidence_text, parse_condition_summary
from reports.text import attack_url, reveal, safe_url, segments
from reports.viewmodel import (
    account_view,
    action_summary,
    build_report,
    group_gaps,
    manual_checklist,
    severity_chart,
    severity_trend,
    timeline,
    verdict_counts,
)
from scanner.snapshot import User

RULE_EV = {
    "rule_id": "AQAAAJ5", "rule_name": ".", "conditions": "subjectContains 'invoice'",
    "actions": "move to RSS Feeds; mark as read", "folder": "RSS Feeds", "folder_kind": "lowvis",
    "enabled": True, "hidden": False, "source": "graph",
}


def test_rule_evidence_reads_as_a_sentence() -> None:
    assert evidence_sentence("mail.inbox_rule_hides_mail", RULE_EV) == \
        "Moves mail whose subject contains 'invoice' to RSS Feeds and marks it as read (rule '.')."


def test_mailbox_forward_to_lookalike_reads_as_a_sentence() -> None:
    ev = {"destination": "j.doe@contoso-payments.com", "domain": "contoso-payments.com", "domain_class": "lookalike",
          "lookalike_of": "contoso.com", "setting": "ForwardingSmtpAddress", "kept_copy": True}
    assert evidence_sentence("mail.mailbox_external_forward", ev) == (
        "Forwards all mail to j.doe@contoso-payments.com, a look-alike of contoso.com "
        "(mailbox setting ForwardingSmtpAddress).")
    ev["kept_copy"] = False
    assert evidence_sentence("mail.mailbox_external_forward", ev).startswith(
        "Redirects all mail to j.doe@contoso-payments.com, a look-alike of contoso.com, and keeps no copy")


def test_rule_forward_with_graph_shaped_evidence() -> None:
    ev = {"rule_name": "x", "conditions": {"bodyOrSubjectContains": ["wire", "payment"]},
          "actions": {"forwardTo": [{"emailAddress": {"address": "ap@gmail.com"}}], "delete": True},
          "domain_class": "freemail", "hidden": True}
    assert evidence_sentence("mail.inbox_rule_external_forward", ev) == (
        "Forwards mail whose subject or body contains 'wire' or 'payment' to ap@gmail.com, a free-mail address, "
        "and deletes it (rule 'x'; hidden: only Exchange shows it, not Outlook or Graph).")


def test_rule_with_no_conditions_is_all_mail() -> None:
    ev = {**RULE_EV, "conditions": "(none: applies to every message)", "actions": "delete", "folder": None}
    assert evidence_sentence("mail.inbox_rule_deletes", ev) == "Deletes all mail (rule '.')."


def test_unknown_detector_and_missing_keys_fall_back_to_key_values() -> None:
    assert evidence_sentence("future.thing", {"widget_count": 3, "names": ["a", "b"], "ok": False}) == \
        "widget count: 3; names: a and b; ok: no."
    assert evidence_sentence("mail.inbox_rule_hides_mail", {}) == "No further evidence recorded."
    assert evidence_sentence("identity.auth_method_added", {"weird": {"nested": 1}}) == "weird: nested: 1."
    # Wrong types never raise
    assert evidence_sentence("mail.inbox_rule_x", {"conditions": 5, "actions": ["?"], "destinations": "nope"})


def test_other_families() -> None:
    assert evidence_sentence("identity.new_auth_method", {"method_type": "phoneAuthenticationMethod",
                                                          "phone_number": "+44 7700 900123"}) == \
        "A phone sign-in method (+44 7700 900123) was registered since the last scan."
    assert "Consented to the app 'PerfectData Software'" in evidence_sentence(
        "apps.oauth_mail_grant", {"app_display_name": "PerfectData Software", "scopes": ["Mail.Read"]})
    assert evidence_sentence("mail.sending_blocked", {"blocked_from_sending": True}).startswith("Microsoft has")


def test_condition_summary_parser_handles_quotes_and_separators() -> None:
    assert parse_condition_summary("subjectContains 'invoice', \"it's; odd\"; fromAddresses 'cfo@contoso.com'") == \
        {"subjectContains": ["invoice", "it's; odd"], "fromAddresses": ["cfo@contoso.com"]}


def test_invisible_characters_become_markers() -> None:
    assert reveal("a\u202eb\u200bc") == "a⟦U+202E⟧b⟦U+200B⟧c"
    assert reveal("café") == "café"
    assert [(s.text, s.hidden) for s in segments("x\u200dy")] == [("x", False), ("⟦U+200D⟧", True), ("y", False)]
    assert evidence_text("future.x", {"name": "\u202etxt"}) == "name: ⟦U+202E⟧txt."


def test_links_only_from_validated_values() -> None:
    assert attack_url("T1114.003") == "https://attack.mitre.org/techniques/T1114/003/"
    assert attack_url("T1528") == "https://attack.mitre.org/techniques/T1528/"
    for bad in ("T1114.003/../../evil", "javascript:alert(1)", "T1114.03", " T1528x", None, 5):
        assert attack_url(bad) is None
    assert safe_url("https://mysignins.microsoft.com/security-info") == "https://mysignins.microsoft.com/security-info"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "//evil.com", "http://",
                "https://a\u202e.com", "https://x.com/\"onmouseover=", "vbscript:x"):
        assert safe_url(bad) is None


def test_manual_checklist_adds_on_premises_step_for_synced_accounts() -> None:
    synced = User(id="1", user_principal_name="a@contoso.com", on_premises_sync_enabled=True,
                  mobile_phone="+1 555 0100")
    keys = [c.key for c in manual_checklist(synced)]
    assert keys == ["app_passwords", "sent_items", "warn_contacts", "contact_details", "other_services",
                    "on_premises"]
    assert "Graph cannot list or delete app passwords" in manual_checklist(synced)[0].text
    assert "+1 555 0100" in manual_checklist(synced)[3].text
    cloud = User(id="2", user_principal_name="b@contoso.com", on_premises_sync_enabled=False)
    assert "on_premises" not in [c.key for c in manual_checklist(cloud)]
    assert manual_checklist(None)[-1].title.startswith("Check whether")


def test_account_view_splits_suppressed_and_orders_by_severity() -> None:
    fs = [finding("a@contoso.com", "mail.x", severity="medium", artefact="1", new=False),
          finding("a@contoso.com", "mail.y", severity="critical", artefact="2", technique="T1564.008"),
          finding("a@contoso.com", "mail.z", severity="info", artefact="3", suppressed="allowlist: partner.com")]
    v = account_view({"upn": "a@contoso.com", "verdict": "compromised", "score": 80}, fs)
    assert [f.detector for f in v.findings] == ["mail.y", "mail.x"]
    assert [(f.detector, f.suppressed) for f in v.suppressed] == [("mail.z", "allowlist: partner.com")]
    assert v.max_severity == "critical" and v.new is True
    assert v.techniques == ("T1114.003", "T1564.008")
    assert v.findings[0].technique_url == "https://attack.mitre.org/techniques/T1564/008/"
    assert len(v.checklist) == 6  # flagged: manual checklist shown
    clean = account_view({"upn": "b@contoso.com", "verdict": "clean"}, [])
    assert clean.checklist == () and clean.max_severity == "none"


def test_gaps_grouped_by_collector_and_reason() -> None:
    errors = [{"upn": f"u{i}@contoso.com", "collector": "inbox_rules", "message": "Access is denied",
               "code": "ErrorAccessDenied"} for i in range(15)]
    errors += [{"upn": "u1@contoso.com", "collector": "auth_methods", "message": "timeout", "code": None},
               {"upn": None, "collector": "roles", "message": "403 Forbidden", "code": "Authorization_RequestDenied",
                "permission": "RoleManagement.Read.Directory"}]
    groups = group_gaps(errors)
    assert [(g.collector, g.count, g.tenant_level) for g in groups] == [
        ("roles", 1, True), ("inbox_rules", 15, False), ("auth_methods", 1, False)]
    assert groups[0].permission == "RoleManagement.Read.Directory"
    assert len(groups[1].accounts) == 12 and groups[1].more == 3
    assert groups[1].reason == "ErrorAccessDenied: Access is denied"


def test_action_summary_uses_latest_row_per_action() -> None:
    rows = [{"seq": 1, "action_id": "a1", "upn": "x@c.com", "step": "disable_rules", "status": "planned",
             "time": "2026-01-01T00:00:00Z"},
            {"seq": 2, "action_id": "a1", "upn": "x@c.com", "step": "disable_rules", "status": "applied",
             "time": "2026-01-01T00:01:00Z"},
            {"seq": 3, "action_id": "a2", "upn": "x@c.com", "step": "reset_password", "status": "planned",
             "time": "2026-01-01T00:02:00Z"},
            {"seq": 4, "action_id": "a3", "upn": "y@c.com", "step": "revoke_sessions", "status": "failed",
             "time": "2026-01-01T00:03:00Z"}]
    s = action_summary(rows)
    assert (s.done, s.pending, s.failed) == (1, 1, 1)
    assert [r.action_id for r in s.rows] == ["a3", "a2", "a1"]
    assert s.upns == ("y@c.com", "x@c.com")


def test_verdict_counts_and_severity_trend() -> None:
    df = pd.DataFrame({"verdict": ["clean", "compromised", "clean", None, "suspicious"]})
    assert verdict_counts(df) == {"compromised": 1, "suspicious": 1, "clean": 3}
    trend = severity_trend([
        {"scan_id": "s2", "started": "2026-01-02T00:00:00Z", "severity": 3, "n": 2},
        {"scan_id": "s1", "started": "2026-01-01T00:00:00Z", "severity": 4, "n": 1},
        {"scan_id": "s1", "started": "2026-01-01T00:00:00Z", "severity": 3, "n": 4},
    ])
    assert list(trend["scan_id"]) == ["s1", "s2"]
    assert list(trend["high"]) == [4, 2] and list(trend["critical"]) == [1, 0]
    chart = severity_chart(trend)
    assert not chart.empty
    assert sorted(b.cls for b in chart.bars) == ["sev-critical", "sev-high", "sev-high"]
    # Bars of the first scan stack: critical sits on top of high
    first = [b for b in chart.bars if b.x == min(b.x for b in chart.bars)]
    hi = next(b for b in first if b.cls == "sev-high")
    cr = next(b for b in first if b.cls == "sev-critical")
    assert abs(cr.y + cr.h - hi.y) < 0.2
    assert severity_chart(severity_trend([])).empty


def test_timeline_one_row_per_account_spanning_first_to_last_seen() -> None:
    tl = timeline([
        {"upn": "a@c.com", "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-03T00:00:00Z",
         "verdict": "compromised"},
        {"upn": "a@c.com", "first_seen": "2026-01-02T00:00:00Z", "last_seen": "2026-01-05T00:00:00Z",
         "verdict": "compromised"},
        {"upn": "b@c.com", "first_seen": "2026-01-04T00:00:00Z", "last_seen": "2026-01-04T00:00:00Z",
         "resolved": "2026-01-05T00:00:00Z", "verdict": "suspicious"},
    ], now="2026-01-05T00:00:00Z")
    assert [(r.upn, r.first_seen, r.last_seen, r.resolved) for r in tl.rows] == [
        ("a@c.com", "2026-01-01 00:00 UTC", "2026-01-05 00:00 UTC", False),
        ("b@c.com", "2026-01-04 00:00 UTC", "2026-01-04 00:00 UTC", True)]
    a = tl.rows[0]
    assert a.x1 == tl.label_width and a.x2 == tl.width - 16


def test_build_report_from_store_summarises_clean_accounts(tmp_path) -> None:
    store = open_store(tmp_path)
    accounts = [user(f"user{i:03d}@contoso.com") for i in range(40)] + [
        user("victim@contoso.com", display_name="Vic Tim", on_premises_sync_enabled=True)]
    fs = [finding("victim@contoso.com", "mail.inbox_rule_hides_mail", evidence=RULE_EV, artefact="r1"),
          finding("user001@contoso.com", "mail.mailbox_external_forward", severity="info",
                  suppressed="allowlist: partner.com", artefact="f1", evidence={"destination": "a@partner.com"})]
    scan_id = make_scan(store, accounts, fs,
                        errors=[("user002@contoso.com", "inbox_rules", "denied", "ErrorAccessDenied")])
    store.journal_append({"action_id": "act1", "upn": "victim@contoso.com", "step": "disable_rules",
                          "status": "applied", "target": "rule .", "scan_id": scan_id})
    m = build_report(store, scan_id)
    assert m.summary.accounts_scanned == 41
    assert m.summary.verdicts == {"compromised": 1, "suspicious": 0, "clean": 40}
    assert m.summary.tenant_name == "Contoso Ltd" and m.summary.first_scan
    # victim (flagged) and user001 (suppressed finding) are drawn; the 39 others are summarised
    assert [a.upn for a in m.accounts] == ["victim@contoso.com", "user001@contoso.com"]
    assert m.clean_count == 39 and "user002@contoso.com" in m.clean_upns
    v = m.accounts[0]
    assert v.findings[0].sentence.startswith("Moves mail whose subject contains 'invoice' to RSS Feeds")
    assert v.synced is True and v.checklist[-1].key == "on_premises"
    assert [(j.step, j.state) for j in v.journal] == [("disable_rules", "done")]
    assert m.summary.actions.done == 1
    assert [(g.collector, g.accounts) for g in m.summary.gaps] == [("inbox_rules", ("user002@contoso.com",))]
    assert m.summary.findings_total == 1 and m.summary.suppressed_total == 1
    assert not m.severity_chart.empty
    assert m.timeline.empty  # one scan of history: first seen == last seen, nothing to draw yet


def test_new_since_last_scan_and_trend_over_two_scans(tmp_path) -> None:
    store = open_store(tmp_path)
    accs = [user("a@contoso.com"), user("b@contoso.com")]
    make_scan(store, accs, [finding("a@contoso.com", "mail.x", artefact="1", new=False)])
    second = make_scan(store, accs, [finding("a@contoso.com", "mail.x", artefact="1", new=False),
                                     finding("b@contoso.com", "mail.y", artefact="2", new=True)])
    m = build_report(store, second)
    assert not m.summary.first_scan
    assert m.summary.new_accounts == ("b@contoso.com",) and m.summary.new_findings == 1
    assert m.trend_scans == 2 and len(m.severity_chart.bars) == 2
    assert [r.upn for r in m.timeline.rows] == ["a@contoso.com", "b@contoso.com"]
    a, b = m.timeline.rows
    assert a.x1 <= b.x1  # a was first seen in the first scan, b in the second


def test_detector_catalogue_evidence_shapes_read_as_sentences() -> None:
    """Evidence as the current detectors write it (summary strings, not Graph dicts)."""
    assert evidence_sentence("mail.inbox_rule_external_forward", {
        "rule_name": ".", "conditions": "bodyOrSubjectContains 'invoice', 'wire'",
        "actions": "forward to billing@contoso-payments.com (lookalike); move to RSS Feeds; mark as read",
        "destinations": [{"destination": "billing@contoso-payments.com", "domain_class": "lookalike",
                          "lookalike_of": "contoso.com"}]}) == (
        "Forwards mail whose subject or body contains 'invoice' or 'wire' to billing@contoso-payments.com, a "
        "look-alike of contoso.com, moves it to RSS Feeds, and marks it as read (rule '.').")
    assert evidence_sentence("mail.inbox_rule_hidden", {
        "rule_name": "Microsoft.Exchange.Sync", "conditions": "(none: applies to every message)", "hidden": True,
        "actions": "forward to accounts@c0ntoso.com (lookalike)"}) == (
        "Forwards all mail to accounts@c0ntoso.com, a look-alike domain (rule 'Microsoft.Exchange.Sync'; hidden: "
        "only Exchange shows it, not Outlook or Graph).")
    assert evidence_sentence("mail.inbox_rule_targets_person", {
        "rule_name": "it", "conditions": "senderContains 'helpdesk'", "actions": "move to  ; mark as read",
        "folder": " ", "folder_kind": "lowvis"}) == \
        "Moves mail whose sender contains 'helpdesk' to the folder ' ' and marks it as read (rule 'it')."
    assert evidence_sentence("auth.privileged_method_change", {
        "roles": ["Global Administrator"], "added": ["microsoftAuthenticator Galaxy A14"], "removed": []}) == \
        "Sign-in methods changed on an account that holds Global Administrator: added Microsoft Authenticator " \
        "(Galaxy A14)."
    assert evidence_sentence("oauth.known_bec_tool", {
        "app": "PerfectData Software", "publisher": "PerfectData Software", "verified_publisher": None,
        "mail_scopes": ["EWS.AccessAsUser.All"], "offline_access": True, "tool": "perfectdata"}) == (
        "Consented to the app 'PerfectData Software' (publisher 'PerfectData Software', not verified), which can "
        "use EWS.AccessAsUser.All with offline access (a refresh token that outlives a password reset); this app "
        "is known BEC mailbox-export tooling.")
    assert evidence_sentence("sending.blocked_from_sending", {"blocked_from_sending": True, "sent_last_24h": 900}) == \
        "Microsoft has restricted this account from sending mail (outbound spam limits) after 900 messages in the " \
        "last 24 hours."
    assert evidence_sentence("mail.forward_destination_shared", {
        "destination": "accounts@c0ntoso.com", "domain_class": "lookalike", "lookalike_of": "contoso.com",
        "other_accounts": ["isaiah.langer@contoso.com"]}) == (
        "Forwards all mail to accounts@c0ntoso.com, a look-alike of contoso.com; isaiah.langer@contoso.com "
        "forwards there too.")


def test_scan_duration_reads_like_a_duration() -> None:
    from reports.viewmodel import fmt_duration

    start = "2026-12-04T02:00:00.000000Z"
    assert fmt_duration(start, "2026-12-04T02:00:00.400000Z") == "0.4 s"
    assert fmt_duration(start, "2026-12-04T02:00:42.900000Z") == "42 s"
    assert fmt_duration(start, "2026-12-04T02:11:31.000000Z") == "11 min 31 s"
    assert fmt_duration(start, "2026-12-04T04:05:00.000000Z") == "2 h 5 min"
    assert fmt_duration(start, None) == "not finished"


def test_exchange_role_group_membership_reads_as_a_sentence() -> None:
    ev = {"role_group": "Organization Management", "roles": ["Role Management", "Mail Recipients", "Transport Rules"],
          "role_group_type": "Standard", "member": "Adele Vance", "via_group": None,
          "job_title_mismatch": "Sales Associate"}
    text = evidence_sentence("roles.exchange_role_group_new", ev)
    assert text.startswith("Became a member of the Exchange role group 'Organization Management' since the last scan")
    assert "Role Management, Mail Recipients and Transport Rules" in text and "'Sales Associate'" in text
