"""An adversarial tenant for report tests: every tenant string an attacker controls carries a payload."""

from __future__ import annotations

from pathlib import Path

from report_builders import finding, make_scan, open_store, user

from reports import write_outputs

XSS_IMG = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"
XSS_ATTR = '"><svg onload="window.__pwned=3">'
CSS_BREAK = "</style><style>body{display:none}</style>"
JS_URL = "javascript:window.__pwned=4"
RLO = "\u202eexe.txt"  # reads "txt.exe" when the override is honoured
ZWSP = "in\u200bvoice"
SCRIPT_CLOSE = "</script><script>window.__pwned=5</script>"
LINE_SEP = "a\u2028b\u2029c"

# Strings that must never appear unescaped (a javascript: URL may appear as text, never as a link).
PAYLOADS = (XSS_IMG, XSS_SCRIPT, XSS_ATTR, CSS_BREAK, SCRIPT_CLOSE)

VICTIM = "victim@contoso.com"
# A tenant-level finding's pseudo-account: the app's display name is attacker-chosen too.
SP_APP = f"Backup{XSS_IMG}"
SP_ACCOUNT = f"serviceprincipal:{SP_APP} (a1b2c3d4-0000-4000-8000-00000000beef)"
EVIL_UPN = f"{XSS_ATTR}@contoso.com"


def build(tmp_path: Path) -> tuple[dict[str, Path], str]:
    store = open_store(tmp_path)
    accounts = [
        user(VICTIM, display_name=XSS_IMG, on_premises_sync_enabled=True, mobile_phone=XSS_SCRIPT),
        user(EVIL_UPN, display_name=CSS_BREAK),
        user("quiet@contoso.com"),
        user("suspect@contoso.com", display_name=RLO),
        user(f"clean{SCRIPT_CLOSE}@contoso.com"),
    ] + [user(f"user{i:02d}@contoso.com") for i in range(10)]
    fs = [
        finding(VICTIM, "mail.inbox_rule_hides_mail", severity="critical", artefact="r1", technique="T1564.008",
                title="Inbox rule hides mail", evidence={
                    "rule_name": RLO, "conditions": f"subjectContains '{ZWSP}', '{XSS_SCRIPT}'",
                    "actions": "move to RSS Feeds; mark as read", "folder": CSS_BREAK, "folder_kind": "lowvis",
                    "link": JS_URL, "note": LINE_SEP}),
        finding(VICTIM, "mail.inbox_rule_external_forward", severity="high", artefact="r2",
                technique=f"T1114.003{XSS_ATTR}", title=XSS_IMG, evidence={
                    "rule_name": XSS_SCRIPT, "destinations": [{"destination": f"j{XSS_ATTR}@contoso-payments.com",
                                                               "domain_class": "lookalike",
                                                               "lookalike_of": "contoso.com"}]}),
        finding(EVIL_UPN, "mail.mailbox_external_forward", severity="high", artefact="f1",
                evidence={"destination": JS_URL, "domain_class": "freemail", "kept_copy": False}),
        finding("suspect@contoso.com", "mail.mailbox_external_forward", severity="medium", artefact="f2",
                new=False, evidence={"destination": "x@gmail.com", "domain_class": "freemail"}),
        finding("quiet@contoso.com", "mail.mailbox_external_forward", severity="info", artefact="f3",
                suppressed=f"allowlist: {XSS_SCRIPT}", new=False, evidence={"destination": "p@partner.com"}),
        finding(SP_ACCOUNT, "roles.service_principal_privileged", severity="high", artefact="sp1",
                technique="T1098.003", title="Non-Microsoft app (service principal) holds a privileged directory role",
                evidence={"service_principal": SP_APP, "app_id": "a1b2c3d4-0000-4000-8000-00000000beef",
                          "role": "Global Administrator", "scope": "/", "new": True,
                          "app_owner_organization_id": "9f3e0d1c-1111-4a4a-8b8b-2d7cd0aa0001"}),
    ]
    scan_id = make_scan(
        store, accounts, fs,
        verdicts={VICTIM: ("compromised", 120), EVIL_UPN: ("compromised", 50), "suspect@contoso.com":
                  ("suspicious", 25)},
        tenant={"tenant_id": "t", "display_name": f"Contoso {XSS_SCRIPT}", "default_domain": "contoso.com"},
        errors=[("user03@contoso.com", "inbox_rules", XSS_IMG, "ErrorAccessDenied"),
                (None, f"roles{CSS_BREAK}", SCRIPT_CLOSE, None)])
    store.journal_append({"action_id": "a1", "upn": VICTIM, "step": "disable_rules", "status": "applied",
                          "target": XSS_SCRIPT, "detail": XSS_IMG, "scan_id": scan_id})
    paths = write_outputs(store, scan_id, tmp_path / "out")
    store.close()
    return paths, scan_id
