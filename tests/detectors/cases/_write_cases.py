"""Authoring helper: regenerates the evaluation-set JSON files in this folder (run it after editing the cases).

The JSON files are the data; this script only keeps them readable to author. Each case: name, label
(malicious | benign_lookalike | benign), source (the public write-up or Microsoft guidance it is written from),
techniques (expected ATT&CK ids for malicious cases), spec (tests/detectors/builders.py spec language).
"""

import json
from pathlib import Path

S = {
    "resp": "https://learn.microsoft.com/defender-office-365/responding-to-a-compromised-email-account",
    "fwdpb": "https://learn.microsoft.com/defender-xdr/alert-grading-playbook-inbox-forwarding-rules",
    "manip": "https://learn.microsoft.com/defender-xdr/alert-grading-playbook-inbox-manipulation-rules",
    "outbound": "https://learn.microsoft.com/defender-office-365/outbound-spam-policies-external-email-forwarding",
    "restricted": "https://learn.microsoft.com/defender-office-365/outbound-spam-restore-restricted-users",
    "consent": "https://learn.microsoft.com/defender-office-365/detect-and-remediate-illicit-consent-grants",
    "storm1167": "https://www.microsoft.com/en-us/security/blog/2023/06/08/detecting-and-mitigating-a-multi-stage-aitm-phishing-and-bec-campaign/",
    "oauthbec": "https://www.microsoft.com/en-us/security/blog/2023/12/12/threat-actors-misuse-oauth-applications-to-automate-financially-driven-attacks/",
    "octo": "https://www.microsoft.com/en-us/security/blog/2023/10/25/octo-tempest-crosses-boundaries-to-facilitate-extortion-encryption-and-destruction/",
    "breakglass": "https://learn.microsoft.com/entra/identity/role-based-access-control/security-emergency-access",
    "tap": "https://learn.microsoft.com/entra/identity/authentication/howto-authentication-temporary-access-pass",
    "permiso": "https://permiso.io/blog/inboxfuscation-because-rules-are-meant-to-be-broken",
    "proofpoint": "https://www.proofpoint.com/us/blog/threat-insight/mailbox-rules-o365-post-exploitation-tactic-cloud-ato",
    "redcanary": "https://redcanary.com/blog/threat-detection/email-forwarding-rules/",
    "barracuda": "https://blog.barracuda.com/2023/09/20/threat-spotlight-attackers-inbox-rules-evade-detection",
    "darktrace": "https://darktrace.com/blog/breakdown-of-a-multi-account-compromise-within-office-365",
    "huntress": "https://www.huntress.com/cybersecurity-insights/microsoft-365-hidden-inbox-rule-detection",
    "datadog_bec": "https://docs.datadoghq.com/security/default_rules/def-000-ihv.md",
    "datadog_hide": "https://docs.datadoghq.com/security/default_rules/microsoft-365-inbox-rules-hide-activity/",
    "perfectdata": "https://cybercorner.tech/malicious-azure-application-perfectdata-software-and-office365-business-email-compromise",
    "mitre_hide": "https://attack.mitre.org/techniques/T1564/008/",
    "mitre_deleg": "https://attack.mitre.org/techniques/T1098/002/",
    "mitre_mfa": "https://attack.mitre.org/techniques/T1098/005/",
    "mitre_roles": "https://attack.mitre.org/techniques/T1098/003/",
    "vectra": "https://www.vectra.ai/detections/o365-suspicious-mail-forwarding",
    "splunk_mfa": "splunk/security_content: detections/cloud/azure_ad_new_mfa_method_registered_for_user.yml",
    "splunk_payroll": "splunk/security_content: detections/cloud/o365_email_password_and_payroll_compromise_behavior.yml",
    "sentinel_fwd": "Azure/Azure-Sentinel: Solutions/Microsoft 365/Analytic Rules/Office_MailForwarding.yaml",
    "sentinel_priv": "Azure/Azure-Sentinel: Solutions/Business Email Compromise - Financial Fraud/Analytic Rules/AuthenticationMethodChangedforPrivilegedAccount.yaml",
    "sentinel_malrule": "Azure/Azure-Sentinel: Solutions/Microsoft 365/Analytic Rules/Malicious_Inbox_Rule.yaml",
    "exo_limits": "https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits",
    "hearth": "https://github.com/THORCollective/HEARTH/issues/193",
    "elastic_name": "elastic/detection-rules: rules/integrations/o365/defense_evasion_exchange_inbox_rule_obfuscated_name.toml",
    "sentinel_mfa": "Azure/Azure-Sentinel: Solutions/Microsoft Entra ID/Analytic Rules/SuspiciousSignInFollowedByMFAModification.yaml",
    "shared_signin": "https://learn.microsoft.com/microsoft-365/lighthouse/m365-lighthouse-block-signin-shared-mailboxes",
    "passkeys": "https://learn.microsoft.com/entra/identity/authentication/how-to-enable-passkey-fido2",
}
NEWPHONE = {"id": "m-att", "phone_number": "+44 7700 900461", "created_hours_ago": 4}
NEWAPP = {"id": "m-att2", "method_type": "microsoftAuthenticatorAuthenticationMethod", "display_name": "SM-G991B",
          "created_hours_ago": 3}


def case(name, label, source, spec, techniques=()):
    return {"name": name, "label": label, "source": S.get(source, source), "techniques": list(techniques), "spec": spec}


M = "malicious"
malicious = [
    case("Storm-1167: SMS method added after AiTM, delete-all rule, mass phishing", M, "storm1167", {
        "has_previous": True, "methods": [NEWPHONE],
        "rules": [{"displayName": "..", "actions": {"delete": True}}],
        "sending": {"sent_last_24h": 16000}, "sent_history": [30, 25, 40]}, ["T1098.005", "T1564.008", "T1534"]),
    case("Red Canary: keyword-scoped forward of wire/statement/password-reset mail to gmail, marked read", M,
         "redcanary", {"rules": [{"displayName": "Statements", "conditions": {"bodyOrSubjectContains": [
             "wire transfer", "statement", "password reset"]}, "actions": {"forwardTo": ["j.whitfield.cfo@gmail.com"],
                                                                            "markAsRead": True}}]}, ["T1114.003"]),
    case("Proofpoint: '...' rule archives 'FW: Payment Receipt' mail, new authenticator", M, "proofpoint", {
        "has_previous": True, "methods": [NEWAPP], "rules": [{"displayName": "...", "conditions": {
            "subjectContains": ["Payment Receipt"]}, "actions": {"moveToFolder": "Archive", "markAsRead": True}}]},
         ["T1564.008", "T1098.005"]),
    case("Permiso Inboxfuscation: NUL-character body condition moves everything to RSS", M, "permiso", {
        "rules": [{"displayName": "Project", "conditions": {"bodyContains": ["\u0000"]},
                   "actions": {"moveToFolder": "RSS Feeds"}}]}, ["T1564.008"]),
    case("Permiso Inboxfuscation: size range from 0 KB forwards all mail to Proton", M, "permiso", {
        "rules": [{"displayName": "Large items", "conditions": {"withinSizeRange": {"minimumSize": 0,
                                                                                    "maximumSize": 2000000}},
                   "actions": {"forwardTo": ["collector@proton.me"]}}]}, ["T1114.003"]),
    case("MITRE T1564.008: delete 'hacked/phish/malware' mail plus look-alike mailbox forward", M, "mitre_hide", {
        "forwarding": {"forwarding_smtp_address": "smtp:alice@contoso-secure.com", "deliver_to_mailbox_and_forward": True},
        "rules": [{"displayName": "clean", "conditions": {"bodyOrSubjectContains": ["hacked", "phish", "malware"]},
                   "actions": {"delete": True}}]}, ["T1564.008", "T1114.003"]),
    case("Barracuda: delete all mail from the CFO so the attacker can impersonate, new phone", M, "barracuda", {
        "has_previous": True, "methods": [NEWPHONE], "rules": [{"displayName": "x", "conditions": {
            "fromAddresses": ["cfo@contoso.com"]}, "actions": {"delete": True}}]}, ["T1564.008", "T1098.005"]),
    case("Microsoft response guide: look-alike mailbox redirect without copy plus RSS hiding rule", M, "resp", {
        "forwarding": {"forwarding_smtp_address": "smtp:alice@c0ntoso.com", "deliver_to_mailbox_and_forward": False},
        "rules": [{"displayName": ".", "conditions": {"subjectContains": ["RE:"]}, "actions": {
            "moveToFolder": "RSS Subscriptions", "markAsRead": True}}]}, ["T1114.003", "T1564.008"]),
    case("Sentinel Office_MailForwarding: same gmail destination collects mail from several accounts", M,
         "sentinel_fwd", {"forwarding": {"forwarding_smtp_address": "smtp:invoices.drop@gmail.com",
                                         "deliver_to_mailbox_and_forward": True},
                          "others": [{"upn": "bob@contoso.com", "rules": [{"actions": {"forwardTo": [
                              "invoices.drop@gmail.com"]}}]}]}, ["T1114.003"]),
    case("Darktrace: rule named '.' after BAV2ROPC legacy sign-in deletes all mail; IMAP re-enabled", M, "darktrace", {
        "has_previous": True, "protocols": {"imap_enabled": True},
        "rules": [{"displayName": ".", "actions": {"delete": True, "markAsRead": True}}]},
         ["T1564.008", "T1078.004"]),
    case("Huntress: hidden MAPI rule forwards to gmail", M, "huntress", {"rules": [{
        "displayName": "", "hidden": True, "conditions": {"subjectContains": ["invoice"]},
        "actions": {"forwardTo": ["ap.copies@gmail.com"]}}]}, ["T1564.008", "T1114.003"]),
    case("Datadog BEC tooling: PerfectData Software mailbox export consent after new method", M, "perfectdata", {
        "has_previous": True, "methods": [NEWAPP], "grants": [{"app_display_name": "PerfectData Software",
                                                              "scopes": ["EWS.AccessAsUser.All", "offline_access"]}]},
         ["T1114.002", "T1098.005"]),
    case("Illicit consent: unverified app with Mail.ReadWrite/Mail.Send + offline_access and NDR-hiding rule", M,
         "consent", {"grants": [{"app_display_name": "Secure Docs Viewer", "scopes": [
             "Mail.ReadWrite", "Mail.Send", "offline_access"]}], "rules": [{"displayName": "ok", "conditions": {
                 "isNonDeliveryReport": True}, "actions": {"delete": True}}]}, ["T1528", "T1564.008"]),
    case("Microsoft OAuth BEC: eM Client consent and account restricted from sending", M, "oauthbec", {
        "grants": [{"app_display_name": "eM Client", "scopes": ["IMAP.AccessAsUser.All", "SMTP.Send",
                                                               "offline_access"]}],
        "sending": {"blocked_from_sending": True, "sent_last_24h": 2400}}, ["T1528", "T1534"]),
    case("Restricted sender with bounce-deleting rule (outbound spam from the account)", M, "restricted", {
        "sending": {"blocked_from_sending": True, "sent_last_24h": 3000}, "rules": [{
            "displayName": "nd", "conditions": {"subjectContains": ["Undeliverable", "Delivery has failed"]},
            "actions": {"delete": True}}]}, ["T1534", "T1564.008"]),
    case("Sentinel privileged-account method change: Global Administrator gains a new phone", M, "sentinel_priv", {
        "roles": ["Global Administrator"], "previous": {"roles": ["Global Administrator"]},
        "methods": [{"id": "m-x", "phone_number": "+7 916 555 0101", "created_hours_ago": 6}]}, ["T1556.006"]),
    case("APT29 dormant account: disabled account gets an authenticator and a forward", M, "mitre_mfa", {
        "user": {"account_enabled": False}, "has_previous": True, "methods": [NEWAPP],
        "forwarding": {"forwarding_smtp_address": "smtp:ops@mail.ru", "deliver_to_mailbox_and_forward": True}},
         ["T1098.005", "T1114.003"]),
    case("Additional cloud roles: sales associate gains Exchange Administrator with a new method", M, "mitre_roles", {
        "user": {"job_title": "Sales Associate"}, "previous": {}, "methods": [NEWPHONE], "roles": [
            {"role_name": "Exchange Administrator", "role_template_id": "29232cdf-9323-42fd-ade2-1d097af3e4de"}]},
         ["T1098.003", "T1556.006"]),
    case("MITRE T1098.002: guest account given FullAccess and SendAs on a user mailbox", M, "mitre_deleg", {
        "has_previous": True, "delegates": [
            {"trustee": "backup_outlook.com#EXT#", "trustee_address": "backup@outlook.com",
             "access_right": "FullAccess", "trustee_is_guest": True},
            {"trustee": "backup_outlook.com#EXT#", "trustee_address": "backup@outlook.com",
             "access_right": "SendAs", "trustee_is_guest": True}]}, ["T1098.002"]),
    case("Break-glass account: a phone method appears", M, "breakglass", {
        "protected": ["alice@contoso.com"], "roles": ["Global Administrator"],
        "previous": {"roles": ["Global Administrator"]}, "methods": [{"id": "m-bg", "phone_number": "+1 202 555 0199"}]},
         ["T1078.004"]),
    case("Hide Microsoft security-info notifications, new method in the same scan", M, "resp", {
        "has_previous": True, "methods": [NEWAPP], "rules": [{"displayName": "Microsoft", "conditions": {
            "subjectContains": ["security info", "new sign-in"]}, "actions": {"moveToFolder": "Deleted Items",
                                                                              "markAsRead": True}}]},
         ["T1564.008", "T1098.005"]),
    case("Payroll diversion: delete direct-deposit and password mail; alternate address added; new method", M,
         "splunk_payroll", {"has_previous": True, "methods": [NEWPHONE],
                            "user": {"other_mails": ["alice.payroll@gmail.com"]},
                            "rules": [{"displayName": "dd", "conditions": {"bodyOrSubjectContains": [
                                "direct deposit", "password"]}, "actions": {"permanentDelete": True}}]},
         ["T1564.008", "T1098.005"]),
    case("Linked artefacts: otherMails gains the same gmail the mailbox forwards to", M, "resp", {
        "has_previous": True, "user": {"other_mails": ["alice.backup@gmail.com"]},
        "forwarding": {"forwarding_smtp_address": "alice.backup@gmail.com", "deliver_to_mailbox_and_forward": True}},
         ["T1114.003", "T1098"]),
    case("Temporary Access Pass issued to a Global Administrator", M, "tap", {
        "roles": ["Global Administrator"], "previous": {"roles": ["Global Administrator"]},
        "methods": [{"id": "m-tap", "method_type": "temporaryAccessPassAuthenticationMethod", "is_usable": True,
                     "created_hours_ago": 2}]}, ["T1556.006"]),
    case("Zero-width rule name forwards invoices as attachment to outlook.com, marks read", M, "elastic_name", {
        "rules": [{"displayName": "\u200b", "conditions": {"subjectContains": ["invoice"]},
                   "actions": {"forwardAsAttachmentTo": ["acct.payable@outlook.com"], "markAsRead": True}}]},
         ["T1114.003"]),
    case("Attacker phone reused on two accounts, new on this one", M, "splunk_mfa", {
        "has_previous": True, "methods": [{"id": "m-s", "phone_number": "+234 803 555 0101"}],
        "others": [{"upn": "bob@contoso.com", "methods": [{"id": "m-b", "phone_number": "+2348035550101"}]}]},
         ["T1556.006", "T1098.005"]),
    case("Permiso: replies from a vendor's AP contact moved into the Calendar folder", M, "permiso", {
        "rules": [{"displayName": "Vendor", "conditions": {"fromAddresses": ["ar@fabrikam-supplies.com"]},
                   "actions": {"moveToFolder": "Calendar", "markAsRead": True}}],
        "has_previous": True, "methods": [NEWAPP]}, ["T1564.008", "T1098.005"]),
    case("Redirect to yahoo then delete: the user keeps no copy", M, "fwdpb", {
        "rules": [{"displayName": "r", "conditions": {"subjectContains": ["payment"]},
                   "actions": {"redirectTo": ["pay.team@yahoo.com"], "delete": True}}]}, ["T1114.003"]),
    case("Vowel list condition (matches everything) forwards to gmx", M, "permiso", {
        "rules": [{"displayName": "Sort", "conditions": {"bodyOrSubjectContains": ["a;e;i;o;u"]},
                   "actions": {"forwardTo": ["drop@gmx.net"]}}]}, ["T1114.003"]),
    case("HEARTH: rule named '7' hides undeliverable bounces after bulk phishing", M, "hearth", {
        "sending": {"sent_last_24h": 1800}, "sent_history": [40, 35, 50],
        "rules": [{"displayName": "7", "conditions": {"subjectContains": ["undeliverable"]},
                   "actions": {"moveToFolder": "Conversation History", "markAsRead": True}}]},
         ["T1564.008", "T1534"]),
    # --- refinement pass: linking on any scan (detections.md §H1, §J "+30"), same window (§J.8, §K.2), §J.7
    case("Microsoft response guide: free-mail redirect without copy, authenticator added 3 h ago, otherMails = the "
         "same address (first scan)", M, "resp", {
             "user": {"other_mails": ["a.vance.finance@outlook.com"]},
             "forwarding": {"forwarding_smtp_address": "smtp:a.vance.finance@outlook.com",
                            "deliver_to_mailbox_and_forward": False},
             "methods": [NEWAPP]}, ["T1114.003", "T1098.005", "T1098"]),
    case("Sentinel MFA-after-risky-sign-in, state side: new gmail mailbox forward and new authenticator first seen in "
         "the same scan", M, "sentinel_mfa", {
             "has_previous": True, "methods": [NEWAPP],
             "forwarding": {"forwarding_smtp_address": "smtp:fin.records.2026@gmail.com",
                            "deliver_to_mailbox_and_forward": True}}, ["T1114.003", "T1098.005"]),
    case("Storm-1167: SMS method added and the profile mobile changed to the same number; rule redirects to proton",
         M, "storm1167", {
             "has_previous": True, "user": {"mobile_phone": "+44 7700 900461"}, "methods": [NEWPHONE],
             "rules": [{"displayName": "Sync", "conditions": {"subjectContains": ["invoice"]},
                        "actions": {"redirectTo": ["ap.sync@proton.me"]}}]}, ["T1114.003", "T1098.005", "T1098"]),
    case("PerfectData Software mailbox export and eM Client consented by the same user", M, "perfectdata", {
        "grants": [{"app_display_name": "PerfectData Software", "scopes": ["EWS.AccessAsUser.All", "offline_access"]},
                   {"app_display_name": "eM Client", "scopes": ["Mail.ReadWrite", "Mail.Send", "offline_access"]}]},
         ["T1114.002", "T1528"]),
]

L = "benign_lookalike"
lookalikes = [
    case("Helpdesk mailbox forwards to the ticketing intake (allow-listed)", L, "outbound", {
        "forwarding": {"forwarding_smtp_address": "support@contoso.zendesk.com", "deliver_to_mailbox_and_forward": True},
        "allowlist": {"forwarding_addresses": [{"value": "support@contoso.zendesk.com", "reason": "Zendesk intake"}]}}),
    case("AP mailbox forwards to the outsourced bookkeeper under an outbound-policy exception", L, "outbound", {
        "forwarding": {"forwarding_smtp_address": "inbox@ledgerly-books.co.uk", "deliver_to_mailbox_and_forward": True},
        "allowlist": {"forwarding_domains": [{"value": "ledgerly-books.co.uk", "reason": "outsourced AP"}]}}),
    case("Executive self-forward to a personal gmail (policy problem, not takeover)", L, "fwdpb", {
        "forwarding": {"forwarding_smtp_address": "alice.home@gmail.com", "deliver_to_mailbox_and_forward": True}}),
    case("Leaver: disabled, ForwardingAddress to the manager, copy kept", L, "resp", {
        "user": {"account_enabled": False}, "forwarding": {"forwarding_address": "Manager",
                                                           "forwarding_address_resolved": "manager@contoso.com",
                                                           "deliver_to_mailbox_and_forward": True}}),
    case("Executive forwards to assistant (internal)", L, "vectra", {"rules": [{"displayName": "To assistant",
                                                                            "actions": {"forwardTo": [
                                                                                "assistant@contoso.com"]}}]}),
    case("Vacation cover: empty-condition forward to colleague", L, "manip", {"rules": [{
        "displayName": "Holiday", "actions": {"forwardTo": ["cover@contoso.com"]}}]}),
    case("Forward to a research subdomain of the tenant", L, "fwdpb", {"rules": [{
        "displayName": "Lab", "actions": {"forwardTo": ["lab@research.eu.contoso.com"]}}]}),
    case("Jira notifications filed to Archive and marked read", L, "datadog_hide", {"rules": [{
        "displayName": "Jira", "conditions": {"fromAddresses": ["jira@contoso.atlassian.net"]},
        "actions": {"moveToFolder": "Archive", "markAsRead": True}}]}),
    case("Teams missed-conversation mail moved to Conversation History", L, "datadog_hide", {"rules": [{
        "displayName": "Teams", "conditions": {"fromAddresses": ["noreply@email.teams.microsoft.com"]},
        "actions": {"moveToFolder": "Conversation History"}}]}),
    case("Vendor marketing filed to Junk", L, "manip", {"rules": [{
        "displayName": "Promo", "conditions": {"fromAddresses": ["marketing@fabrikam.com"]},
        "actions": {"moveToFolder": "Junk Email"}}]}),
    case("AP clerk files invoices into an Invoices folder, marked read", L, "proofpoint", {"rules": [{
        "displayName": "Invoices", "conditions": {"subjectContains": ["invoice", "remittance"]},
        "actions": {"moveToFolder": "Invoices", "markAsRead": True}}]}),
    case("Payroll mailbox sorts direct-deposit change requests into HR", L, "splunk_payroll", {"rules": [{
        "displayName": "DD", "conditions": {"subjectContains": ["direct deposit"]},
        "actions": {"moveToFolder": "HR"}}]}),
    case("User deletes gateway-tagged [SPAM] mail", L, "sentinel_malrule", {"rules": [{
        "displayName": "spam", "conditions": {"subjectContains": ["[SPAM]"]}, "actions": {"delete": True}}]}),
    case("SOC analyst files user-reported phishing into a working folder", L, "sentinel_malrule", {"rules": [{
        "displayName": "Phish reports", "conditions": {"subjectContains": ["phishing"], "fromAddresses": [
            "reportphish@contoso.com"]}, "actions": {"moveToFolder": "Reported phish"}}]}),
    case("IT admin files Microsoft sign-in alerts into an Alerts folder", L, "manip", {"rules": [{
        "displayName": "MS alerts", "conditions": {"subjectContains": ["unusual sign-in", "security alert"]},
        "actions": {"moveToFolder": "Alerts"}}]}),
    case("Manager's mail filed to a Boss folder", L, "manip", {"rules": [{
        "displayName": "Boss", "conditions": {"fromAddresses": ["manager@contoso.com"]},
        "actions": {"moveToFolder": "Boss"}}]}),
    case("Rule named '-' files HR mail into HR", L, "elastic_name", {"rules": [{
        "displayName": "-", "conditions": {"subjectContains": ["HR"]}, "actions": {"moveToFolder": "HR"}}]}),
    case("New hire registers a first phone method", L, "splunk_mfa", {
        "user": {"created_days_ago": 2}, "replace_methods": True, "methods": [
            {"id": "m-pw", "method_type": "passwordAuthenticationMethod", "created_hours_ago": 50},
            {"id": "m-first", "phone_number": "+1 425 555 0100", "created_hours_ago": 20}]}),
    case("Phone replacement: old authenticator removed, new authenticator added", L, "splunk_mfa", {
        "has_previous": True, "remove_methods": ["m-app"], "methods": [
            {"id": "m-app-new", "method_type": "microsoftAuthenticatorAuthenticationMethod",
             "display_name": "iPhone 15", "created_hours_ago": 10}]}),
    case("Passkey roll-out: FIDO2 key registered the same day as many colleagues", L, "splunk_mfa", {
        "accounts_scanned": 200, "new_method_types": {"fido2AuthenticationMethod": 120},
        "methods": [{"id": "m-fido", "method_type": "fido2AuthenticationMethod", "display_name": "YubiKey 5",
                     "created_hours_ago": 6}]}),
    case("New hire holds a usable onboarding TAP", L, "tap", {
        "user": {"created_days_ago": 1}, "methods": [{"id": "m-tap", "method_type":
                                                      "temporaryAccessPassAuthenticationMethod", "is_usable": True,
                                                      "created_hours_ago": 20}]}),
    case("Verified productivity add-in with Mail.ReadWrite (Boomerang)", L, "consent", {"grants": [{
        "app_display_name": "Boomerang for Outlook", "verified_publisher": "Baydin Inc",
        "scopes": ["Mail.ReadWrite", "offline_access"]}]}),
    case("eM Client sanctioned for Linux users (allow-listed)", L, "datadog_bec", {"grants": [{
        "app_display_name": "eM Client", "app_id": "e9a7fea1-1cc0-4cd9-a31b-9137ca5deedd",
        "scopes": ["IMAP.AccessAsUser.All", "offline_access"]}],
        "allowlist": {"apps": [{"value": "e9a7fea1-1cc0-4cd9-a31b-9137ca5deedd", "reason": "IT-sanctioned"}]}}),
    case("Tenant-wide consent to an archiving product", L, "consent", {"grants": [{
        "app_display_name": "Mimecast Archive", "consent_type": "AllPrincipals", "verified_publisher": "Mimecast",
        "scopes": ["Mail.Read"]}]}),
    case("Assistant with standing FullAccess delegate", L, "mitre_deleg", {
        "previous": {"delegates": [{"trustee": "Ann", "trustee_address": "ann@contoso.com",
                                    "access_right": "FullAccess"}]},
        "delegates": [{"trustee": "Ann", "trustee_address": "ann@contoso.com", "access_right": "FullAccess"}]}),
    case("Recruiter sends a steady high volume", L, "exo_limits", {"sending": {"sent_last_24h": 480},
                                                                  "sent_history": [420, 510, 450, 390]}),
    case("Event coordinator's invitation burst", L, "exo_limits", {"sending": {"sent_last_24h": 900},
                                                                  "sent_history": [100, 120, 90]}),
    case("Bulk sender restricted after mass announcements", L, "restricted", {
        "sending": {"blocked_from_sending": True, "sent_last_24h": 9500}}),
    case("Global Administrator replaces their phone (old removed, new added)", L, "sentinel_priv", {
        "roles": ["Global Administrator"], "previous": {"roles": ["Global Administrator"], "methods": [
            {"id": "m-oldphone", "phone_number": "+1 425 555 0111"}]},
        "methods": [{"id": "m-newphone", "phone_number": "+1 425 555 0112", "created_hours_ago": 8}]}),
    case("Break-glass account idle: permanent GA, FIDO2, no mail", L, "breakglass", {
        "protected": ["alice@contoso.com"], "roles": ["Global Administrator"], "sending": {"sent_last_24h": 0},
        "replace_rules": True, "rules": [], "replace_methods": True,
        "methods": [{"id": "m-fido", "method_type": "fido2AuthenticationMethod", "created_hours_ago": 9000}],
        "previous": {"roles": ["Global Administrator"], "sending": {"sent_last_24h": 0}, "replace_rules": True,
                     "rules": [], "replace_methods": True, "methods": [
                         {"id": "m-fido", "method_type": "fido2AuthenticationMethod", "created_hours_ago": 9000}]}}),
    case("Rule forwards to the tenant's Zendesk subdomain (not allow-listed)", L, "fwdpb", {"rules": [{
        "displayName": "Tickets", "conditions": {"subjectContains": ["support"]},
        "actions": {"forwardTo": ["help@contoso.zendesk.com"]}}]}),
    case("Email-to-case forward to Salesforce subdomain carrying the brand", L, "fwdpb", {"rules": [{
        "displayName": "Cases", "conditions": {"subjectContains": ["case"]},
        "actions": {"forwardTo": ["cases@contoso.my.salesforce.com"]}}]}),
    case("Shared mailbox deletes automatic replies", L, "manip", {"user": {"mailbox_type": "SharedMailbox"},
                                                                 "rules": [{"displayName": "no OOF", "conditions": {
                                                                     "isAutomaticReply": True},
                                                                     "actions": {"delete": True}}]}),
    case("Mail admin deletes DMARC aggregate reports", L, "manip", {"rules": [{
        "displayName": "DMARC", "conditions": {"subjectContains": ["Report domain:"],
                                               "fromAddresses": ["noreply-dmarc-support@google.com"]},
        "actions": {"delete": True}}]}),
    case("HR sync updates the mobile phone", L, "resp", {"has_previous": True,
                                                         "user": {"mobile_phone": "+1 425 555 0177"}}),
    case("Two functional mailboxes forward to the same allow-listed e-fax intake", L, "sentinel_fwd", {
        "forwarding": {"forwarding_smtp_address": "inbound@contoso.efax.com", "deliver_to_mailbox_and_forward": True},
        "others": [{"upn": "fax2@contoso.com", "forwarding": {"forwarding_smtp_address": "inbound@contoso.efax.com"}}],
        "allowlist": {"forwarding_addresses": [{"value": "inbound@contoso.efax.com", "reason": "e-fax"}]}}),
    case("Newsletter deletion rule", L, "manip", {"rules": [{
        "displayName": "Delete promos", "conditions": {"fromAddresses": ["deals@shop.example.com"]},
        "actions": {"delete": True}}]}),
    case("User adds a personal backup address to otherMails", L, "resp", {"has_previous": True,
                                                                          "user": {"other_mails": [
                                                                              "alice.personal@gmail.com"]}}),
    case("Traveller adds a local SIM phone method next to the existing authenticator", L, "splunk_mfa", {
        "has_previous": True, "methods": [{"id": "m-sim", "phone_number": "+33 6 12 34 56 78",
                                           "created_hours_ago": 12}]}),
    case("Contractor mailbox forwards to the contractor's employer (allow-listed)", L, "outbound", {
        "forwarding": {"forwarding_smtp_address": "j.doe@fabrikam-consulting.com",
                       "deliver_to_mailbox_and_forward": True},
        "allowlist": {"forwarding_domains": [{"value": "fabrikam-consulting.com", "reason": "contractor employer"}]}}),
    case("Help-desk colleague added as an internal delegate", L, "mitre_deleg", {
        "has_previous": True, "delegates": [{"trustee": "Helpdesk Ops", "trustee_address": "hd-ops@contoso.com",
                                             "access_right": "FullAccess"}]}),
    case("Disabled old inbox rule forwarding to a former partner", L, "manip", {"rules": [{
        "displayName": "Old partner", "isEnabled": False, "actions": {"forwardTo": ["ops@oldpartner.com"]}}]}),
    # --- refinement pass: benign look-alikes of linking / same-window / BEC-tool corroboration
    case("Executive self-forward to a personal gmail that is also their SSPR backup address (first scan)", L, "fwdpb", {
        "user": {"other_mails": ["j.whitfield.home@gmail.com"]},
        "forwarding": {"forwarding_smtp_address": "smtp:j.whitfield.home@gmail.com",
                       "deliver_to_mailbox_and_forward": True}}),
    case("Self-forward to a personal gmail without a copy, same address as backup e-mail", L, "fwdpb", {
        "user": {"other_mails": ["j.whitfield.home@gmail.com"]},
        "forwarding": {"forwarding_smtp_address": "smtp:j.whitfield.home@gmail.com",
                       "deliver_to_mailbox_and_forward": False}}),
    case("User adds the personal mailbox they already forward to as a backup address", L, "fwdpb", {
        "previous": {"forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com",
                                    "deliver_to_mailbox_and_forward": True}},
        "user": {"other_mails": ["j.whitfield.home@gmail.com"]},
        "forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com", "deliver_to_mailbox_and_forward": True}}),
    case("New hire: first phone method, rule forwards to the manager (internal only)", L, "splunk_mfa", {
        "user": {"created_days_ago": 2}, "replace_methods": True, "methods": [
            {"id": "m-pw", "method_type": "passwordAuthenticationMethod", "created_hours_ago": 50},
            {"id": "m-first", "phone_number": "+1 425 555 0100", "created_hours_ago": 20}],
        "rules": [{"displayName": "To manager", "conditions": {"subjectContains": ["onboarding"]},
                   "actions": {"forwardTo": ["manager@contoso.com"]}}]}),
    case("Device replacement next to a standing self-forward to a personal gmail", L, "fwdpb", {
        "previous": {"forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com",
                                    "deliver_to_mailbox_and_forward": True}},
        "forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com", "deliver_to_mailbox_and_forward": True},
        "remove_methods": ["m-app"], "methods": [
            {"id": "m-app-new", "method_type": "microsoftAuthenticatorAuthenticationMethod", "display_name": "iPhone 15",
             "created_hours_ago": 10}]}),
    case("FIDO2 roll-out night on an account with a standing personal-gmail forward", L, "passkeys", {
        "previous": {"forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com",
                                    "deliver_to_mailbox_and_forward": True}},
        "forwarding": {"forwarding_smtp_address": "j.whitfield.home@gmail.com", "deliver_to_mailbox_and_forward": True},
        "methods": [{"id": "m-key", "method_type": "fido2AuthenticationMethod", "display_name": "YubiKey 5",
                     "created_hours_ago": 6}],
        "accounts_scanned": 200, "new_method_types": {"fido2AuthenticationMethod": 60}}),
    case("Sales user consented SigParser and CloudSponge (contact tools on the BEC list, no export tool)", L,
         "datadog_bec", {"grants": [
             {"app_display_name": "SigParser", "scopes": ["Mail.Read", "offline_access"]},
             {"app_display_name": "CloudSponge", "scopes": ["Contacts.Read", "offline_access"]}]}),
    case("New hire deletes phishing-simulation mails; first method registered", L, "sentinel_malrule", {
        "user": {"created_days_ago": 3}, "replace_methods": True, "methods": [
            {"id": "m-first", "method_type": "microsoftAuthenticatorAuthenticationMethod", "created_hours_ago": 30}],
        "rules": [{"displayName": "Phish tests", "conditions": {"subjectContains": ["phishing simulation"]},
                   "actions": {"delete": True}}]}),
    case("Expired Temporary Access Pass left on a new hire", L, "tap", {
        "user": {"created_days_ago": 5}, "methods": [
            {"id": "m-tap", "method_type": "temporaryAccessPassAuthenticationMethod", "is_usable": False,
             "created_hours_ago": 100}]}),
    case("Disabled shared help-desk mailbox forwards to its Zendesk intake", L, "shared_signin", {
        "upn": "helpdesk@contoso.com", "user": {"account_enabled": False, "mailbox_type": "SharedMailbox"},
        "forwarding": {"forwarding_smtp_address": "support@contoso.zendesk.com",
                       "deliver_to_mailbox_and_forward": True}}),
    case("Large tenant: passkey roll-out wave of 200 accounts in one night (10,000 scanned)", L, "passkeys", {
        "has_previous": True, "methods": [{"id": "m-key", "method_type": "fido2AuthenticationMethod",
                                           "display_name": "YubiKey 5", "created_hours_ago": 5}],
        "accounts_scanned": 10000, "new_method_types": {"fido2AuthenticationMethod": 200}}),
    case("User registers their own profile mobile as the first phone method (first scan)", L, "splunk_mfa", {
        "replace_methods": True, "methods": [{"id": "m-first", "phone_number": "+1 555 0100",
                                              "created_hours_ago": 12}]}),
]

B = "benign"
plain = [
    case("Default user: one newsletter rule, authenticator", B, "resp", {}),
    case("Default user, second scan, nothing changed", B, "resp", {"has_previous": True}),
    case("User with several filing rules", B, "manip", {"rules": [
        {"displayName": "Jira", "conditions": {"fromAddresses": ["jira@contoso.atlassian.net"]},
         "actions": {"moveToFolder": "Jira"}},
        {"displayName": "HR", "conditions": {"subjectContains": ["benefits"]}, "actions": {"moveToFolder": "HR"}},
        {"displayName": "Important", "conditions": {"fromAddresses": ["ceo@contoso.com"]},
         "actions": {"markImportance": "high"}}]}),
    case("Standing Global Administrator on the first scan", B, "mitre_roles", {"roles": ["Global Administrator"]}),
    case("Consent to a sign-in-only app", B, "consent", {"grants": [{"app_display_name": "Zoom",
                                                                       "scopes": ["openid", "profile", "User.Read"]}]}),
    case("Normal sending with history", B, "exo_limits", {"sending": {"sent_last_24h": 45},
                                                          "sent_history": [40, 38, 52]}),
    case("Old phone and authenticator methods", B, "splunk_mfa", {"methods": [
        {"id": "m-ph", "phone_number": "+1 425 555 0100", "created_hours_ago": 24 * 500}]}),
    case("Guest collaborator without roles", B, "mitre_roles", {"user": {"user_type": "Guest"},
                                                                "upn": "partner_fabrikam.com#EXT#@contoso.onmicrosoft.com"}),
    case("Shared mailbox with delegates", B, "mitre_deleg", {"user": {"mailbox_type": "SharedMailbox"},
                                                             "has_previous": True, "delegates": [
        {"trustee": "Bob", "trustee_address": "bob@contoso.com", "access_right": "FullAccess"}]}),
    case("Microsoft first-party app with mail scopes", B, "consent", {"grants": [{
        "app_display_name": "Microsoft Outlook", "app_owner_organization_id": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "scopes": ["Mail.ReadWrite", "offline_access"]}]}),
    case("Internal forward to a colleague on a subject", B, "vectra", {"rules": [{
        "displayName": "Reports", "conditions": {"subjectContains": ["weekly report"]},
        "actions": {"forwardTo": ["team-lead@contoso.com"]}}]}),
]

here = Path(__file__).parent
for fname, data in (("malicious.json", malicious), ("benign_lookalike.json", lookalikes), ("benign.json", plain)):
    (here / fname).write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n")
print(len(malicious), len(lookalikes), len(plain))
