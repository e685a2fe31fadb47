"""Per-detector cases as data: (detector id, case name, spec for tests.detectors.builders, expected).

``expected`` is True (the detector fires, unsuppressed), False (silent), or "suppressed" (fires, allow-listed).
Every detector needs at least one firing and one silent case (a meta-test checks it); silent cases are benign
look-alikes of the firing ones wherever possible.
"""

from __future__ import annotations

from typing import Any

FWD = lambda *a: {"forwardTo": list(a)}  # noqa: E731

# Outbound auto-forwarding policies (TenantInfo.outbound_policy, detectors/_outbound.py): the default policy Off and
# the Default remote domain, plus a documented exception — a custom policy On scoped (From) to alice.
_DEFAULT_RD = {"name": "Default", "domain_name": "*", "auto_forward_enabled": True}
_DEFAULT_OFF = {"name": "Default", "auto_forwarding_mode": "Off", "is_default": True}
OUTBOUND_OFF = {"remote_domains": [_DEFAULT_RD], "policies": [_DEFAULT_OFF]}
OUTBOUND_AP = {"remote_domains": [_DEFAULT_RD],
               "policies": [_DEFAULT_OFF, {"name": "AP bookkeeping", "auto_forwarding_mode": "On"}],
               "rules": [{"name": "AP bookkeeping", "policy": "AP bookkeeping", "priority": 0,
                          "from_values": ["alice@contoso.com"]}]}
# The remote-domain form of the exception: Default blocks auto-forwarding, the bookkeeper's domain allows it.
OUTBOUND_RD = {"remote_domains": [{**_DEFAULT_RD, "auto_forward_enabled": False},
                                  {"name": "Ledgerline", "domain_name": "ledgerline-books.com",
                                   "auto_forward_enabled": True}],
               "policies": [{**_DEFAULT_OFF, "auto_forwarding_mode": "On"}]}
BOOKKEEPER = {"forwarding_smtp_address": "smtp:invoices@ledgerline-books.com", "deliver_to_mailbox_and_forward": True}

CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    # --- mailbox forwarding
    ("mail.mailbox_external_forward", "gmail forward", {"forwarding": {"forwarding_smtp_address": "smtp:x@gmail.com",
                                                                       "deliver_to_mailbox_and_forward": True}}, True),
    ("mail.mailbox_external_forward", "lookalike forward via mail contact", {"forwarding": {
        "forwarding_address": "Payments", "forwarding_address_resolved": "ap@contoso-payments.com"}}, True),
    ("mail.mailbox_external_forward", "internal subdomain forward", {"forwarding": {
        "forwarding_smtp_address": "smtp:bob@eu.contoso.com", "deliver_to_mailbox_and_forward": True}}, False),
    ("mail.mailbox_external_forward", "leaver forward to manager", {"user": {"account_enabled": False}, "forwarding": {
        "forwarding_address": "Manager", "forwarding_address_resolved": "manager@contoso.com",
        "deliver_to_mailbox_and_forward": True}}, False),
    ("mail.mailbox_external_forward", "allow-listed partner", {"forwarding": {
        "forwarding_smtp_address": "books@partner-accounting.com"},
        "allowlist": {"forwarding_domains": [{"value": "partner-accounting.com", "reason": "outsourced AP"}]}},
     "suppressed"),
    ("mail.mailbox_external_forward", "bookkeeper covered by a custom outbound policy On",
     {"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP}, "suppressed"),
    ("mail.mailbox_external_forward", "bookkeeper allowed by its remote domain while Default blocks",
     {"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_RD}, "suppressed"),
    ("mail.mailbox_external_forward", "gmail forward despite a custom outbound policy On",
     {"forwarding": {**BOOKKEEPER, "forwarding_smtp_address": "smtp:ap.books@gmail.com"},
      "outbound_policy": OUTBOUND_AP}, True),
    ("mail.mailbox_external_forward", "look-alike forward despite a custom outbound policy On",
     {"forwarding": {**BOOKKEEPER, "forwarding_smtp_address": "smtp:ap@contoso-ledger.com"},
      "outbound_policy": OUTBOUND_AP}, True),
    ("mail.mailbox_external_forward", "blanket default policy On is no exception",
     {"forwarding": BOOKKEEPER, "outbound_policy": {**OUTBOUND_OFF, "policies": [
         {**_DEFAULT_OFF, "auto_forwarding_mode": "On"}]}}, True),
    ("mail.mailbox_external_forward", "custom policy On scoped to another sender",
     {"forwarding": BOOKKEEPER, "outbound_policy": {**OUTBOUND_AP, "rules": [
         {**OUTBOUND_AP["rules"][0], "from_values": ["bob@contoso.com"]}]}}, True),
    ("mail.mailbox_external_forward", "exception new since the last scan is not trusted",
     {"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP, "has_previous": True,
      "previous_outbound_policy": OUTBOUND_OFF}, True),
    ("mail.mailbox_external_forward", "exception standing since the last scan",
     {"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP, "has_previous": True,
      "previous_outbound_policy": OUTBOUND_AP}, "suppressed"),
    ("mail.mailbox_external_forward", "exception with no baseline (previous scan could not read policies)",
     {"forwarding": BOOKKEEPER, "outbound_policy": OUTBOUND_AP, "has_previous": True,
      "previous_outbound_policy": "unread"}, "suppressed"),
    # --- rule forward
    ("mail.inbox_rule_external_forward", "rule forwards to gmail", {"rules": [{"displayName": "fw",
                                                                              "actions": FWD("x@gmail.com")}]}, True),
    ("mail.inbox_rule_external_forward", "suffix lookalike hr-contoso", {"rules": [{"actions": FWD("a@hr-contoso.com")}]},
     True),
    ("mail.inbox_rule_external_forward", "assistant internal", {"rules": [{"actions": FWD("assistant@contoso.com")}]},
     False),
    ("mail.inbox_rule_external_forward", "zendesk allow-listed", {"rules": [{"actions": FWD(
        "support@contoso.zendesk.com")}], "allowlist": {"forwarding_addresses": ["support@contoso.zendesk.com"]}},
     "suppressed"),
    ("mail.inbox_rule_external_forward", "rule forward to the bookkeeper covered by a custom outbound policy",
     {"rules": [{"actions": FWD("invoices@ledgerline-books.com")}], "outbound_policy": OUTBOUND_AP}, "suppressed"),
    ("mail.inbox_rule_external_forward", "covered forward that also deletes the original",
     {"rules": [{"actions": {**FWD("invoices@ledgerline-books.com"), "delete": True}}],
      "outbound_policy": OUTBOUND_AP}, True),
    ("mail.inbox_rule_external_forward", "covered and free-mail destinations in one rule",
     {"rules": [{"actions": FWD("invoices@ledgerline-books.com", "me@gmail.com")}], "outbound_policy": OUTBOUND_AP},
     True),
    # --- campaign
    ("mail.forward_destination_shared", "same gmail on two mailboxes", {
        "forwarding": {"forwarding_smtp_address": "drop@gmail.com"},
        "others": [{"upn": "bob@contoso.com", "rules": [{"actions": FWD("drop@gmail.com")}]}]}, True),
    ("mail.forward_destination_shared", "bookkeeper shared by two AP mailboxes, covered for this one", {
        "forwarding": {"forwarding_smtp_address": "invoices@ledgerline-books.com"}, "outbound_policy": OUTBOUND_AP,
        "others": [{"upn": "bob@contoso.com", "forwarding": {"forwarding_smtp_address":
                                                             "invoices@ledgerline-books.com"}}]}, "suppressed"),
    ("mail.forward_destination_shared", "destination on one mailbox only", {
        "forwarding": {"forwarding_smtp_address": "drop@gmail.com"},
        "others": [{"upn": "bob@contoso.com"}]}, False),
    # --- hidden folder
    ("mail.inbox_rule_hidden_folder_move", "RSS + mark read", {"rules": [{"conditions": {"subjectContains": ["re:"]},
                                                                         "actions": {"moveToFolder": "RSS Feeds",
                                                                                     "markAsRead": True}}]}, True),
    ("mail.inbox_rule_hidden_folder_move", "unresolvable folder id", {"rules": [{
        "conditions": {"fromAddresses": ["cfo@contoso.com"]}, "actions": {"moveToFolder": "AAMkAGI2-unknown"}}]}, True),
    ("mail.inbox_rule_hidden_folder_move", "custom Invoices folder", {"rules": [{
        "conditions": {"subjectContains": ["invoice"]}, "actions": {"moveToFolder": "Invoices", "markAsRead": True}}]},
     False),
    # --- delete
    ("mail.inbox_rule_deletes_mail", "permanent delete from a person", {"rules": [{
        "conditions": {"fromAddresses": ["jane@vendor.com"]}, "actions": {"permanentDelete": True}}]}, True),
    ("mail.inbox_rule_deletes_mail", "delete newsletter", {"rules": [{
        "conditions": {"fromAddresses": ["newsletter@shop.com"]}, "actions": {"delete": True}}]}, False),
    # --- mark read
    ("mail.inbox_rule_marks_read", "mark read from a person", {"rules": [{
        "conditions": {"fromAddresses": ["jane@vendor.com"]}, "actions": {"markAsRead": True}}]}, True),
    ("mail.inbox_rule_marks_read", "mark read notifications", {"rules": [{
        "conditions": {"fromAddresses": ["notifications@github.com"]}, "actions": {"markAsRead": True}}]}, False),
    # --- security keywords
    ("mail.inbox_rule_security_keywords", "delete hacked", {"rules": [{
        "conditions": {"bodyOrSubjectContains": ["hacked", "phishing"]}, "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_security_keywords", "Cyrillic-folded keyword", {"rules": [{
        "conditions": {"subjectContains": ["h\u0430cked"]}, "actions": {"moveToFolder": "Junk Email"}}]}, True),
    ("mail.inbox_rule_security_keywords", "SOC files reported phish", {"rules": [{
        "conditions": {"subjectContains": ["phishing report"]}, "actions": {"moveToFolder": "Reported phish"}}]}, False),
    ("mail.inbox_rule_security_keywords", "delete [SPAM] tag", {"rules": [{
        "conditions": {"subjectContains": ["[SPAM]"]}, "actions": {"delete": True}}]}, False),
    # --- financial
    ("mail.inbox_rule_financial_keywords", "forward invoices to gmail", {"rules": [{
        "conditions": {"subjectContains": ["invoice", "wire transfer"]}, "actions": FWD("ap.team@gmail.com")}]}, True),
    ("mail.inbox_rule_financial_keywords", "AP forwards invoices to the bookkeeper under an outbound-policy exception",
     {"rules": [{"conditions": {"subjectContains": ["invoice"]}, "actions": FWD("invoices@ledgerline-books.com")}],
      "outbound_policy": OUTBOUND_AP}, False),
    ("mail.inbox_rule_financial_keywords", "invoices to the bookkeeper with no exception",
     {"rules": [{"conditions": {"subjectContains": ["invoice"]}, "actions": FWD("invoices@ledgerline-books.com")}],
      "outbound_policy": OUTBOUND_OFF}, True),
    ("mail.inbox_rule_financial_keywords", "AP files invoices", {"rules": [{
        "conditions": {"subjectContains": ["invoice"]}, "actions": {"moveToFolder": "Invoices", "markAsRead": True}}]},
     False),
    # --- match-all
    ("mail.inbox_rule_match_all", "NUL body condition", {"rules": [{
        "conditions": {"bodyContains": ["\u0000"]}, "actions": {"moveToFolder": "Archive", "markAsRead": True}}]}, True),
    ("mail.inbox_rule_match_all", "zero-width keyword", {"rules": [{
        "conditions": {"subjectContains": ["in\u200bvoice"]}, "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_match_all", "tiny size range", {"rules": [{
        "conditions": {"withinSizeRange": {"minimumSize": 0, "maximumSize": 999999}}, "actions": FWD("x@gmail.com")}]},
     True),
    ("mail.inbox_rule_match_all", "vowel list", {"rules": [{
        "conditions": {"bodyOrSubjectContains": ["a;e;i;o;u"]}, "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_match_all", "empty conditions forward gmail", {"rules": [{"actions": FWD("x@gmail.com")}]}, True),
    ("mail.inbox_rule_match_all", "vacation internal forward", {"rules": [{"actions": FWD("cover@contoso.com")}]},
     False),
    ("mail.inbox_rule_match_all", "big attachments to folder", {"rules": [{
        "conditions": {"withinSizeRange": {"minimumSize": 5000, "maximumSize": 100000}},
        "actions": {"moveToFolder": "HR"}}]}, False),
    # --- junk name
    ("mail.inbox_rule_junk_name", "dot rule deletes", {"rules": [{"displayName": ".",
                                                                  "conditions": {"subjectContains": ["payment"]},
                                                                  "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_junk_name", "zero-width name", {"rules": [{"displayName": "\u200b\u200b",
                                                                 "actions": {"moveToFolder": "RSS Subscriptions"},
                                                                 "conditions": {"subjectContains": ["x"]}}]}, True),
    ("mail.inbox_rule_junk_name", "dash rule files HR", {"rules": [{"displayName": "-",
                                                                    "conditions": {"subjectContains": ["HR"]},
                                                                    "actions": {"moveToFolder": "HR"}}]}, False),
    # --- targets person
    ("mail.inbox_rule_targets_person", "delete mail from CFO", {"rules": [{
        "conditions": {"fromAddresses": ["cfo@contoso.com"]}, "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_targets_person", "hide help desk", {"rules": [{
        "conditions": {"senderContains": ["helpdesk"]}, "actions": {"moveToFolder": "Conversation History"}}]}, True),
    ("mail.inbox_rule_targets_person", "manager to Boss folder", {"rules": [{
        "conditions": {"fromAddresses": ["manager@contoso.com"]}, "actions": {"moveToFolder": "Boss"}}]}, False),
    # --- suppresses notifications
    ("mail.inbox_rule_suppresses_notifications", "delete NDRs", {"rules": [{
        "conditions": {"isNonDeliveryReport": True}, "actions": {"delete": True}}]}, True),
    ("mail.inbox_rule_suppresses_notifications", "hide MFA mail", {"rules": [{
        "conditions": {"subjectContains": ["security info", "new sign-in"]}, "actions": {"moveToFolder": "Archive"}}]},
     True),
    ("mail.inbox_rule_suppresses_notifications", "admin files alerts", {"rules": [{
        "conditions": {"subjectContains": ["unusual sign-in"]}, "actions": {"moveToFolder": "Alerts"}}]}, False),
    # --- hidden rule
    ("mail.inbox_rule_hidden", "hidden MAPI rule", {"rules": [{"displayName": "x1", "hidden": True,
                                                               "actions": {"markAsRead": True}}]}, True),
    ("mail.inbox_rule_hidden", "system junk rule", {"rules": [{"displayName": "Junk E-mail Rule", "hidden": True,
                                                               "actions": {"moveToFolder": "Junk Email"}}]}, False),
    # --- auth
    ("auth.new_method", "phone added 3h ago", {"methods": [{"id": "m-new", "phone_number": "+44 7700 900123",
                                                            "created_hours_ago": 3}]}, True),
    ("auth.new_method", "phone without timestamp first seen", {"has_previous": True, "methods": [
        {"id": "m-new", "phone_number": "+44 7700 900123"}]}, True),
    ("auth.new_method", "old phone", {"methods": [{"id": "m-old", "phone_number": "+1 555 0100",
                                                   "created_hours_ago": 24 * 300}]}, False),
    ("auth.shared_phone", "same phone as bob", {"methods": [{"id": "m-p", "phone_number": "+44 7700 900999"}],
                                                "others": [{"upn": "bob@contoso.com", "methods": [
                                                    {"id": "m-b", "phone_number": "+447700900999"}]}]}, True),
    ("auth.shared_phone", "unique phone", {"methods": [{"id": "m-p", "phone_number": "+44 7700 900999"}],
                                           "others": [{"upn": "bob@contoso.com"}]}, False),
    ("auth.temporary_access_pass", "usable TAP", {"methods": [{"id": "m-tap", "method_type":
                                                               "temporaryAccessPassAuthenticationMethod",
                                                               "is_usable": True, "created_hours_ago": 2}]}, True),
    ("auth.temporary_access_pass", "expired TAP", {"methods": [{"id": "m-tap", "method_type":
                                                                "temporaryAccessPassAuthenticationMethod",
                                                                "is_usable": False, "created_hours_ago": 200}]}, False),
    ("auth.method_removed", "authenticator removed", {"has_previous": True, "remove_methods": ["m-app"]}, True),
    ("auth.method_removed", "nothing removed", {"has_previous": True}, False),
    ("auth.privileged_method_change", "GA adds phone", {"roles": ["Global Administrator"], "has_previous": True,
                                                        "previous": {"roles": ["Global Administrator"]},
                                                        "methods": [{"id": "m-n", "phone_number": "+7 900 1234567",
                                                                     "created_hours_ago": 5}]}, True),
    ("auth.privileged_method_change", "non-admin adds phone", {"methods": [{"id": "m-n", "phone_number":
                                                                            "+7 900 1234567", "created_hours_ago": 5}]},
     False),
    ("auth.app_password_legacy_auth", "new app password", {"has_previous": True, "registration": {
        "methods_registered": ["microsoftAuthenticatorPush", "appPassword"]}}, True),
    ("auth.app_password_legacy_auth", "IMAP switched on", {"has_previous": True, "protocols": {"imap_enabled": True}},
     True),
    ("auth.app_password_legacy_auth", "no app password", {"has_previous": True}, False),
    # --- roles
    ("roles.privileged_role_new", "new Exchange admin", {"has_previous": True, "roles": [
        {"role_name": "Exchange Administrator", "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"}]}, True),
    ("roles.privileged_role_new", "eligible only", {"has_previous": True, "roles": [
        {"role_name": "Exchange Administrator", "kind": "eligible"}]}, False),
    ("roles.privileged_role_new", "standing role first scan", {"roles": ["Global Administrator"]}, False),
    ("roles.privileged_role_new", "PIM activation of an eligibility held last night", {
        "previous": {"roles": [{"role_name": "Exchange Administrator", "kind": "eligible",
                                "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"}]},
        "roles": [{"role_name": "Exchange Administrator", "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"},
                  {"role_name": "Exchange Administrator", "kind": "eligible",
                   "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"}]}, "suppressed"),
    ("roles.privileged_role_new", "made eligible and activated in one night", {"has_previous": True, "roles": [
        {"role_name": "Exchange Administrator", "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"},
        {"role_name": "Exchange Administrator", "kind": "eligible",
         "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"}]}, True),
    ("roles.privileged_account_backdoor", "GA forwards to gmail", {"roles": ["Global Administrator"], "forwarding": {
        "forwarding_smtp_address": "x@gmail.com"}}, True),
    ("roles.privileged_account_backdoor", "GA with newsletter rule", {"roles": ["Global Administrator"]}, False),
    ("roles.privileged_account_backdoor", "GA with a verified-publisher mail consent (Low +1 = Medium)", {
        "roles": ["Global Administrator"], "grants": [{"app_display_name": "Boomerang", "verified_publisher": "Baydin",
                                                       "scopes": ["Mail.ReadWrite"]}]}, True),
    ("roles.exchange_role_group_new", "added to Organization Management overnight", {
        "has_previous": True, "exchange_role_groups": ["Organization Management"]}, True),
    ("roles.exchange_role_group_new", "custom role group holding Mailbox Import Export, Sales title", {
        "has_previous": True, "user": {"job_title": "Sales Associate"},
        "exchange_role_groups": [{"group": "Export helpers", "roles": ["Mailbox Import Export"]}]}, True),
    ("roles.exchange_role_group_new", "Exchange admin in Organization Management for a year (standing)", {
        "previous": {"exchange_role_groups": ["Organization Management"]},
        "exchange_role_groups": ["Organization Management"]}, False),
    ("roles.exchange_role_group_new", "membership through a group that was there last night", {
        "previous": {"exchange_role_groups": [{"group": "Organization Management", "via_group": "Exchange Admins"}]},
        "exchange_role_groups": [{"group": "Organization Management", "via_group": "Exchange Admins"}]}, False),
    ("roles.exchange_role_group_new", "standing membership on the first scan", {
        "exchange_role_groups": ["Organization Management"]}, False),
    ("roles.exchange_role_group_new", "new member of a read-only role group", {
        "has_previous": True, "exchange_role_groups": ["View-Only Organization Management"]}, False),
    ("roles.privileged_account_backdoor", "Organization Management member forwards to gmail", {
        "exchange_role_groups": ["Organization Management"], "forwarding": {
            "forwarding_smtp_address": "x@gmail.com"}}, True),
    ("roles.guest_privileged", "guest GA", {"user": {"user_type": "Guest"}, "roles": ["Global Administrator"]}, True),
    ("roles.guest_privileged", "guest without role", {"user": {"user_type": "Guest"}}, False),
    # --- oauth
    ("oauth.mail_consent_unverified_app", "unverified Mail.ReadWrite offline", {"grants": [{
        "app_display_name": "Mail Helper Pro", "scopes": ["Mail.ReadWrite", "offline_access", "User.Read"]}]}, True),
    ("oauth.mail_consent_unverified_app", "User.Read only", {"grants": [{"app_display_name": "Zoom",
                                                                          "scopes": ["User.Read", "openid"]}]}, False),
    ("oauth.mail_consent_unverified_app", "Microsoft first party", {"grants": [{
        "app_display_name": "Microsoft Teams", "app_owner_organization_id": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "scopes": ["Mail.ReadWrite", "offline_access"]}]}, False),
    ("oauth.known_bec_tool", "PerfectData", {"grants": [{"app_display_name": "PerfectData Software",
                                                          "scopes": ["EWS.AccessAsUser.All", "offline_access"]}]}, True),
    ("oauth.known_bec_tool", "eM Client sanctioned", {"grants": [{"app_display_name": "eM Client", "app_id": "em-1",
                                                                  "scopes": ["IMAP.AccessAsUser.All"]}],
                                                      "allowlist": {"apps": [{"value": "em-1", "reason": "Linux"}]}},
     "suppressed"),
    ("oauth.known_bec_tool", "Boomerang", {"grants": [{"app_display_name": "Boomerang for Outlook",
                                                       "scopes": ["Mail.ReadWrite"]}]}, False),
    # oauth.tenant_wide_mail_grant is tenant-level (one finding per grant, not per account): TENANT_CASES below.
    # --- delegates
    ("delegates.new_mailbox_delegate", "guest FullAccess", {"delegates": [{
        "trustee": "evil_gmail.com#EXT#", "access_right": "FullAccess", "trustee_is_guest": True}]}, True),
    ("delegates.new_mailbox_delegate", "new internal SendAs", {"has_previous": True, "delegates": [{
        "trustee": "Bob", "trustee_address": "bob@contoso.com", "access_right": "SendAs"}]}, True),
    ("delegates.new_mailbox_delegate", "standing assistant", {"previous": {"delegates": [{
        "trustee": "Ann", "trustee_address": "ann@contoso.com", "access_right": "FullAccess"}]}, "delegates": [{
            "trustee": "Ann", "trustee_address": "ann@contoso.com", "access_right": "FullAccess"}]}, False),
    ("delegates.new_mailbox_delegate", "shared mailbox delegate", {"user": {"mailbox_type": "SharedMailbox"},
                                                                   "has_previous": True, "delegates": [{
        "trustee": "Bob", "trustee_address": "bob@contoso.com", "access_right": "FullAccess"}]}, False),
    # --- sending
    ("sending.blocked_from_sending", "blocked", {"sending": {"blocked_from_sending": True, "sent_last_24h": 900}}, True),
    ("sending.blocked_from_sending", "not blocked", {"sending": {"sent_last_24h": 900}}, False),
    ("sending.volume_spike", "spike", {"sending": {"sent_last_24h": 1500}, "sent_history": [20, 30, 25, 18]}, True),
    ("sending.volume_spike", "recruiter steady high", {"sending": {"sent_last_24h": 450},
                                                      "sent_history": [400, 380, 420, 500]}, False),
    # --- contact
    ("contact.contact_info_changed", "otherMails gains gmail", {"has_previous": True,
                                                                "user": {"other_mails": ["help.alice@gmail.com"]}},
     True),
    ("contact.contact_info_changed", "unchanged", {"has_previous": True}, False),
    # --- linking (detections.md §H1): fires on a first scan too
    ("contact.linked_artefact", "first scan: otherMails is the free-mail mailbox forward target", {
        "user": {"other_mails": ["a.vance.finance@outlook.com"]},
        "forwarding": {"forwarding_smtp_address": "smtp:a.vance.finance@outlook.com"}}, True),
    ("contact.linked_artefact", "email auth method is the rule's redirect target", {
        "methods": [{"id": "m-mail", "method_type": "emailAuthenticationMethod",
                     "email_address": "alice.h@proton.me", "created_hours_ago": 30}],
        "rules": [{"displayName": "r", "actions": {"redirectTo": ["alice.h@proton.me"]}}]}, True),
    ("contact.linked_artefact", "my backup address is where bob's mailbox forwards", {
        "user": {"other_mails": ["drop.box@gmail.com"]},
        "others": [{"upn": "bob@contoso.com", "forwarding": {"forwarding_smtp_address": "drop.box@gmail.com"}}]},
     True),
    ("contact.linked_artefact", "mobilePhone changed to the new phone method's number", {
        "has_previous": True, "user": {"mobile_phone": "+44 7700 900461"},
        "methods": [{"id": "m-att", "phone_number": "+447700900461", "created_hours_ago": 4}]}, True),
    ("contact.linked_artefact", "personal backup address, forward goes elsewhere (internal)", {
        "user": {"other_mails": ["alice.personal@gmail.com"]},
        "forwarding": {"forwarding_smtp_address": "bob@contoso.com"}}, False),
    ("contact.linked_artefact", "first scan: mobilePhone equals the user's own phone method", {
        "methods": [{"id": "m-ph", "phone_number": "+1 555 0100", "created_hours_ago": 20}]}, False),
    ("contact.linked_artefact", "otherMails equals the email auth method (both contact fields)", {
        "user": {"other_mails": ["alice.personal@gmail.com"]},
        "methods": [{"id": "m-mail", "method_type": "emailAuthenticationMethod",
                     "email_address": "alice.personal@gmail.com", "created_hours_ago": 9000}]}, False),
    ("contact.linked_artefact", "forward to an allow-listed partner that is also the backup address", {
        "user": {"other_mails": ["alice@partner-accounting.com"]},
        "forwarding": {"forwarding_smtp_address": "alice@partner-accounting.com"},
        "allowlist": {"forwarding_domains": [{"value": "partner-accounting.com", "reason": "secondment"}]}}, False),
    ("contact.linked_artefact", "disabled rule's old forward target equals the backup address", {
        "user": {"other_mails": ["alice.personal@gmail.com"]},
        "rules": [{"displayName": "old", "isEnabled": False, "actions": {"forwardTo": ["alice.personal@gmail.com"]}}]},
     False),
    # --- account state
    ("account.disabled_account_backdoor", "disabled with gmail forward", {"user": {"account_enabled": False},
                                                                          "forwarding": {"forwarding_smtp_address":
                                                                                         "x@gmail.com"}}, True),
    ("account.disabled_account_backdoor", "disabled leaver internal", {"user": {"account_enabled": False},
                                                                       "forwarding": {"forwarding_address": "Mgr",
                                                                                      "forwarding_address_resolved":
                                                                                      "mgr@contoso.com"}}, False),
    # §I dormant identity brought back: disabled at the last scan, enabled tonight with a new Authenticator.
    ("account.disabled_account_backdoor", "re-enabled since last scan with a new authenticator", {
        "previous": {"user": {"account_enabled": False}}, "methods": [{
            "id": "m-new", "method_type": "microsoftAuthenticatorAuthenticationMethod", "created_hours_ago": 3}]}, True),
    ("account.disabled_account_backdoor", "enabled throughout with a new authenticator", {
        "has_previous": True, "methods": [{
            "id": "m-new", "method_type": "microsoftAuthenticatorAuthenticationMethod", "created_hours_ago": 3}]}, False),
    # Shared mailboxes' user objects are disabled by design (Microsoft: "You should always block sign-in for the shared
    # mailbox account"), so "disabled" says nothing there; their forwards are scored by the forwarding detectors.
    ("account.disabled_account_backdoor", "disabled shared mailbox forwarding to SaaS intake", {
        "user": {"account_enabled": False, "mailbox_type": "SharedMailbox"},
        "forwarding": {"forwarding_smtp_address": "support@contoso.zendesk.com",
                       "deliver_to_mailbox_and_forward": True}}, False),
    ("account.protected_account_change", "break-glass new method", {"protected": ["alice@contoso.com"],
                                                                    "has_previous": True, "methods": [
        {"id": "m-x", "phone_number": "+1 555 9999"}]}, True),
    ("account.protected_account_change", "break-glass idle", {"protected": ["alice@contoso.com"],
                                                              "has_previous": True, "sending": {"sent_last_24h": 0},
                                                              "roles": ["Global Administrator"],
                                                              "previous": {"roles": ["Global Administrator"],
                                                                           "sending": {"sent_last_24h": 0}}}, False),
]


# Tenant-level detectors (``detect_tenant``): (detector id, case name, tenant spec, expected).
# Tenant spec: ``tenant_grants`` (AllPrincipals grants, OAuthGrant fields), ``previous_grants`` (the previous scan's;
# absent = first scan), ``consent_admins`` (TenantFacts.consent_admins_new_method), ``accounts_scanned`` /
# ``oauth_grants_read``, ``allowlist``. ``expected``: a severity label (fires, unsuppressed, that severity), False
# (silent), "suppressed", or "gap" (NotCollected).
ARCHIVER = {"id": "tg-1", "client_id": "sp-arch", "app_id": "a7c1e0f2-0000-4000-8000-00000000a7c1",
            "app_display_name": "Archiver X", "consent_type": "AllPrincipals", "scopes": ["Mail.Read"]}
VERIFIED = {**ARCHIVER, "id": "tg-2", "app_display_name": "Mimecast Archive", "verified_publisher": "Mimecast"}
MS_GRANT = {**ARCHIVER, "id": "tg-3", "app_display_name": "Microsoft Teams",
            "app_owner_organization_id": "f8cdef31-a31e-4b4a-93e4-5f571e91255a", "scopes": ["Mail.ReadWrite"]}
ADMIN = {"miriam@contoso.com": ["Cloud Application Administrator"]}
SP_GA = {"id": "5e0c1a2b-3333-4c4c-9d9d-00000000aaaa", "principal_type": "servicePrincipal",
         "display_name": "Mail Sync Connector", "app_id": "a1b2c3d4-0000-4000-8000-00000000beef",
         "app_owner_organization_id": "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001", "service_principal_type": "Application",
         "role_template_id": "62e90394-69f5-4237-9190-012177145e10", "role_name": "Global Administrator",
         "role_definition_id": "62e90394-69f5-4237-9190-012177145e10"}
# oauth.app_permission_mail_access: ``app_roles`` (AppRoleGrant fields; "unread" = the source failed),
# ``previous_app_roles`` (absent = first scan; "unread" = the previous scan could not read it), ``scanner_app_id``.
GRAPH_APP = "00000003-0000-0000-c000-000000000000"
EXO_APP = "00000002-0000-0ff1-ce00-000000000000"
EVIL_MAIL_RW = {"id": "ara-rw", "app_role_id": "e2a3a72e-5f79-4c64-b1b1-878b674786c9", "app_role": "Mail.ReadWrite",
                "resource_id": "sp-graph", "resource_app_id": GRAPH_APP, "resource_display_name": "Microsoft Graph",
                "principal_id": "sp-evil", "principal_type": "ServicePrincipal", "principal_display_name": "Mail GW",
                "app_id": "e71c0000-0000-4000-8000-0000000e71c0", "app_display_name": "Mail Gateway Sync",
                "app_owner_organization_id": "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001",
                "service_principal_type": "Application", "created_date_time": "2026-03-09T20:00:00Z"}
EVIL_EWS = {**EVIL_MAIL_RW, "id": "ara-ews", "app_role_id": "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
            "app_role": "full_access_as_app", "resource_id": "sp-exo", "resource_app_id": EXO_APP,
            "resource_display_name": "Office 365 Exchange Online"}
BACKUP_EWS = {**EVIL_EWS, "id": "ara-veeam", "principal_id": "sp-veeam", "app_id": "bac0bac0-0000-4000-8000-00000000bac0",
              "app_display_name": "Veeam Backup for Microsoft 365", "verified_publisher": "Veeam Software Group GmbH",
              "created_date_time": "2024-05-01T00:00:00Z"}
SCANNER_APP_ID = "5e7a1c2d-9b3f-4c8e-a1d2-3f4b5c6d7e8f"
SCANNER_ROLES = [
    {**EVIL_EWS, "id": "ara-me-1", "app_role_id": "dc50a0fb-09a3-484d-be87-e023b12c6440",
     "app_role": "Exchange.ManageAsApp", "principal_id": "sp-me", "app_id": SCANNER_APP_ID,
     "app_display_name": "m365sweep", "app_owner_organization_id": "00000000-0000-0000-0000-00000000c0de"},
    {**EVIL_MAIL_RW, "id": "ara-me-2", "app_role_id": "693c5e45-0940-467d-9b8a-1022fb9d42ef",
     "app_role": "Mail.ReadBasic.All", "principal_id": "sp-me", "app_id": SCANNER_APP_ID,
     "app_display_name": "m365sweep", "app_owner_organization_id": "00000000-0000-0000-0000-00000000c0de"}]
# mail.transport_rule_external_forward / mail.transport_rule_spam_bypass: ``transport_rules`` (TransportRule fields;
# "unread" = Get-TransportRule failed), ``previous_transport_rules`` (absent = first scan; "unread" = not read then).
FWD, BYPASS = "mail.transport_rule_external_forward", "mail.transport_rule_spam_bypass"
FIN_WORDS = {"SubjectOrBodyContainsWords": ["invoice", "wire transfer"]}
TRANSPORT_CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    (FWD, "Bcc of finance mail to a look-alike domain", {"transport_rules": [
        {"name": "Finance Journal", "blind_copy_to": ["ap@contoso-finance.com"], "conditions": FIN_WORDS}]},
     "critical"),
    (FWD, "redirect of one mailbox's mail to free-mail", {"transport_rules": [
        {"name": "Continuity", "redirect_message_to": ["ap.contoso@proton.me"],
         "conditions": {"SentTo": ["ap@contoso.com"]}}]}, "high"),
    (FWD, "Bcc of every message to free-mail", {"transport_rules": [
        {"name": "Backup", "blind_copy_to": ["backup.contoso@gmail.com"]}]}, "critical"),
    (FWD, "Bcc of finance mail to free-mail", {"transport_rules": [
        {"name": "Backup", "blind_copy_to": ["backup.contoso@gmail.com"], "conditions": FIN_WORDS}]}, "critical"),
    (FWD, "Bcc to an unknown external domain", {"transport_rules": [
        {"name": "Archive", "blind_copy_to": ["j@archive-vendor.example"], "conditions": {"FromScope": "InOrganization"}}]},
     "high"),
    (FWD, "visible Cc to free-mail: one level lower", {"transport_rules": [
        {"name": "Cc", "copy_to": ["x@gmail.com"], "conditions": {"SentTo": ["ceo@contoso.com"]}}]}, "medium"),
    (FWD, "look-alike hidden in a recipient string", {"transport_rules": [
        {"name": "Journal", "blind_copy_to": ['"Records" [SMTP:rec@c0ntoso.com]']}]}, "critical"),
    (FWD, "disabled look-alike Bcc: two levels lower", {"transport_rules": [
        {"name": "Finance Journal", "state": "Disabled", "blind_copy_to": ["ap@contoso-finance.com"]}]}, "medium"),
    (FWD, "disabled external Bcc: Low", {"transport_rules": [
        {"name": "Auditor", "state": "Disabled", "blind_copy_to": ["y@northwind-audit.example"]}]}, "low"),
    (FWD, "audit (test) mode: one level lower", {"transport_rules": [
        {"name": "Finance Journal", "mode": "Audit", "blind_copy_to": ["ap@contoso-finance.com"]}]}, "high"),
    (FWD, "new since the last scan", {"transport_rules": [
        {"name": "Continuity", "redirect_message_to": ["ap.contoso@proton.me"]}], "previous_transport_rules": []},
     "critical"),
    (FWD, "allow-listed partner domain: shown suppressed", {"transport_rules": [
        {"name": "Bookkeeper", "blind_copy_to": ["ledger@partner-accounting.com"]}],
        "allowlist": {"forwarding_domains": [{"value": "partner-accounting.com", "reason": "bookkeeper"}]}},
     "suppressed"),
    (FWD, "Bcc to an internal compliance mailbox", {"transport_rules": [
        {"name": "Journal", "blind_copy_to": ["compliance@contoso.com"]}]}, False),
    (FWD, "redirect to a subdomain of an accepted domain", {"transport_rules": [
        {"name": "Desk", "redirect_message_to": ["desk@eu.contoso.com"]}]}, False),
    (FWD, "suffix look-alike is not internal (hr-contoso.com)", {"transport_rules": [
        {"name": "HR", "redirect_message_to": ["x@hr-contoso.com"], "conditions": {"SentTo": ["hr@contoso.com"]}}]},
     "critical"),
    (FWD, "disclaimer rule, manager Bcc, connector routing", {"transport_rules": [
        {"name": "Disclaimer", "conditions": {"SentToScope": "NotInOrganization"}},
        {"name": "Manager", "add_manager_as_recipient_type": "Bcc"},
        {"name": "Hybrid", "route_message_outbound_connector": "Outbound to on-premises"}]}, False),
    (FWD, "a recipient printed as a name only (not judged)", {"transport_rules": [
        {"name": "Named", "blind_copy_to": ["Compliance Archive"]}]}, False),
    (FWD, "no transport rules at all", {"transport_rules": []}, False),
    (FWD, "source failed: a gap, never clean", {"transport_rules": "unread"}, "gap"),
    (BYPASS, "SCL -1 for a look-alike sender domain", {"transport_rules": [
        {"name": "Trusted vendor", "set_scl": -1, "conditions": {"SenderDomainIs": ["contoso-payments.com"]}}]},
     "high"),
    (BYPASS, "SCL -1 for the tenant's own domain (spoofing)", {"transport_rules": [
        {"name": "Internal", "set_scl": -1, "conditions": {"SenderDomainIs": ["contoso.com"]}}]}, "high"),
    (BYPASS, "SCL -1 for a free-mail sender", {"transport_rules": [
        {"name": "CEO home", "set_scl": -1, "conditions": {"From": ["ceo.home@gmail.com"]}}]}, "high"),
    (BYPASS, "SCL -1 for every message", {"transport_rules": [{"name": "All", "set_scl": -1}]}, "high"),
    (BYPASS, "SCL -1 for an unknown partner domain (CIS 6.2.2)", {"transport_rules": [
        {"name": "Vendor", "set_scl": -1, "conditions": {"SenderDomainIs": ["fabrikam.example"]}}]}, "medium"),
    (BYPASS, "SCL -1 by gateway IP range", {"transport_rules": [
        {"name": "Gateway", "set_scl": -1, "conditions": {"SenderIpRanges": ["203.0.113.0/24"]}}]}, "medium"),
    (BYPASS, "spam-filter skip header for a look-alike", {"transport_rules": [
        {"name": "Hdr", "set_header_name": "X-Forefront-Antispam-Report", "set_header_value": "SFV:SKI;",
         "conditions": {"SenderDomainIs": ["contoso-payments.com"]}}]}, "high"),
    (BYPASS, "disabled look-alike bypass: Low", {"transport_rules": [
        {"name": "Trusted vendor", "state": "Disabled", "set_scl": -1,
         "conditions": {"SenderDomainIs": ["contoso-payments.com"]}}]}, "low"),
    (BYPASS, "allow-listed partner: shown suppressed", {"transport_rules": [
        {"name": "Partner", "set_scl": -1, "conditions": {"SenderDomainIs": ["partner-accounting.com"]}}],
        "allowlist": {"forwarding_domains": ["partner-accounting.com"]}}, "suppressed"),
    (BYPASS, "SCL raised (6) for a sender: not a bypass", {"transport_rules": [
        {"name": "Junk", "set_scl": 6, "conditions": {"SenderDomainIs": ["contoso-payments.com"]}}]}, False),
    (BYPASS, "SCL -1 only for mail from inside the organisation", {"transport_rules": [
        {"name": "Internal relay", "set_scl": -1, "conditions": {"FromScope": "InOrganization"}}]}, False),
    (BYPASS, "source failed: a gap, never clean", {"transport_rules": "unread"}, "gap"),
]
TENANT_CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("oauth.app_permission_mail_access", "unverified app: Mail.ReadWrite + full_access_as_app (one finding)", {
        "app_roles": [EVIL_MAIL_RW, EVIL_EWS]}, "high"),
    ("oauth.app_permission_mail_access", "unverified app: IMAP.AccessAsApp", {"app_roles": [
        {**EVIL_EWS, "app_role": "IMAP.AccessAsApp", "app_role_id": "5e5addcd-3e8d-4e90-baf5-964efab2b20a"}]}, "high"),
    ("oauth.app_permission_mail_access", "unverified app: Exchange.ManageAsApp (Exchange admin)", {"app_roles": [
        {**EVIL_EWS, "app_role": "Exchange.ManageAsApp", "app_role_id": "dc50a0fb-09a3-484d-be87-e023b12c6440"}]},
     "high"),
    ("oauth.app_permission_mail_access", "unverified app: Mail.Send (send as anyone)", {"app_roles": [
        {**EVIL_MAIL_RW, "app_role": "Mail.Send", "app_role_id": "b633e1c5-b582-4048-a93e-9f11b44c7e96"}]}, "high"),
    ("oauth.app_permission_mail_access", "unverified app: Mail.ReadBasic.All only (metadata)", {"app_roles": [
        {**EVIL_MAIL_RW, "app_role": "Mail.ReadBasic.All", "app_role_id": "693c5e45-0940-467d-9b8a-1022fb9d42ef"}]},
     "medium"),
    ("oauth.app_permission_mail_access", "verified backup product with full_access_as_app (review, allow-list)", {
        "app_roles": [BACKUP_EWS]}, "medium"),
    ("oauth.app_permission_mail_access", "allow-listed backup product", {
        "app_roles": [BACKUP_EWS],
        "allowlist": {"apps": [{"value": "bac0bac0-0000-4000-8000-00000000bac0", "reason": "backup, ticket 12"}]}},
     "suppressed"),
    ("oauth.app_permission_mail_access", "tenant's managed identity sends notifications", {"app_roles": [
        {**EVIL_MAIL_RW, "app_role": "Mail.Send", "app_role_id": "b633e1c5-b582-4048-a93e-9f11b44c7e96",
         "service_principal_type": "ManagedIdentity", "app_owner_organization_id": None}]}, "low"),
    ("oauth.app_permission_mail_access", "new since last scan while a consent-capable admin added a method", {
        "app_roles": [EVIL_MAIL_RW, EVIL_EWS], "previous_app_roles": [], "consent_admins": ADMIN}, "critical"),
    ("oauth.app_permission_mail_access", "new since last scan, no admin with a new method", {
        "app_roles": [EVIL_MAIL_RW], "previous_app_roles": []}, "high"),
    ("oauth.app_permission_mail_access", "standing, admin with a new method: not escalated", {
        "app_roles": [EVIL_MAIL_RW], "previous_app_roles": [EVIL_MAIL_RW], "consent_admins": ADMIN}, "high"),
    ("oauth.app_permission_mail_access", "previous scan could not read them: no baseline, not escalated", {
        "app_roles": [EVIL_MAIL_RW], "previous_app_roles": "unread", "consent_admins": ADMIN}, "high"),
    ("oauth.app_permission_mail_access", "the scanning app widened to Mail.Read", {
        "app_roles": [*SCANNER_ROLES, {**SCANNER_ROLES[1], "id": "ara-me-3", "app_role": "Mail.Read",
                                       "app_role_id": "810c84a8-4a9e-49e6-bf7d-12d183f40d01"}],
        "scanner_app_id": SCANNER_APP_ID}, "medium"),
    ("oauth.app_permission_mail_access", "the scanning app's own Mail.ReadBasic.All + Exchange.ManageAsApp", {
        "app_roles": SCANNER_ROLES, "scanner_app_id": SCANNER_APP_ID}, False),
    ("oauth.app_permission_mail_access", "Microsoft first-party app with Mail.ReadWrite", {"app_roles": [
        {**EVIL_MAIL_RW, "app_display_name": "Microsoft Defender for Office 365",
         "app_owner_organization_id": "f8cdef31-a31e-4b4a-93e4-5f571e91255a"}]}, False),
    ("oauth.app_permission_mail_access", "unverified in-house app with User.Read.All + Files.Read.All", {"app_roles": [
        {**EVIL_MAIL_RW, "app_role": "User.Read.All", "app_role_id": "df021288-bdef-4463-88db-98f22de89214"},
        {**EVIL_MAIL_RW, "id": "ara-files", "app_role": "Files.Read.All",
         "app_role_id": "01d4889c-1287-42c6-ac1f-5d1e02578ef6"}]}, False),
    ("oauth.app_permission_mail_access", "Calendars.Read on Exchange Online is not mail", {"app_roles": [
        {**EVIL_EWS, "app_role": "Calendars.Read", "app_role_id": "798ee544-9d2d-430c-a058-570e29e34338"}]}, False),
    ("oauth.app_permission_mail_access", "Mail.ReadWrite role of some other API (not Graph / Exchange)", {
        "app_roles": [{**EVIL_MAIL_RW, "resource_app_id": "11111111-2222-4333-8444-555555555555",
                       "resource_display_name": "Contoso Mail API"}]}, False),
    ("oauth.app_permission_mail_access", "a user assigned an app role (not an application permission)", {
        "app_roles": [{**EVIL_MAIL_RW, "principal_type": "User"}]}, False),
    ("oauth.app_permission_mail_access", "no application permissions at all", {"app_roles": []}, False),
    ("oauth.app_permission_mail_access", "source failed: a gap, never clean", {"app_roles": "unread"}, "gap"),
    ("oauth.tenant_wide_mail_grant", "unverified app, Mail.Read for everyone", {"tenant_grants": [ARCHIVER]}, "high"),
    ("oauth.tenant_wide_mail_grant", "unverified app with offline_access", {"tenant_grants": [
        {**ARCHIVER, "scopes": ["Mail.ReadWrite", "offline_access"]}]}, "high"),
    ("oauth.tenant_wide_mail_grant", "verified archiving product (review, allow-list)", {"tenant_grants": [VERIFIED]},
     "medium"),
    ("oauth.tenant_wide_mail_grant", "new grant while a consent-capable admin added a method", {
        "tenant_grants": [ARCHIVER], "previous_grants": [], "consent_admins": ADMIN}, "critical"),
    ("oauth.tenant_wide_mail_grant", "standing grant, admin with a new method: age unknown, not escalated", {
        "tenant_grants": [ARCHIVER], "previous_grants": [ARCHIVER], "consent_admins": ADMIN}, "high"),
    ("oauth.tenant_wide_mail_grant", "first scan, admin with a new method: candidates listed, not escalated", {
        "tenant_grants": [ARCHIVER], "consent_admins": ADMIN}, "high"),
    ("oauth.tenant_wide_mail_grant", "previous scan could not read grants: no baseline, not escalated", {
        "tenant_grants": [ARCHIVER], "previous_grants": [], "previous_grants_read": False, "consent_admins": ADMIN},
     "high"),
    ("oauth.tenant_wide_mail_grant", "new grant, no admin with a new method", {
        "tenant_grants": [ARCHIVER], "previous_grants": []}, "high"),
    ("oauth.tenant_wide_mail_grant", "allow-listed backup product", {
        "tenant_grants": [VERIFIED], "allowlist": {"apps": [{"value": "Mimecast Archive", "reason": "journaling"}]}},
     "suppressed"),
    ("oauth.tenant_wide_mail_grant", "SSO app, User.Read only", {"tenant_grants": [
        {**ARCHIVER, "app_display_name": "SSO App", "scopes": ["openid", "profile", "User.Read"]}]}, False),
    ("oauth.tenant_wide_mail_grant", "Microsoft first-party app", {"tenant_grants": [MS_GRANT]}, False),
    ("oauth.tenant_wide_mail_grant", "a user's own (Principal) consent is E1, not E2", {"tenant_grants": [
        {**ARCHIVER, "consent_type": "Principal"}]}, False),
    ("oauth.tenant_wide_mail_grant", "no grants at all", {"tenant_grants": []}, False),
    ("oauth.tenant_wide_mail_grant", "grants source failed: a gap, never clean", {
        "tenant_grants": [], "accounts_scanned": 40, "oauth_grants_read": 0}, "gap"),
    # roles.service_principal_privileged (``principals``: PrivilegedPrincipal fields; more in test_tenant_detectors)
    ("roles.service_principal_privileged", "third-party app holds Global Administrator (standing)", {
        "principals": [SP_GA]}, "medium"),
    ("roles.service_principal_privileged", "third-party app holds User Administrator (standing)", {"principals": [
        {**SP_GA, "role_template_id": "fe930be7-5e62-47db-91af-98c3a49a38b1", "role_name": "User Administrator",
         "role_definition_id": "fe930be7-5e62-47db-91af-98c3a49a38b1"}]}, "medium"),
    ("roles.service_principal_privileged", "Microsoft first-party app holds a role", {"principals": [
        {**SP_GA, "app_owner_organization_id": "f8cdef31-a31e-4b4a-93e4-5f571e91255a"}]}, False),
    *TRANSPORT_CASES,
]
