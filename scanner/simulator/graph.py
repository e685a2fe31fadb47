"""Microsoft Graph v1.0 handlers (shapes per graph-api.md §1-§8, behaviour per §11)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from . import ids
from .model import (
    METHOD_TYPES,
    PASSWORD_METHOD_ID,
    REGISTRATION_NAMES,
    ROLE_TEMPLATES,
    TYPE_TO_COLLECTION,
    Folder,
    Rule,
    Tenant,
    User,
    iso,
    iso_precise,
)
from .permissions import REQUIRED


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Req:
    __slots__ = ("method", "path", "segs", "query", "headers", "body", "base", "roles", "loop_nextlink", "json_body")

    def __init__(self, method: str, path: str, query: dict, headers: dict, body: bytes, base: str) -> None:
        self.method, self.path, self.query, self.headers, self.body, self.base = method, path, query, headers, body, base
        self.segs = _key_segments([s for s in path.split("/") if s])
        self.roles: frozenset[str] = frozenset()
        self.loop_nextlink = False
        self.json_body: Any = None


def _key_segments(segs: list[str]) -> list[str]:
    """``users('key')`` (OData's key-as-parenthesis form) -> ``users``, ``key``: Graph's documented way to address a
    user whose userPrincipalName begins with ``$``."""
    if segs and segs[0].startswith("users(") and segs[0].endswith(")"):
        inner = segs[0][len("users("):-1]
        if len(inner) >= 2 and inner[0] == inner[-1] == "'":
            return ["users", inner[1:-1].replace("''", "'"), *segs[1:]]
    return segs


def need(req: Req, key: str) -> None:
    kind, perms = REQUIRED[key]
    if req.roles.isdisjoint(perms):
        if kind == "mail":
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def not_found_dir(key: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound",
                      f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")


# ---------------------------------------------------------------------------------------------------- users
USER_DEFAULT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                "preferredLanguage", "surname", "userPrincipalName", "id")
SINGLE_ONLY = {"aboutMe", "birthday", "hireDate", "interests", "mySite", "pastProjects", "preferredName",
               "responsibilities", "schools", "skills", "mailboxSettings"}


def _sku(u: User) -> list:
    return [{"disabledPlans": [], "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}] if u.licensed else []


GETTERS: dict[str, Any] = {
    "id": lambda u, t: u.id,
    "userPrincipalName": lambda u, t: u.userPrincipalName,
    "displayName": lambda u, t: u.displayName,
    "givenName": lambda u, t: u.givenName,
    "surname": lambda u, t: u.surname,
    "mail": lambda u, t: u.mail,
    "mailNickname": lambda u, t: u.mailNickname,
    "jobTitle": lambda u, t: u.jobTitle,
    "department": lambda u, t: u.department,
    "officeLocation": lambda u, t: u.officeLocation,
    "businessPhones": lambda u, t: u.businessPhones,
    "mobilePhone": lambda u, t: u.mobilePhone,
    "preferredLanguage": lambda u, t: u.preferredLanguage,
    "accountEnabled": lambda u, t: u.accountEnabled,
    "userType": lambda u, t: u.userType,
    "createdDateTime": lambda u, t: iso(u.createdDateTime),
    "lastPasswordChangeDateTime": lambda u, t: iso(u.lastPasswordChangeDateTime),
    "onPremisesSyncEnabled": lambda u, t: u.onPremisesSyncEnabled,
    "otherMails": lambda u, t: u.otherMails,
    "proxyAddresses": lambda u, t: u.proxyAddresses,
    "assignedLicenses": lambda u, t: _sku(u),
    "usageLocation": lambda u, t: u.usageLocation,
    "companyName": lambda u, t: u.companyName,
    "employeeType": lambda u, t: u.employeeType,
    "creationType": lambda u, t: u.creationType,
    "externalUserState": lambda u, t: u.externalUserState,
    "signInSessionsValidFromDateTime": lambda u, t: iso(u.signInSessionsValidFromDateTime or u.createdDateTime),
    "identities": lambda u, t: [{"signInType": "userPrincipalName", "issuer": t.onmicrosoft_domain,
                                 "issuerAssignedId": u.userPrincipalName}],
    "passwordPolicies": lambda u, t: None,
    "passwordProfile": lambda u, t: None,
    "signInActivity": lambda u, t: {"lastSignInDateTime": iso(u.last_sign_in), "lastSignInRequestId": None,
                                    "lastNonInteractiveSignInDateTime": iso(u.last_sign_in),
                                    "lastNonInteractiveSignInRequestId": None,
                                    "lastSuccessfulSignInDateTime": iso(u.last_sign_in),
                                    "lastSuccessfulSignInRequestId": None},
    "isResourceAccount": lambda u, t: None,
    "showInAddressList": lambda u, t: None,
}
OTHER_USER_PROPS = (
    "aboutMe ageGroup assignedPlans authorizationInfo birthday city consentProvidedForMinor country "
    "customSecurityAttributes deletedDateTime employeeHireDate employeeId employeeLeaveDateTime employeeOrgData "
    "externalUserStateChangeDateTime faxNumber hireDate imAddresses interests legalAgeGroupClassification "
    "licenseAssignmentStates mailboxSettings mySite onPremisesDistinguishedName onPremisesDomainName "
    "onPremisesExtensionAttributes onPremisesImmutableId onPremisesLastSyncDateTime onPremisesProvisioningErrors "
    "onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesUserPrincipalName pastProjects postalCode "
    "preferredDataLocation preferredName provisionedPlans responsibilities schools securityIdentifier "
    "serviceProvisioningErrors skills state streetAddress"
).split()
USER_PROPS = set(GETTERS) | set(OTHER_USER_PROPS)
_LOWER_USER_PROPS = {p.lower(): p for p in USER_PROPS}


def parse_select(req: Req, universe: set[str] | None, type_name: str) -> list[str] | None:
    raw = req.query.get("$select")
    if raw is None:
        return None
    out = []
    for p in (x.strip() for x in raw.split(",")):
        if not p:
            continue
        if universe is not None:
            canon = _LOWER_USER_PROPS.get(p.lower()) if type_name == "user" else (p if p in universe else None)
            if canon is None:
                raise GraphError(400, "Request_BadRequest",
                                 f"Could not find a property named '{p}' on type 'microsoft.graph.{type_name}'.")
            p = canon
        out.append(p)
    return out


def user_json(u: User, t: Tenant, props) -> dict:
    out = {}
    for p in props:
        g = GETTERS.get(p)
        out[p] = g(u, t) if g else None
    return out


_CLAUSE = re.compile(
    r"^\s*(?:(?P<prop>[A-Za-z/$]+)\s+(?P<op>eq|ne|in|ge|le|gt|lt)\s+(?P<val>.+?)|"
    r"(?P<fn>startswith|endswith)\(\s*(?P<fprop>[A-Za-z]+)\s*,\s*'(?P<fval>(?:[^']|'')*)'\s*\))\s*$", re.I)


def _literal(v: str) -> Any:
    v = v.strip()
    if v.startswith("'") and v.endswith("'"):
        return v[1:-1].replace("''", "'")
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    if v.lower() == "null":
        return None
    if v.startswith("(") and v.endswith(")"):
        return [_literal(x) for x in re.findall(r"'(?:[^']|'')*'|[^,\s]+", v[1:-1])]
    try:
        return int(v)
    except ValueError:
        return v


def parse_filter(raw: str, allowed: set[str], resource: str, advanced: bool) -> list[tuple[str, str, Any]]:
    clauses = []
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.I):
        m = _CLAUSE.match(part)
        if not m:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        if m.group("fn"):
            prop, op, val = m.group("fprop"), m.group("fn").lower(), m.group("fval").replace("''", "'")
        else:
            prop, op, val = m.group("prop"), m.group("op").lower(), _literal(m.group("val"))
        if prop == "assignedLicenses/$count":
            if not advanced:
                raise GraphError(400, "Request_UnsupportedQuery",
                                 "Unsupported or invalid query filter clause specified for property 'assignedLicenses' of resource 'User'.")
            clauses.append(("assignedLicenses", "count_" + op, val))
            continue
        if prop not in allowed:
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'.")
        if op in ("ne", "endswith") and not advanced:
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'.")
        clauses.append((prop, op, val))
    return clauses


def _cmp(actual: Any, op: str, val: Any) -> bool:
    if isinstance(actual, str) and isinstance(val, str):
        a, v = actual.lower(), val.lower()
    else:
        a, v = actual, val
    if op == "eq":
        return a == v
    if op == "ne":
        return a != v
    if op == "in":
        vals = [x.lower() if isinstance(x, str) else x for x in (val or [])]
        return a in vals
    if op == "startswith":
        return isinstance(a, str) and a.startswith(v)
    if op == "endswith":
        return isinstance(a, str) and a.endswith(v)
    if op.startswith("count_"):
        n = len(actual or [])
        return _cmp(n, op[6:], val)
    return False


def match_obj(obj: dict | User, clauses, t: Tenant | None = None) -> bool:
    for prop, op, val in clauses:
        if isinstance(obj, User):
            g = GETTERS.get(prop)
            actual = g(obj, t) if g else None
        else:
            actual = obj.get(prop)
        if not _cmp(actual, op, val):
            return False
    return True


def skiptoken(offset: int) -> str:
    return "RFNwdAIAAQAAA" + base64.urlsafe_b64encode(orjson.dumps({"o": offset, "v": 2})).decode().rstrip("=")


def read_skiptoken(req: Req) -> int:
    tok = req.query.get("$skiptoken")
    if not tok:
        return 0
    try:
        raw = tok[len("RFNwdAIAAQAAA"):]
        return int(orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["o"])
    except (ValueError, KeyError, TypeError) as e:
        raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.") from e


def next_link(req: Req, offset: int) -> str:
    from urllib.parse import quote
    if req.loop_nextlink:
        offset = read_skiptoken(req)
    parts = [f"{k}={quote(str(v), safe=',()=$:/@')}" for k, v in req.query.items() if k != "$skiptoken"]
    parts.append(f"$skiptoken={skiptoken(offset)}")
    return f"{req.base}/v1.0/{'/'.join(req.segs)}?" + "&".join(parts)


def page_size(req: Req, default: int, maximum: int, strict: bool = True) -> int:
    top = req.query.get("$top")
    if top is None and not strict:  # Prefer: odata.maxpagesize is honoured by Outlook resources
        prefer = req.headers.get("prefer", "")
        m = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        return min(int(m.group(1)), maximum) if m else default
    if top is None:
        return default
    try:
        n = int(top)
    except ValueError as e:
        raise GraphError(400, "BadRequest", f"Invalid value '{top}' for $top query option found.") from e
    if n < 1 or n > maximum:
        if strict:
            raise GraphError(400, "Request_BadRequest",
                             f"Invalid page size specified: '{n}'. Must be between 1 and {maximum} inclusive.")
        n = max(1, min(n, maximum))
    return n


def collection(req: Req, context: str, items: list, nxt: int | None, count: int | None = None) -> dict:
    out: dict[str, Any] = {"@odata.context": f"{req.base}/v1.0/$metadata#{context}"}
    if count is not None:
        out["@odata.count"] = count
    if nxt is not None:
        out["@odata.nextLink"] = next_link(req, nxt)
    out["value"] = items
    return out


def advanced(req: Req) -> bool:
    # Later pages are advanced queries too: the SDK does not resend ConsistencyLevel with a nextLink (§11.3).
    return req.headers.get("consistencylevel", "").lower() == "eventual" or "$skiptoken" in req.query


def list_users(t: Tenant, req: Req):
    need(req, "GET users")
    if "$skip" in req.query:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$orderby" in req.query or "$search" in req.query:
        raise GraphError(400, "Request_UnsupportedQuery", "The simulator does not implement $orderby/$search on users.")
    sel = parse_select(req, USER_PROPS, "user")
    if sel:
        bad = [p for p in sel if p in SINGLE_ONLY]
        if bad:
            raise GraphError(501, "NotImplemented",
                             f"The '{bad[0]}' property is only supported when retrieving a single user.")
        if "signInActivity" in sel:
            need(req, "GET users#signInActivity")
    props = sel or USER_DEFAULT
    want_count = req.query.get("$count", "").lower() == "true"
    if want_count and not advanced(req):
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    top = page_size(req, 100, 999)
    clauses = []
    if "$filter" in req.query:
        clauses = parse_filter(req.query["$filter"], {"accountEnabled", "userType", "id", "mail", "userPrincipalName",
                                                       "onPremisesSyncEnabled", "displayName", "department", "jobTitle",
                                                       "givenName", "surname", "creationType", "employeeType"},
                               "User", advanced(req) and want_count)
    start = read_skiptoken(req)
    total = t.user_count
    items: list[dict] = []
    nxt = None
    direct = None
    for prop, op, val in clauses:
        if prop in ("id", "userPrincipalName", "mail") and op in ("eq", "in"):
            keys = val if isinstance(val, list) else [val]
            direct = []
            for k in keys:
                idx = t.find_index(str(k)) if k else None
                if idx is not None:
                    direct.append(idx)
            break
    if direct is not None:
        matched = [t.user_at(i) for i in sorted(set(direct))]
        matched = [u for u in matched if match_obj(u, clauses, t)]
        items = [user_json(u, t, props) for u in matched[start:start + top]]
        if start + top < len(matched):
            nxt = start + top
        count = len(matched) if want_count and start == 0 else None
    else:
        i = start
        while i < total and len(items) < top:
            u = t.user_at(i)
            if not clauses or match_obj(u, clauses, t):
                items.append(user_json(u, t, props))
            i += 1
        if i < total:
            nxt = i
        count = None
        if want_count and start == 0:
            count = total if not clauses else sum(1 for u in t.iter_users() if match_obj(u, clauses, t))
    ctx = "users" + (f"({','.join(sel)})" if sel else "")
    t.stats["user_pages"] += 1
    return 200, collection(req, ctx, items, nxt, count)


def get_user_obj(t: Tenant, key: str) -> User:
    u = t.find_user(key)
    if u is None:
        raise not_found_dir(key)
    return u


def user_item(t: Tenant, req: Req, u: User):
    need(req, "GET users/{id}")
    sel = parse_select(req, USER_PROPS, "user")
    if sel and "signInActivity" in sel:
        need(req, "GET users#signInActivity")
    props = sel or USER_DEFAULT
    body = {"@odata.context": f"{req.base}/v1.0/$metadata#users" + (f"({','.join(sel)})/$entity" if sel else "/$entity")}
    body.update(user_json(u, t, props))
    if sel and "mailboxSettings" in sel:
        if u.mailbox is None:
            raise GraphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
        body["mailboxSettings"] = mailbox_settings_obj(u)
    return 200, body


def _password_ok(pw: str) -> bool:
    classes = sum(bool(re.search(p, pw)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return 8 <= len(pw) <= 256 and classes >= 3


def patch_user(t: Tenant, req: Req, u: User):
    body = req.json_body
    if not isinstance(body, dict):
        raise GraphError(400, "Request_BadRequest", "Invalid request body.")
    body = {k: v for k, v in body.items() if not k.startswith("@")}  # instance annotations such as @odata.type
    if isinstance(body.get("passwordProfile"), dict):
        body["passwordProfile"] = {k: v for k, v in body["passwordProfile"].items() if not k.startswith("@")}
    keys = set(body)
    if keys & {"passwordProfile"}:
        need(req, "PATCH users/{id}#passwordProfile")
    if keys == {"accountEnabled"}:
        need(req, "PATCH users/{id}#accountEnabled")
    elif keys - {"passwordProfile", "accountEnabled"} or ("accountEnabled" in keys and "passwordProfile" in keys):
        need(req, "PATCH users/{id}")
    unknown = [k for k in keys if k not in USER_PROPS]
    if unknown:
        raise GraphError(400, "Request_BadRequest", f"Property '{unknown[0]}' does not exist on type 'Microsoft.DirectoryServices.User'.")
    if u.onPremisesSyncEnabled and keys & {"passwordProfile", "accountEnabled", "displayName", "mobilePhone", "otherMails"} - {"accountEnabled"}:
        raise GraphError(400, "Request_BadRequest",
                         "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.")
    if "passwordProfile" in body:
        pp = body["passwordProfile"] or {}
        pw = pp.get("password")
        if not isinstance(pw, str) or not _password_ok(pw):
            raise GraphError(400, "Request_BadRequest",
                             "The specified password does not comply with password complexity requirements. Please provide a different password.")
        t.set_password(u, pw, bool(pp.get("forceChangePasswordNextSignIn") or pp.get("forceChangePasswordNextSignInWithMfa")))
    if "accountEnabled" in body:
        if not isinstance(body["accountEnabled"], bool):
            raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'accountEnabled' of resource 'User'.")
        u.accountEnabled = body["accountEnabled"]
    for k in ("displayName", "jobTitle", "department", "mobilePhone", "officeLocation", "otherMails", "businessPhones"):
        if k in body:
            setattr(u, k, body[k])
    detail = {k: ("<redacted>" if k == "passwordProfile" else v) for k, v in body.items()}
    t.log("PATCH", f"/users/{u.id}", u, detail=detail)
    return 204, None


def revoke_sessions(t: Tenant, req: Req, u: User):
    need(req, "POST users/{id}/revokeSignInSessions")
    u.sessions_revoked += 1
    u.sessions_revoked_at = t.now()
    u.signInSessionsValidFromDateTime = t.now()
    t.log("POST", f"/users/{u.id}/revokeSignInSessions", u)
    # revokeSignInSessions returns 200 {"value": true}, not the documented 204 (graph-api.md §7).
    return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#Edm.Boolean", "value": True}


# ---------------------------------------------------------------------------------------------------- mailbox
def require_mailbox(u: User) -> None:
    if u.mailbox is None:
        raise GraphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")


def mailbox_settings_obj(u: User) -> dict:
    purpose = {"user": "user", "shared": "shared", "room": "room", "equipment": "equipment"}[u.mailbox.kind]
    tz = "W. Europe Standard Time" if u.usageLocation == "GB" else "Pacific Standard Time"
    return {"archiveFolder": None, "timeZone": tz, "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "dateFormat": "M/d/yyyy", "timeFormat": "h:mm tt", "userPurpose": purpose,
            "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all",
                                        "internalReplyMessage": "", "externalReplyMessage": "",
                                        "scheduledStartDateTime": {"dateTime": "2024-01-01T00:00:00.0000000", "timeZone": "UTC"},
                                        "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"}},
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                             "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                             "timeZone": {"name": tz}}}


def mailbox_settings(t: Tenant, req: Req, u: User):
    need(req, "GET users/{id}/mailboxSettings")
    require_mailbox(u)
    body = {"@odata.context": f"{req.base}/v1.0/$metadata#users('{u.id}')/mailboxSettings"}
    body.update(mailbox_settings_obj(u))
    return 200, body


FOLDER_PROPS = {"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount",
                "isHidden"}


def folder_json(t: Tenant, u: User, f: Folder, sel: list[str] | None) -> dict:
    folders = t.folders(u)
    d = {"id": f.id, "displayName": f.displayName, "parentFolderId": f.parentFolderId,
         "childFolderCount": sum(1 for x in folders.values() if x.parentFolderId == f.id and x.is_mail),
         "unreadItemCount": f.unreadItemCount, "totalItemCount": f.totalItemCount,
         "isHidden": f.isHidden}
    if sel:
        d = {k: v for k, v in d.items() if k in sel or k == "id"}
    return d


def resolve_folder(t: Tenant, u: User, key: str) -> Folder:
    f = t.folders(u).get(key)
    if f is None:
        f = t.well_known_folder(u, key)
    if f is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return f


def list_folders(t: Tenant, req: Req, u: User, parent: Folder | None):
    need(req, "GET users/{id}/mailFolders")
    require_mailbox(u)
    sel = parse_select(req, None, "mailFolder")
    include_hidden = req.query.get("includeHiddenFolders", "").lower() == "true"
    parent_id = parent.id if parent else ids.outlook_id(u.id, "folder", "msgfolderroot")
    items = [f for f in t.folders(u).values() if f.parentFolderId == parent_id and f.is_mail
             and (include_hidden or not f.isHidden)]
    top = page_size(req, 10, 1000, strict=False)
    start = read_skiptoken(req) if "$skiptoken" in req.query else int(req.query.get("$skip", "0") or 0)
    chunk = items[start:start + top]
    nxt = start + top if start + top < len(items) else None
    want_count = req.query.get("$count", "").lower() == "true"
    ctx = f"users('{u.id}')/mailFolders" + ("" if parent is None else f"('{parent.id}')/childFolders")
    return 200, collection(req, ctx, [folder_json(t, u, f, sel) for f in chunk], nxt, len(items) if want_count else None)


def get_folder(t: Tenant, req: Req, u: User, f: Folder):
    need(req, "GET users/{id}/mailFolders")
    require_mailbox(u)
    sel = parse_select(req, None, "mailFolder")
    body = {"@odata.context": f"{req.base}/v1.0/$metadata#users('{u.id}')/mailFolders/$entity"}
    body.update(folder_json(t, u, f, sel))
    return 200, body


# rules
RULE_PRED_KEYS = {"bodyContains", "bodyOrSubjectContains", "subjectContains", "senderContains", "recipientContains",
                  "headerContains", "categories", "fromAddresses", "sentToAddresses", "hasAttachments",
                  "isApprovalRequest", "isAutomaticForward", "isAutomaticReply", "isEncrypted", "isMeetingRequest",
                  "isMeetingResponse", "isNonDeliveryReport", "isPermissionControlled", "isReadReceipt", "isSigned",
                  "isVoicemail", "notSentToMe", "sentCcMe", "sentOnlyToMe", "sentToMe", "sentToOrCcMe", "importance",
                  "sensitivity", "messageActionFlag", "withinSizeRange"}
RULE_ACTION_KEYS = {"forwardTo", "forwardAsAttachmentTo", "redirectTo", "delete", "permanentDelete", "moveToFolder",
                    "copyToFolder", "markAsRead", "markImportance", "stopProcessingRules", "assignCategories"}


def rule_json(req: Req, u: User, r: Rule, context: bool = False) -> dict:
    d = r.graph()
    if context:
        d = {"@odata.context": f"{req.base}/v1.0/$metadata#users('{u.id}')/mailFolders('inbox')/messageRules/$entity", **d}
    return d


def inbox_check(t: Tenant, u: User, folder_key: str) -> None:
    f = resolve_folder(t, u, folder_key)
    if f.well_known != "inbox":
        raise GraphError(400, "ErrorInvalidRequest", "Message rules are only supported on the Inbox folder.")


def list_rules(t: Tenant, req: Req, u: User):
    need(req, "GET users/{id}/messageRules")
    require_mailbox(u)
    items = [rule_json(req, u, r) for r in t.rules(u) if not r.hidden]
    return 200, collection(req, f"users('{u.id}')/mailFolders('inbox')/messageRules", items, None)


def find_rule(t: Tenant, u: User, rid: str) -> Rule:
    for r in t.rules(u):
        if r.id == rid and not r.hidden:
            return r
    raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _strip_annotations(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_annotations(x) for k, x in v.items() if not k.startswith("@")}
    if isinstance(v, list):
        return [_strip_annotations(x) for x in v]
    return v


def _validate_rule_body(t: Tenant, u: User, body: dict) -> None:
    for k in ("conditions", "exceptions"):
        if k in body and body[k] is not None:
            bad = set(body[k]) - RULE_PRED_KEYS
            if bad:
                raise GraphError(400, "RequestBodyRead",
                                 f"The property '{sorted(bad)[0]}' does not exist on type 'microsoft.graph.messageRulePredicates'.")
    if "actions" in body and body["actions"] is not None:
        bad = set(body["actions"]) - RULE_ACTION_KEYS
        if bad:
            raise GraphError(400, "RequestBodyRead",
                             f"The property '{sorted(bad)[0]}' does not exist on type 'microsoft.graph.messageRuleActions'.")
        for k in ("moveToFolder", "copyToFolder"):
            fid = body["actions"].get(k)
            if fid and fid not in t.folders(u):
                wk = t.well_known_folder(u, fid)
                if wk is None:
                    raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
                body["actions"][k] = wk.id


def create_rule(t: Tenant, req: Req, u: User):
    need(req, "POST users/{id}/messageRules")
    require_mailbox(u)
    body = _strip_annotations(req.json_body)
    if not isinstance(body, dict) or not body.get("displayName"):
        raise GraphError(400, "ErrorInvalidRequest", "The rule must have a displayName.")
    _validate_rule_body(t, u, body)
    if not body.get("actions"):
        raise GraphError(400, "ErrorInvalidRequest", "The rule must contain at least one action.")
    r = t.add_rule(u, displayName=body["displayName"], conditions=body.get("conditions"), actions=body.get("actions"),
                   exceptions=body.get("exceptions"), isEnabled=body.get("isEnabled", True),
                   sequence=body.get("sequence"), log=False)
    t.log("POST", f"/users/{u.id}/mailFolders/inbox/messageRules", u, detail={"id": r.id, "displayName": r.displayName})
    return 201, rule_json(req, u, r, context=True)


def patch_rule(t: Tenant, req: Req, u: User, rid: str):
    need(req, "PATCH users/{id}/messageRules/{id}")
    require_mailbox(u)
    r = find_rule(t, u, rid)
    if r.isReadOnly:
        raise GraphError(400, "ErrorInvalidRequest", "The rule is read-only and cannot be modified.")
    body = _strip_annotations(req.json_body)
    if not isinstance(body, dict):
        raise GraphError(400, "RequestBodyRead", "Invalid request body.")
    _validate_rule_body(t, u, body)
    before = {"isEnabled": r.isEnabled, "displayName": r.displayName}
    # PATCH replaces a complex property (conditions/actions/exceptions) as a whole (graph-api.md §2.3).
    for k in ("displayName", "sequence", "isEnabled"):
        if k in body:
            setattr(r, k, body[k])
    for k in ("conditions", "exceptions", "actions"):
        if k in body:
            setattr(r, k, dict(body[k] or {}))
    t.log("PATCH", f"/users/{u.id}/mailFolders/inbox/messageRules/{r.id}", u,
          detail={"displayName": r.displayName, "before": before, "changes": body})
    return 200, rule_json(req, u, r, context=True)


def delete_rule(t: Tenant, req: Req, u: User, rid: str):
    need(req, "DELETE users/{id}/messageRules/{id}")
    require_mailbox(u)
    r = find_rule(t, u, rid)
    if r.isReadOnly:
        raise GraphError(400, "ErrorInvalidRequest", "The rule is read-only and cannot be deleted.")
    t.rules(u).remove(r)
    t.log("DELETE", f"/users/{u.id}/mailFolders/inbox/messageRules/{r.id}", u, detail={"displayName": r.displayName})
    return 204, None


# messages
MSG_PROPS = {"id", "subject", "sentDateTime", "receivedDateTime", "createdDateTime", "lastModifiedDateTime",
             "toRecipients", "ccRecipients", "bccRecipients", "from", "sender", "replyTo", "internetMessageId",
             "hasAttachments", "importance", "isRead", "isDraft", "parentFolderId", "conversationId", "bodyPreview",
             "body", "flag", "categories", "changeKey", "webLink", "inferenceClassification", "uniqueBody"}
SUBJECTS = ("Re: Q3 planning", "Updated deck", "Meeting notes", "Re: Contract review", "Follow-up", "FW: Invoice",
            "Re: Customer escalation", "Weekly status", "Re: Lunch?", "Draft proposal")


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def message_json(t: Tenant, u: User, k: int, when: datetime, folder: Folder, sel: list[str] | None) -> dict:
    h = ids.mix(t.seed, u.index, k, 77)
    mid = ids.outlook_id(u.id, "msg", f"{folder.id}/{k}")
    rcpt_n = t.user_at(len(t.explicit) + h % max(1, t.n_background)) if t.n_background else u
    to = [{"emailAddress": {"name": rcpt_n.displayName, "address": rcpt_n.mail or rcpt_n.userPrincipalName}}]
    ts = iso(when)
    d = {"@odata.etag": f'W/"CQAAABYAAAA{ids.b64url(h.to_bytes(8, "big"))}"', "id": mid, "createdDateTime": ts,
         "lastModifiedDateTime": ts, "changeKey": f"CQAAABYAAAA{ids.b64url(h.to_bytes(8, 'big'))}", "categories": [],
         "receivedDateTime": ts, "sentDateTime": ts, "hasAttachments": bool(h & 8),
         "internetMessageId": f"<{h:016x}@{t.primary_domain.replace('.', '')}.prod.outlook.com>",
         "subject": SUBJECTS[h % len(SUBJECTS)], "bodyPreview": "", "importance": "normal",
         "parentFolderId": folder.id, "conversationId": ids.outlook_id(u.id, "conv", str(h % 97)),
         "isDeliveryReceiptRequested": False, "isReadReceiptRequested": False, "isRead": True, "isDraft": False,
         "webLink": f"https://outlook.office365.com/owa/?ItemID={mid}&exvsurl=1&viewmodel=ReadMessageItem",
         "inferenceClassification": "focused", "body": {"contentType": "html", "content": "<html><body></body></html>"},
         "sender": {"emailAddress": {"name": u.displayName, "address": u.mail}},
         "from": {"emailAddress": {"name": u.displayName, "address": u.mail}},
         "toRecipients": to, "ccRecipients": [], "bccRecipients": [], "replyTo": [],
         "flag": {"flagStatus": "notFlagged"}}
    if sel:
        d = {k2: v for k2, v in d.items() if k2 in sel or k2 in ("id", "@odata.etag")}
    return d


def list_messages(t: Tenant, req: Req, u: User, folder: Folder | None, count_only: bool = False):
    need(req, "GET users/{id}/messages")
    require_mailbox(u)
    flt = req.query.get("$filter")
    order = req.query.get("$orderby")
    lo = hi = None
    if flt:
        for part in re.split(r"\s+and\s+", flt.strip(), flags=re.I):
            m = re.match(r"^\s*(sentDateTime|receivedDateTime)\s+(ge|gt|le|lt)\s+(\S+)\s*$", part, re.I)
            if not m:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
            try:
                v = _dt(m.group(3))
            except ValueError as e:
                raise GraphError(400, "BadRequest", f"The DateTimeOffset text '{m.group(3)}' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range.") from e
            op = m.group(2).lower()
            if op in ("ge", "gt"):
                lo = (v, op)
            else:
                hi = (v, op)
    # only timestamps >= the filter's lower bound are looked at (sent_times: same positions for those)
    since = lo[0] if lo and not hi and (not order or order.split()[0].lower() == "sentdatetime") else None
    times = t.sent_times(u, since) if folder is not None and folder.well_known == "sentitems" else []
    if order:
        oprop = order.split()[0]
        if flt and not flt.strip().lower().startswith(oprop.lower()):
            raise GraphError(400, "InefficientFilter", "The restriction or sort order is too complex for this operation.")
    sel_raw = parse_select(req, None, "message")
    if sel_raw:
        bad = [p for p in sel_raw if p not in MSG_PROPS]
        if bad:
            raise GraphError(400, "RequestBroker--ParseUri", f"Could not find a property named '{bad[0]}' on type 'microsoft.graph.message'.")
    idx = []
    for k, w in enumerate(times):
        if lo and (w < lo[0] or (lo[1] == "gt" and w == lo[0])):
            continue
        if hi and (w > hi[0] or (hi[1] == "lt" and w == hi[0])):
            continue
        idx.append(k)
    if order and order.lower().endswith(" asc") or (order and " " not in order.strip()):
        idx.reverse()
    if count_only:
        return 200, str(len(idx))
    top = page_size(req, 10, 1000, strict=False)
    start = read_skiptoken(req) if "$skiptoken" in req.query else int(req.query.get("$skip", "0") or 0)
    chunk = idx[start:start + top]
    items = [message_json(t, u, k, times[k], folder, sel_raw) for k in chunk]
    nxt = start + top if start + top < len(idx) else None
    want_count = req.query.get("$count", "").lower() == "true"
    ctx = f"users('{u.id}')/mailFolders('{folder.id if folder else ''}')/messages"
    if sel_raw:
        ctx += f"({','.join(sel_raw)})"
    return 200, collection(req, ctx, items, nxt, len(idx) if want_count and start == 0 else None)


# ---------------------------------------------------------------------------------------------------- auth methods
def list_methods(t: Tenant, req: Req, u: User, coll: str | None):
    need(req, "GET users/{id}/authentication")
    ms = [t.method_view(m) for m in t.methods(u)
          if coll is None or TYPE_TO_COLLECTION.get(m["@odata.type"]) == coll]
    if coll is not None:
        ms = [{k: v for k, v in m.items() if k != "@odata.type"} | {"@odata.type": m["@odata.type"]} for m in ms]
    ctx = f"users('{u.id}')/authentication/{coll or 'methods'}"
    return 200, collection(req, ctx, ms, None)


def find_method(t: Tenant, u: User, coll: str | None, mid: str) -> dict:
    for m in t.methods(u):
        if m["id"] == mid and (coll is None or TYPE_TO_COLLECTION.get(m["@odata.type"]) == coll):
            return m
    raise GraphError(404, "itemNotFound", f"The requested authentication method '{mid}' was not found.")


def get_method(t: Tenant, req: Req, u: User, coll: str | None, mid: str):
    need(req, "GET users/{id}/authentication")
    m = t.method_view(find_method(t, u, coll, mid))
    return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#users('{u.id}')/authentication/{coll or 'methods'}/$entity", **m}


def delete_method(t: Tenant, req: Req, u: User, coll: str, mid: str):
    need(req, "DELETE users/{id}/authentication")
    if coll == "passwordMethods":
        raise GraphError(405, "Request_BadRequest", "The password method cannot be deleted.")
    m = find_method(t, u, coll, mid)
    others = [x for x in t.methods(u) if x["id"] not in (mid, PASSWORD_METHOD_ID)]
    if coll == "phoneMethods" and m.get("phoneType") == "mobile" and any(x.get("phoneType") == "alternateMobile" for x in others):
        raise GraphError(400, "invalidRequest", "Cannot delete the mobile phone method while an alternate mobile phone method exists.")
    if u._default_method == mid and others:
        raise GraphError(400, "invalidRequest",
                         "Cannot delete default method with other methods configured. Please change default method before deletion.")
    t.methods(u).remove(m)
    t.mark_dirty(u)
    t.registration_stamp(u)
    if u._default_method == mid:
        u._default_method = None
    t.log("DELETE", f"/users/{u.id}/authentication/{coll}/{mid}", u, detail={"type": m["@odata.type"]})
    return 204, None


def registration_details(t: Tenant, req: Req):
    need(req, "GET reports/authenticationMethods")
    if t.license not in ("P1", "P2"):
        raise GraphError(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                         "Neither tenant is B2C or tenant doesn't have premium license")
    top = page_size(req, 1000, 1000, strict=False)
    start = read_skiptoken(req)
    clauses = parse_filter(req.query["$filter"], {"isMfaRegistered", "isMfaCapable", "isSsprEnabled", "isSsprRegistered",
                                                  "userPrincipalName", "userDisplayName", "isAdmin", "userType"},
                           "userRegistrationDetails", False) if "$filter" in req.query else []
    admins = {a["principalId"] for a in t.role_assignments.values()}
    items = []
    i = start
    while i < t.user_count and len(items) < top:
        u = t.user_at(i)
        i += 1
        meths = u._methods if u._methods is not None else _ephemeral_methods(t, u)
        reg = sorted({REGISTRATION_NAMES[TYPE_TO_COLLECTION[m["@odata.type"]]] for m in meths
                      if TYPE_TO_COLLECTION.get(m["@odata.type"]) in REGISTRATION_NAMES
                      and TYPE_TO_COLLECTION[m["@odata.type"]] != "temporaryAccessPassMethods"})
        mfa = bool(reg)
        d = {"id": u.id, "userPrincipalName": u.userPrincipalName, "userDisplayName": u.displayName,
             "userType": "guest" if u.userType == "Guest" else "member", "isAdmin": u.id in admins,
             "isSsprRegistered": mfa, "isSsprEnabled": True, "isSsprCapable": mfa, "isMfaRegistered": mfa,
             "isMfaCapable": mfa and u.accountEnabled, "isPasswordlessCapable": "fido2SecurityKey" in reg,
             "methodsRegistered": reg, "isSystemPreferredAuthenticationMethodEnabled": True,
             "systemPreferredAuthenticationMethods": ["push"] if "microsoftAuthenticatorPush" in reg else (["sms"] if reg else []),
             "userPreferredMethodForSecondaryAuthentication": "push" if "microsoftAuthenticatorPush" in reg else ("sms" if reg else "none"),
             # the record changes when the user's methods do (a new phone of a type already registered included)
             "lastUpdatedDateTime": iso_precise(max(t.generated_at, u.methods_updated_at or t.generated_at))}
        if match_obj(d, clauses):
            items.append(d)
    nxt = i if i < t.user_count else None
    return 200, collection(req, "reports/authenticationMethods/userRegistrationDetails", items, nxt)


def _ephemeral_methods(t: Tenant, u: User) -> list[dict]:
    saved = u._methods
    u._methods = []
    t._generate_background_methods(u)
    out, u._methods = u._methods, saved
    return out


# ---------------------------------------------------------------------------------------------------- roles
ROLE_DESCRIPTIONS = {name: f"Built-in role: {name}." for name in ROLE_TEMPLATES}


def role_definition_json(name: str, rid: str) -> dict:
    return {"id": rid, "description": ROLE_DESCRIPTIONS.get(name, name), "displayName": name, "isBuiltIn": True,
            "isEnabled": True, "resourceScopes": ["/"], "templateId": rid, "version": "1",
            "rolePermissions": [{"allowedResourceActions": ["microsoft.directory/users/standard/read"], "condition": None}],
            "inheritsPermissionsFrom": []}


def role_definitions(t: Tenant, req: Req, rid: str | None = None):
    need(req, "GET roleManagement")
    defs = [role_definition_json(n, i) for n, i in ROLE_TEMPLATES.items()]
    if rid is not None:
        d = next((x for x in defs if x["id"] == rid), None)
        if d is None:
            raise not_found_dir(rid)
        return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#roleManagement/directory/roleDefinitions/$entity", **d}
    if "$filter" in req.query:
        cl = parse_filter(req.query["$filter"], {"templateId", "displayName", "isBuiltIn", "id"}, "unifiedRoleDefinition", False)
        defs = [d for d in defs if match_obj(d, cl)]
    return 200, collection(req, "roleManagement/directory/roleDefinitions", defs, None)


def principal_json(t: Tenant, pid: str) -> dict | None:
    g = t.groups.get(pid)
    if g is not None:  # a role-assignable group holding a role: $expand=principal gives the group entity
        return group_json(g, None)
    sp = t.service_principals.get(pid)
    if sp is not None:  # a service principal holding a role: $expand=principal gives the servicePrincipal entity
        return {"@odata.type": "#microsoft.graph.servicePrincipal", "id": sp["id"], "appId": sp["appId"],
                "displayName": sp["displayName"], "appDisplayName": sp.get("appDisplayName"),
                "appOwnerOrganizationId": sp.get("appOwnerOrganizationId"),
                "servicePrincipalType": sp.get("servicePrincipalType", "Application"),
                "accountEnabled": sp.get("accountEnabled", True)}
    idx = ids.guid_index(t.seed, 1, pid)
    if idx is None or idx >= t.user_count:
        return None
    u = t.user_at(idx)
    return {"@odata.type": "#microsoft.graph.user", "id": u.id, "displayName": u.displayName,
            "userPrincipalName": u.userPrincipalName, "userType": u.userType, "accountEnabled": u.accountEnabled,
            "mail": u.mail}


def assignment_json(t: Tenant, a: dict, expand: set[str]) -> dict:
    d = {"id": a["id"], "principalId": a["principalId"], "resourceScope": a["directoryScopeId"],
         "directoryScopeId": a["directoryScopeId"], "roleDefinitionId": a["roleDefinitionId"],
         "appScopeId": None, "principalOrganizationId": t.tenant_id, "condition": None}
    if "principal" in expand:
        d["principal"] = principal_json(t, a["principalId"])
    if "roleDefinition" in expand:
        name = next((n for n, i in ROLE_TEMPLATES.items() if i == a["roleDefinitionId"]), a["roleDefinitionId"])
        d["roleDefinition"] = role_definition_json(name, a["roleDefinitionId"])
    return d


def _expand(req: Req, allowed: set[str]) -> set[str]:
    raw = req.query.get("$expand")
    if not raw:
        return set()
    out = {x.strip().split("(")[0] for x in raw.split(",") if x.strip()}
    bad = out - allowed
    if bad:
        raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{sorted(bad)[0]}' on type 'microsoft.graph.unifiedRoleAssignment'.")
    return out


def role_assignments(t: Tenant, req: Req):
    need(req, "GET roleManagement")
    if "$filter" not in req.query:
        # the documented contract requires a principalId or roleDefinitionId filter (graph-api.md §5.1)
        raise GraphError(400, "Request_UnsupportedQuery",
                         "A filter on principalId or roleDefinitionId is required to list role assignments.")
    cl = parse_filter(req.query["$filter"], {"principalId", "roleDefinitionId", "directoryScopeId", "id"},
                      "unifiedRoleAssignment", False)
    if not any(p in ("principalId", "roleDefinitionId") for p, _o, _v in cl):
        raise GraphError(400, "Request_UnsupportedQuery",
                         "A filter on principalId or roleDefinitionId is required to list role assignments.")
    exp = _expand(req, {"principal", "roleDefinition"})
    items = [assignment_json(t, a, exp) for a in t.role_assignments.values() if match_obj(a, cl)]
    ctx = "roleManagement/directory/roleAssignments" + ("(principal())" if "principal" in exp else "")
    return 200, collection(req, ctx, items, None)


def role_assignment_item(t: Tenant, req: Req, aid: str):
    a = t.role_assignments.get(aid)
    if req.method == "DELETE":
        need(req, "DELETE roleManagement")
        if a is None:
            raise not_found_dir(aid)
        del t.role_assignments[aid]
        t.log("DELETE", f"/roleManagement/directory/roleAssignments/{aid}", _upn_of(t, a["principalId"]),
              detail={"roleDefinitionId": a["roleDefinitionId"]})
        return 204, None
    need(req, "GET roleManagement")
    if a is None:
        raise not_found_dir(aid)
    exp = _expand(req, {"principal", "roleDefinition"})
    return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
                 **assignment_json(t, a, exp)}


GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CONFLICT = "A conflicting object with one or more of the specified property values is present in the directory."


def _create_body(req: Req, type_name: str, odata_type: str, allowed: set[str]) -> dict:
    """A create body: a JSON object, the right @odata.type if one is given, only properties the type has."""
    body = req.json_body
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    given_type = body.get("@odata.type")
    if given_type is not None and str(given_type).lstrip("#").lower() != odata_type.lower():
        raise GraphError(400, "BadRequest", f"A type named '{str(given_type).lstrip('#')}' could not be resolved "
                                            f"by the model. When a model is available, each type name must resolve "
                                            f"to a valid type.")
    body = {k: v for k, v in body.items() if not k.startswith("@")}
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise GraphError(400, "BadRequest", f"The property '{unknown[0]}' does not exist on type '{type_name}'. "
                                            "Make sure to only use property names that are defined by the type or mark the type as "
                                            "open type.")
    return body


def _directory_user(t: Tenant, pid: Any) -> User:
    """A principal referenced by object id (directory references never take a UPN)."""
    if not isinstance(pid, str) or not GUID_RE.match(pid):
        raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{pid}'.")
    u = t.find_user(pid)
    if u is None or u.id.lower() != pid.lower():
        raise not_found_dir(pid)
    return u


def create_role_assignment(t: Tenant, req: Req):
    """POST /roleManagement/directory/roleAssignments -> 201 + the unifiedRoleAssignment (graph-api.md §5.1)."""
    need(req, "POST roleManagement")
    body = _create_body(req, "microsoft.graph.unifiedRoleAssignment", "microsoft.graph.unifiedRoleAssignment",
                        {"roleDefinitionId", "principalId", "directoryScopeId", "appScopeId", "condition"})
    rd, pid = body.get("roleDefinitionId"), body.get("principalId")
    for name, value in (("roleDefinitionId", rd), ("principalId", pid)):
        if not isinstance(value, str) or not value:
            raise GraphError(400, "Request_BadRequest", f"Required property '{name}' is missing or empty.")
    scope, app_scope = body.get("directoryScopeId"), body.get("appScopeId")
    if not scope and not app_scope:
        raise GraphError(400, "Request_BadRequest", "Either directoryScopeId or appScopeId must be specified.")
    if app_scope:
        # Entra directory roles take a directory scope; app scopes belong to other RBAC providers.
        raise GraphError(400, "Request_BadRequest", "appScopeId is not supported for directory role assignments.")
    if not isinstance(scope, str) or not scope.startswith("/"):
        raise GraphError(400, "Request_BadRequest", f"Invalid value specified for property 'directoryScopeId': '{scope}'.")
    # roleDefinitionId takes the definition id or a built-in role's templateId (the same value for built-ins)
    rd_l = rd.lower()
    if rd_l not in {i.lower() for i in ROLE_TEMPLATES.values()}:
        raise not_found_dir(rd)
    u = _directory_user(t, pid)
    for a in t.role_assignments.values():
        if a["roleDefinitionId"].lower() == rd_l and a["principalId"] == u.id and a["directoryScopeId"] == scope:
            raise GraphError(400, "Request_BadRequest", CONFLICT)
    aid = ids.role_assignment_id(rd_l, u.id, scope)
    a = {"id": aid, "principalId": u.id, "roleDefinitionId": rd_l, "directoryScopeId": scope, "_created": t.now()}
    t.role_assignments[aid] = a
    t.log("POST", "/roleManagement/directory/roleAssignments", u,
          detail={"id": aid, "roleDefinitionId": rd_l, "directoryScopeId": scope})
    return 201, {"@odata.context": f"{req.base}/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
                 **assignment_json(t, a, set())}


def _upn_of(t: Tenant, pid: str) -> str:
    p = principal_json(t, pid)
    return (p.get("userPrincipalName") or p.get("displayName") or pid) if p else pid


def _needs_p2(t: Tenant) -> None:
    # PIM needs Entra ID P2 / Governance; without it the schedule APIs answer 400 AadPremiumLicenseRequired.
    if t.license != "P2":
        raise GraphError(400, "AadPremiumLicenseRequired",
                         "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.")


def eligibility(t: Tenant, req: Req):
    need(req, "GET roleManagement")
    _needs_p2(t)
    items = [{k: v for k, v in e.items()} for e in t.eligibility]
    if "$filter" in req.query:
        cl = parse_filter(req.query["$filter"], {"principalId", "roleDefinitionId", "directoryScopeId", "status"},
                          "unifiedRoleEligibilitySchedule", False)
        items = [e for e in items if match_obj(e, cl)]
    exp = _expand(req, {"principal", "roleDefinition"})
    for e in items:
        if "principal" in exp:
            e["principal"] = principal_json(t, e["principalId"])
        if "roleDefinition" in exp:
            name = next((n for n, i in ROLE_TEMPLATES.items() if i == e["roleDefinitionId"]), e["roleDefinitionId"])
            e["roleDefinition"] = role_definition_json(name, e["roleDefinitionId"])
    return 200, collection(req, "roleManagement/directory/roleEligibilitySchedules", items, None)


ELIGIBILITY_REQUEST_FIELDS = {"action", "principalId", "roleDefinitionId", "directoryScopeId", "appScopeId",
                              "justification", "scheduleInfo", "ticketInfo", "isValidationOnly", "targetScheduleId"}


def create_eligibility_request(t: Tenant, req: Req):
    """POST /roleManagement/directory/roleEligibilityScheduleRequests (graph-api.md §5.2): adminRemove revokes an
    eligibility (201, status "Revoked"), adminAssign creates one (201, status "Provisioned"). Other actions (self
    activation, extend, renew) need a signed-in user and are refused here."""
    need(req, "POST roleEligibilityScheduleRequests")
    _needs_p2(t)
    body = _create_body(req, "microsoft.graph.unifiedRoleEligibilityScheduleRequest",
                        "microsoft.graph.unifiedRoleEligibilityScheduleRequest", ELIGIBILITY_REQUEST_FIELDS)
    action, rd, pid = body.get("action"), body.get("roleDefinitionId"), body.get("principalId")
    for name, value in (("action", action), ("roleDefinitionId", rd), ("principalId", pid)):
        if not isinstance(value, str) or not value:
            raise GraphError(400, "Request_BadRequest", f"Required property '{name}' is missing or empty.")
    scope = body.get("directoryScopeId")
    if not isinstance(scope, str) or not scope.startswith("/"):
        raise GraphError(400, "Request_BadRequest", "Either directoryScopeId or appScopeId must be specified.")
    if action not in ("adminRemove", "adminAssign"):
        raise GraphError(400, "InvalidScheduleRequest", f"The action '{action}' is not supported for app-only callers.")
    u = _directory_user(t, pid)
    rd_l = rd.lower()
    if rd_l not in {i.lower() for i in ROLE_TEMPLATES.values()}:
        raise not_found_dir(rd)
    match = [e for e in t.eligibility if e["principalId"] == u.id and e["roleDefinitionId"].lower() == rd_l
             and e["directoryScopeId"] == scope]
    now = iso_precise(t.now())
    out = {"@odata.context": f"{req.base}/v1.0/$metadata#roleManagement/directory/roleEligibilityScheduleRequests/$entity",
           "id": ids.random_guid(t.seed, len(t.mutations), 0xE1), "createdDateTime": now, "approvalId": None,
           "customData": None, "action": action, "principalId": u.id, "roleDefinitionId": rd_l, "directoryScopeId": scope,
           "appScopeId": None, "isValidationOnly": False, "justification": body.get("justification"),
           "createdBy": {"application": {"displayName": None, "id": None}, "device": None, "user": None},
           "ticketInfo": {"ticketNumber": None, "ticketSystem": None}}
    if action == "adminRemove":
        if not match:
            raise GraphError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
        t.eligibility = [e for e in t.eligibility if e not in match]
        t.log("POST", "/roleManagement/directory/roleEligibilityScheduleRequests", u,
              detail={"action": action, "roleDefinitionId": rd_l, "directoryScopeId": scope})
        return 201, {**out, "status": "Revoked", "completedDateTime": None, "targetScheduleId": None,
                     "scheduleInfo": None}
    if match:
        raise GraphError(400, "RoleAssignmentExists", "The Role assignment already exists.")
    info = body.get("scheduleInfo") if isinstance(body.get("scheduleInfo"), dict) else {}
    exp = info.get("expiration") if isinstance(info.get("expiration"), dict) else {}
    end = exp.get("endDateTime") if exp.get("type") == "afterDateTime" else None
    if exp.get("type") == "afterDateTime" and not end:
        raise GraphError(400, "InvalidScheduleRequest", "The expiration endDateTime is required for afterDateTime.")
    e = t.add_eligible_role(u, rd_l, start=t.now(), end=_parse_end(end) if end else None, scope=scope, log=False)
    t.log("POST", "/roleManagement/directory/roleEligibilityScheduleRequests", u,
          detail={"action": action, "roleDefinitionId": rd_l, "directoryScopeId": scope})
    return 201, {**out, "status": "Provisioned", "completedDateTime": now, "targetScheduleId": e["id"],
                 "scheduleInfo": e["scheduleInfo"]}


def _parse_end(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise GraphError(400, "InvalidScheduleRequest", f"Invalid endDateTime '{value}'.") from None


def _directory_role_id(t: Tenant, template: str) -> str:
    return ids.random_guid(t.seed, int(template.replace("-", "")[:12], 16))


def directory_roles(t: Tenant, req: Req):
    need(req, "GET directoryRoles")
    active = {a["roleDefinitionId"] for a in t.role_assignments.values()}
    names = {i: n for n, i in ROLE_TEMPLATES.items()}
    items = [{"id": _directory_role_id(t, tid), "deletedDateTime": None, "description": ROLE_DESCRIPTIONS.get(names.get(tid, ""), ""),
              "displayName": names.get(tid, tid), "roleTemplateId": tid} for tid in sorted(active)]
    return 200, collection(req, "directoryRoles", items, None)  # not pageable


def _template_for_directory_role(t: Tenant, key: str) -> str | None:
    m = re.match(r"^roleTemplateId='([0-9a-f-]+)'$", key)
    if m:
        return m.group(1)
    for tid in ROLE_TEMPLATES.values():
        if _directory_role_id(t, tid) == key:
            return tid
    return None


def directory_role_members(t: Tenant, req: Req, key: str):
    need(req, "GET directoryRoles")
    tid = _template_for_directory_role(t, key)
    if tid is None:
        raise not_found_dir(key)
    items = [principal_json(t, a["principalId"]) for a in t.role_assignments.values() if a["roleDefinitionId"] == tid]
    return 200, collection(req, "directoryObjects", [i for i in items if i], None)


def remove_directory_role_member(t: Tenant, req: Req, key: str, member: str):
    need(req, "DELETE directoryRoles")
    tid = _template_for_directory_role(t, key)
    if tid is None:
        raise not_found_dir(key)
    for aid, a in list(t.role_assignments.items()):
        if a["roleDefinitionId"] == tid and a["principalId"] == member:
            del t.role_assignments[aid]
            t.log("DELETE", f"/directoryRoles/{key}/members/{member}/$ref", _upn_of(t, member), detail={"roleTemplateId": tid})
            return 204, None
    raise not_found_dir(member)


# ---------------------------------------------------------------------------------------------------- groups
GROUP_PROPS = ("id", "deletedDateTime", "classification", "createdDateTime", "description", "displayName",
               "groupTypes", "isAssignableToRole", "mail", "mailEnabled", "mailNickname", "membershipRule",
               "onPremisesSyncEnabled", "securityEnabled", "visibility")
GROUP_READ_KEY = "GET groups"
CASTS = {"microsoft.graph.user": "#microsoft.graph.user", "microsoft.graph.group": "#microsoft.graph.group",
         "microsoft.graph.directoryRole": "#microsoft.graph.directoryRole",
         "microsoft.graph.servicePrincipal": "#microsoft.graph.servicePrincipal",
         "microsoft.graph.device": "#microsoft.graph.device", "microsoft.graph.orgContact": "#microsoft.graph.orgContact"}
ALREADY_MEMBER = "One or more added object references already exist for the following modified properties: 'members'."
NO_NESTING = "Nesting is currently not supported for groups that can be assigned to a role."


def group_json(g: dict, sel: list[str] | None, limited: bool = False) -> dict:
    """The group entity (with its @odata.type, as in directoryObject collections). ``limited``: an app that may not
    read groups sees only the type and id, every other property null (Graph's "limited information returned for
    inaccessible member objects")."""
    props = sel if sel is not None else list(GROUP_PROPS)
    out: dict[str, Any] = {"@odata.type": "#microsoft.graph.group"}
    for p in props:
        out[p] = g.get(p) if (not limited or p == "id") else None
    out["id"] = g["id"]
    return out


def _group_or_404(t: Tenant, key: str) -> dict:
    g = t.groups.get(key) or next((x for x in t.groups.values() if x["id"].lower() == key.lower()), None)
    if g is None:
        raise not_found_dir(key)
    return g


def _directory_object(t: Tenant, req: Req, oid: str, user_sel: list[str] | None, group_sel: list[str] | None,
                      limited_groups: bool = False) -> dict | None:
    if oid in t.groups:
        return group_json(t.groups[oid], group_sel, limited_groups)
    u = t.find_user(oid)
    if u is None or u.id != oid:
        return None
    return {"@odata.type": "#microsoft.graph.user", **user_json(u, t, user_sel or USER_DEFAULT)}


def _cast(segment: str | None) -> str | None:
    if segment is None:
        return None
    # Graph takes the namespace alias too: the SDK's cast builders send "graph.group", not "microsoft.graph.group".
    odata_type = CASTS.get("microsoft." + segment if segment.startswith("graph.") else segment)
    if odata_type is None:
        raise GraphError(400, "Request_UnsupportedQuery", f"The type cast '{segment}' is not supported for this "
                                                          "relationship.")
    return odata_type


def _directory_page(t: Tenant, req: Req, context: str, objects: list[dict]):
    size = page_size(req, 100, 999)
    start = read_skiptoken(req)
    chunk = objects[start:start + size]
    nxt = start + size if start + size < len(objects) else None
    return 200, collection(req, context, chunk, nxt)


def _select_for(req: Req, odata_type: str | None) -> tuple[list[str] | None, list[str] | None]:
    """($select for users, $select for groups): a property a cast's type does not have is a 400, as in Graph."""
    raw = req.query.get("$select")
    if raw is None:
        return None, None
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    if odata_type == "#microsoft.graph.user":
        return parse_select(req, USER_PROPS, "user"), None
    if odata_type == "#microsoft.graph.group":
        bad = [p for p in wanted if p not in GROUP_PROPS]
        if bad:
            raise GraphError(400, "Request_BadRequest",
                             f"Could not find a property named '{bad[0]}' on type 'microsoft.graph.group'.")
        return None, wanted
    # directoryObject: properties of either type are accepted; each object shows the ones it has
    users = [_LOWER_USER_PROPS[p.lower()] for p in wanted if p.lower() in _LOWER_USER_PROPS] or ["id"]
    groups = [p for p in wanted if p in GROUP_PROPS] or ["id"]
    return users, groups


def get_group(t: Tenant, req: Req, key: str):
    need(req, GROUP_READ_KEY)
    g = _group_or_404(t, key)
    raw = req.query.get("$select")
    sel = None
    if raw is not None:
        sel = [p.strip() for p in raw.split(",") if p.strip()]
        bad = [p for p in sel if p not in GROUP_PROPS]
        if bad:
            raise GraphError(400, "Request_BadRequest",
                             f"Could not find a property named '{bad[0]}' on type 'microsoft.graph.group'.")
    body = group_json(g, sel)
    body.pop("@odata.type")
    return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#groups/$entity", **body}


def group_members(t: Tenant, req: Req, key: str, transitive: bool, cast: str | None):
    """GET /groups/{id}/members | transitiveMembers [/microsoft.graph.user | .group] (directoryObject collection)."""
    need(req, GROUP_READ_KEY)
    g = _group_or_404(t, key)
    odata_type = _cast(cast)
    user_sel, group_sel = _select_for(req, odata_type)
    ids_ = t.transitive_members(g["id"]) if transitive else list(t.group_members.get(g["id"], []))
    objects = [o for o in (_directory_object(t, req, i, user_sel, group_sel) for i in ids_) if o is not None]
    if odata_type is not None:
        objects = [o for o in objects if o["@odata.type"] == odata_type]
    context = {"#microsoft.graph.user": "users", "#microsoft.graph.group": "groups"}.get(odata_type or "",
                                                                                          "directoryObjects")
    return _directory_page(t, req, context, objects)


def _role_objects(t: Tenant, principal_ids: set[str]) -> list[dict]:
    """directoryRole objects for the tenant-wide active roles held by these principals (memberOf lists them)."""
    names = {i: n for n, i in ROLE_TEMPLATES.items()}
    tids = sorted({a["roleDefinitionId"] for a in t.role_assignments.values()
                   if a["principalId"] in principal_ids and a["directoryScopeId"] == "/"})
    return [{"@odata.type": "#microsoft.graph.directoryRole", "id": _directory_role_id(t, tid), "deletedDateTime": None,
             "description": ROLE_DESCRIPTIONS.get(names.get(tid, ""), ""), "displayName": names.get(tid, tid),
             "roleTemplateId": tid} for tid in tids]


def user_member_of(t: Tenant, req: Req, u: User, transitive: bool, cast: str | None):
    """GET /users/{id}/memberOf | transitiveMemberOf [/microsoft.graph.group]: groups and directory roles."""
    need(req, "GET users/{id}/transitiveMemberOf" if transitive else "GET users/{id}/memberOf")
    odata_type = _cast(cast)
    _user_sel, group_sel = _select_for(req, odata_type)
    limited = req.roles.isdisjoint(REQUIRED[GROUP_READ_KEY][1])  # may list memberships but not read groups: type and id only
    gids = t.transitive_member_of(u.id) if transitive else t.member_of(u.id)
    objects: list[dict] = [group_json(t.groups[g], group_sel, limited) for g in gids]
    objects += _role_objects(t, {u.id, *gids} if transitive else {u.id})
    if odata_type is not None:
        objects = [o for o in objects if o["@odata.type"] == odata_type]
    context = "groups" if odata_type == "#microsoft.graph.group" else "directoryObjects"
    return _directory_page(t, req, context, objects)


def _member_permissions(req: Req, g: dict, method: str) -> None:
    need(req, f"{method} groups/{{id}}/members")
    if g["isAssignableToRole"]:
        need(req, "groups/{id}/members#roleAssignable")


def add_group_member(t: Tenant, req: Req, key: str):
    """POST /groups/{id}/members/$ref {"@odata.id": ".../directoryObjects/{id}"} -> 204 (group-post-members)."""
    need(req, "POST groups/{id}/members")
    g = _group_or_404(t, key)
    _member_permissions(req, g, "POST")
    body = req.json_body
    ref = body.get("@odata.id") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not ref:
        raise GraphError(400, "Request_BadRequest", "The request body must contain an '@odata.id' reference.")
    m = re.search(r"/(?:directoryObjects|users|groups)/([^/?#]+)$", ref)
    if m is None or not GUID_RE.match(m.group(1)):
        raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{ref}'.")
    mid = m.group(1).lower()
    if mid in t.groups:
        if g["isAssignableToRole"]:
            raise GraphError(400, "Request_BadRequest", NO_NESTING)
        member: Any = t.groups[mid]
    else:
        member = t.find_user(mid)
        if member is None or member.id.lower() != mid:
            raise not_found_dir(mid)
    member_id = member["id"] if isinstance(member, dict) else member.id
    if member_id in t.group_members[g["id"]]:
        raise GraphError(400, "Request_BadRequest", ALREADY_MEMBER)
    t.add_group_member(g, member)
    return 204, None


def remove_group_member(t: Tenant, req: Req, key: str, member: str):
    """DELETE /groups/{id}/members/{memberId}/$ref -> 204; 404 when it is not a direct member (group-delete-members)."""
    need(req, "DELETE groups/{id}/members")
    g = _group_or_404(t, key)
    _member_permissions(req, g, "DELETE")
    mid = next((x for x in t.group_members[g["id"]] if x.lower() == member.lower()), None)
    if mid is None:
        raise not_found_dir(member)
    t.remove_group_member(g, t.groups[mid] if mid in t.groups else mid)
    return 204, None


# ---------------------------------------------------------------------------------------------------- grants / apps
def list_grants(t: Tenant, req: Req, u: User | None = None):
    need(req, "GET oauth2PermissionGrants")
    cl = parse_filter(req.query["$filter"], {"clientId", "consentType", "principalId", "resourceId"},
                      "oAuth2PermissionGrant", False) if "$filter" in req.query else []
    top = page_size(req, 100, 999, strict=False)
    if u is not None:
        items = [g for g in t.grants_for_user(u) if match_obj(g, cl)]
        return 200, collection(req, f"users('{u.id}')/oauth2PermissionGrants", items, None)
    start = read_skiptoken(req)
    explicit = [g for g in t.grants.values() if match_obj(g, cl)]
    items: list[dict] = []
    pos = start
    E = len(explicit)
    pid_filter = next((v for p, o, v in cl if p == "principalId" and o == "eq"), None)
    if pid_filter:
        idx = ids.guid_index(t.seed, 1, pid_filter)
        extra = [] if idx is None else [g for g in [t.bg_grant(idx)] if g and match_obj(g, cl)]
        allg = explicit + extra
        return 200, collection(req, "oauth2PermissionGrants", allg[start:start + top],
                               start + top if start + top < len(allg) else None)
    while len(items) < top and pos < E:
        items.append(explicit[pos])
        pos += 1
    ui = max(pos - E, 0) + len(t.explicit)
    while len(items) < top and ui < t.user_count:
        g = t.bg_grant(ui)
        ui += 1
        if g and match_obj(g, cl):
            items.append(g)
    pos = E + ui - len(t.explicit) if ui > len(t.explicit) or pos >= E else pos
    nxt = pos if ui < t.user_count else None
    return 200, collection(req, "oauth2PermissionGrants", items, nxt)


def grant_item(t: Tenant, req: Req, gid: str):
    g = t.find_grant(gid)
    if req.method == "DELETE":
        need(req, "DELETE oauth2PermissionGrants")
        if g is None:
            raise not_found_dir(gid)
        t.delete_grant(gid)
        target = _upn_of(t, g["principalId"]) if g["principalId"] else None
        t.log("DELETE", f"/oauth2PermissionGrants/{gid}", target, detail={"clientId": g["clientId"], "scope": g["scope"]})
        return 204, None
    need(req, "GET oauth2PermissionGrants")
    if g is None:
        raise not_found_dir(gid)
    return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#oauth2PermissionGrants/$entity", **g}


def create_grant(t: Tenant, req: Req):
    """POST /oauth2PermissionGrants -> 201 + the oAuth2PermissionGrant (graph-api.md §6.1).

    The id is derived from clientId, resourceId and (for Principal grants) principalId, as Graph's own ids are, so a
    grant deleted and created again with the same key comes back under the same id. A second grant with the same key
    is a 409 Request_MultipleObjectsWithSameKeyValue.
    """
    need(req, "POST oauth2PermissionGrants")
    body = _create_body(req, "microsoft.graph.oAuth2PermissionGrant", "microsoft.graph.oAuth2PermissionGrant",
                        {"clientId", "consentType", "principalId", "resourceId", "scope"})
    for name in ("clientId", "consentType", "resourceId"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise GraphError(400, "Request_BadRequest", f"Required property '{name}' is missing or empty.")
    ct = body["consentType"]
    if ct not in ("AllPrincipals", "Principal"):
        raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'consentType' of resource "
                                                    "'OAuth2PermissionGrant'.")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise GraphError(400, "Request_BadRequest", "Invalid value specified for property 'scope' of resource "
                                                    "'OAuth2PermissionGrant'.")
    for name in ("clientId", "resourceId"):
        v = body[name]
        if not GUID_RE.match(v):
            raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{v}'.")
        if v.lower() not in {k.lower() for k in t.service_principals}:
            raise not_found_dir(v)
    pid = body.get("principalId")
    if ct == "Principal":
        pid = _directory_user(t, pid).id
    elif pid:
        raise GraphError(400, "Request_BadRequest", "principalId must be null when consentType is AllPrincipals.")
    else:
        pid = None
    client = next(k for k in t.service_principals if k.lower() == body["clientId"].lower())
    resource = next(k for k in t.service_principals if k.lower() == body["resourceId"].lower())
    gid = ids.grant_id(client, resource, pid)
    if t.find_grant(gid) is not None:
        raise GraphError(409, "Request_MultipleObjectsWithSameKeyValue", "Permission entry already exists.")
    g = {"id": gid, "clientId": client, "consentType": ct, "principalId": pid, "resourceId": resource,
         "scope": scope or ""}
    t.grants[gid] = g
    t.log("POST", "/oauth2PermissionGrants", _upn_of(t, pid) if pid else None,
          detail={"id": gid, "clientId": client, "resourceId": resource, "consentType": ct, "scope": g["scope"]})
    return 201, {"@odata.context": f"{req.base}/v1.0/$metadata#oauth2PermissionGrants/$entity", **g}


SP_PUBLIC = ("id", "appId", "displayName", "accountEnabled", "appOwnerOrganizationId", "appDisplayName",
             "servicePrincipalType", "signInAudience", "tags", "homepage", "replyUrls", "verifiedPublisher", "appRoles",
             "oauth2PermissionScopes", "servicePrincipalNames", "appRoleAssignmentRequired", "description", "notes")


def sp_json(sp: dict, sel: list[str] | None) -> dict:
    d = {k: sp.get(k) for k in SP_PUBLIC}
    d["deletedDateTime"] = None
    d["servicePrincipalNames"] = [sp["appId"]]
    d["appRoleAssignmentRequired"] = False
    if sel:
        d = {k: v for k, v in d.items() if k in sel or k == "id"}
    return d


def service_principals(t: Tenant, req: Req, spid: str | None = None):
    need(req, "GET servicePrincipals")
    sel = parse_select(req, set(SP_PUBLIC) | {"deletedDateTime"}, "servicePrincipal")
    if spid is not None:
        sp = t.service_principals.get(spid)
        if sp is None:
            m = re.match(r"^\(appId='([0-9a-f-]+)'\)$", spid) or re.match(r"^appId='([0-9a-f-]+)'$", spid)
            sp = next((s for s in t.service_principals.values() if m and s["appId"] == m.group(1)), None)
        if sp is None:
            raise not_found_dir(spid)
        return 200, {"@odata.context": f"{req.base}/v1.0/$metadata#servicePrincipals/$entity", **sp_json(sp, sel)}
    items = [sp_json(s, sel) for s in t.service_principals.values()]
    if "$filter" in req.query:
        cl = parse_filter(req.query["$filter"], {"appId", "displayName", "id", "servicePrincipalType"}, "ServicePrincipal", False)
        items = [s for s in items if match_obj(s, cl)]
    return 200, collection(req, "servicePrincipals", items, None)


def _find_sp(t: Tenant, key: str) -> dict:
    """A service principal by object id, or by the alternate key ``(appId='…')``."""
    sp = t.service_principals.get(key)
    if sp is None:
        m = re.match(r"^\(appId='([0-9a-fA-F-]+)'\)$", key) or re.match(r"^appId='([0-9a-fA-F-]+)'$", key)
        sp = next((s for s in t.service_principals.values() if m and s["appId"].lower() == m.group(1).lower()), None)
    if sp is None:
        raise not_found_dir(key)
    return sp


APP_ROLE_ASSIGNMENT = ("id", "deletedDateTime", "appRoleId", "createdDateTime", "principalDisplayName", "principalId",
                       "principalType", "resourceDisplayName", "resourceId")


def app_role_assigned_to(t: Tenant, req: Req, key: str):
    """GET /servicePrincipals/{id}/appRoleAssignedTo: who holds app roles on this resource (graph-api.md §6.2).
    Pages of $top (default 100, at most 999) with a $skiptoken nextLink; $select; $filter eq on principalId /
    appRoleId / principalType; 403 without Application.Read.All (or a broader read permission)."""
    need(req, "GET servicePrincipals/{id}/appRoleAssignedTo")
    sp = _find_sp(t, key)
    sel = parse_select(req, set(APP_ROLE_ASSIGNMENT), "appRoleAssignment")
    cl = parse_filter(req.query["$filter"], {"principalId", "appRoleId", "principalType", "resourceId"},
                      "AppRoleAssignment", False) if "$filter" in req.query else []
    top = page_size(req, 100, 999)
    start = read_skiptoken(req)
    items = [a for a in t.app_role_assignments.values() if a["resourceId"] == sp["id"] and match_obj(a, cl)]
    page = [{k: a.get(k) for k in APP_ROLE_ASSIGNMENT if not sel or k in sel or k == "id"}
            for a in items[start:start + top]]
    nxt = start + top if start + top < len(items) else None
    return 200, collection(req, f"servicePrincipals('{sp['id']}')/appRoleAssignedTo", page, nxt)


def domains(t: Tenant, req: Req):
    need(req, "GET domains")
    items = [{"id": d, "authenticationType": "Managed", "isDefault": d == t.primary_domain,
              "isInitial": d.endswith(".onmicrosoft.com"), "isRoot": d.count(".") == 1 or d.endswith(".onmicrosoft.com"),
              "isVerified": True, "isAdminManaged": True, "supportedServices": ["Email", "OfficeCommunicationsOnline"],
              "passwordValidityPeriodInDays": 2147483647, "passwordNotificationWindowInDays": 14,
              "availabilityStatus": None, "state": None, "manufacturer": None, "model": None}
             for d in t.domains]
    return 200, collection(req, "domains", items, None)


def organization(t: Tenant, req: Req):
    need(req, "GET organization")
    org = {"id": t.tenant_id, "displayName": t.org_name, "tenantType": "AAD", "countryLetterCode": "US",
           "createdDateTime": "2019-04-01T10:00:00Z", "onPremisesSyncEnabled": True,
           "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": d == t.primary_domain,
                                "isInitial": d.endswith(".onmicrosoft.com"), "name": d, "type": "Managed"} for d in t.domains],
           "assignedPlans": [], "businessPhones": [], "city": "Redmond", "country": None, "marketingNotificationEmails": [],
           "technicalNotificationMails": [f"it.admin@{t.primary_domain}"], "privacyProfile": None,
           "provisionedPlans": [], "securityComplianceNotificationMails": [], "securityComplianceNotificationPhones": []}
    return 200, collection(req, "organization", [org], None)


# ---------------------------------------------------------------------------------------------------- dispatcher
def dispatch(t: Tenant, req: Req):
    s = req.segs
    m = req.method
    n = len(s)
    if not s:
        raise GraphError(404, "BadRequest", "Invalid version.")
    head = s[0]
    if head == "users":
        if n == 1 and m == "GET":
            return list_users(t, req)
        if n == 2 and s[1] == "$count" and m == "GET":
            need(req, "GET users/$count")
            if not advanced(req):
                raise GraphError(400, "Request_BadRequest", "Count is not currently supported.")
            return 200, str(t.user_count)
        if s[1].startswith("$") and not req.path.lstrip("/").startswith("users("):
            # OData reserves a leading '$' for system segments: /users/$x@contoso.com is a bad request; Graph's user
            # doc says to address such a user as /users('$x@contoso.com').
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{s[1]}'.")
        u = t.find_user(s[1])
        if u is None:
            if n >= 3 and s[2] in ("mailFolders", "messages", "mailboxSettings"):
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{s[1]}' is invalid.")
            raise not_found_dir(s[1])
        if n == 2:
            if m == "GET":
                return user_item(t, req, u)
            if m == "PATCH":
                return patch_user(t, req, u)
            if m == "DELETE":
                raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        sub = s[2]
        if sub == "revokeSignInSessions" and n == 3 and m == "POST":
            return revoke_sessions(t, req, u)
        if sub == "mailboxSettings" and n == 3 and m == "GET":
            return mailbox_settings(t, req, u)
        if sub in ("memberOf", "transitiveMemberOf") and n in (3, 4) and m == "GET":
            return user_member_of(t, req, u, sub == "transitiveMemberOf", s[3] if n == 4 else None)
        if sub == "oauth2PermissionGrants" and n == 3 and m == "GET":
            return list_grants(t, req, u)
        if sub == "messages" and m == "GET" and n in (3, 4):
            # only Sent Items carries modelled messages; /messages spans every folder
            sent = t.well_known_folder(u, "sentitems") if u.mailbox is not None else None
            return list_messages(t, req, u, sent, count_only=n == 4 and s[3] == "$count")
        if sub == "mailFolders":
            if n >= 5 and s[4] == "messageRules":
                # permission first (403 beats 404), then the mailbox, then the folder
                key = {"GET": "GET users/{id}/messageRules", "POST": "POST users/{id}/messageRules",
                       "PATCH": "PATCH users/{id}/messageRules/{id}", "DELETE": "DELETE users/{id}/messageRules/{id}"}.get(m)
                if key is None:
                    raise GraphError(405, "ErrorInvalidRequest", f"The HTTP method '{m}' is not supported.")
                need(req, key)
                require_mailbox(u)
                inbox_check(t, u, s[3])
                if n == 5 and m == "GET":
                    return list_rules(t, req, u)
                if n == 5 and m == "POST":
                    return create_rule(t, req, u)
                if n == 6:
                    if m == "GET":
                        return 200, rule_json(req, u, find_rule(t, u, s[5]), context=True)
                    if m == "PATCH":
                        return patch_rule(t, req, u, s[5])
                    if m == "DELETE":
                        return delete_rule(t, req, u, s[5])
            elif m == "GET":
                need(req, "GET users/{id}/messages" if n >= 5 and s[4] == "messages" else "GET users/{id}/mailFolders")
                require_mailbox(u)
                if n == 3:
                    return list_folders(t, req, u, None)
                f = resolve_folder(t, u, s[3])
                if n == 4:
                    return get_folder(t, req, u, f)
                if n == 5 and s[4] == "childFolders":
                    return list_folders(t, req, u, f)
                if n == 5 and s[4] == "messages":
                    return list_messages(t, req, u, f)
                if n == 6 and s[4] == "messages" and s[5] == "$count":
                    return list_messages(t, req, u, f, count_only=True)
        if sub == "authentication" and n >= 4:
            coll = s[3]
            if coll == "methods":
                if n == 4 and m == "GET":
                    return list_methods(t, req, u, None)
                if n == 5 and m == "GET":
                    return get_method(t, req, u, None, s[4])
                if n == 5 and m == "DELETE":
                    raise GraphError(405, "Request_BadRequest", "The DELETE method is not supported on the generic methods collection.")
            elif coll in METHOD_TYPES:
                if n == 4 and m == "GET":
                    return list_methods(t, req, u, coll)
                if n == 5 and m == "GET":
                    return get_method(t, req, u, coll, s[4])
                if n == 5 and m == "DELETE" and coll != "externalAuthenticationMethods":
                    return delete_method(t, req, u, coll, s[4])
                if coll == "externalAuthenticationMethods" and m == "DELETE":
                    # Documented as DELETE /users/{id}/authentication/externalAuthenticationMethods/{id}/$ref.
                    if n == 6 and s[5] == "$ref":
                        return delete_method(t, req, u, coll, s[4])
                    raise GraphError(405, "Request_BadRequest", "The DELETE method is not supported on this "
                                                                "resource; delete a reference with .../$ref.")
    elif head == "groups" and n >= 2:
        if n == 2 and m == "GET":
            return get_group(t, req, s[1])
        if s[2] in ("members", "transitiveMembers") and m == "GET" and n in (3, 4):
            return group_members(t, req, s[1], s[2] == "transitiveMembers", s[3] if n == 4 else None)
        if s[2] == "members" and n == 4 and s[3] == "$ref" and m == "POST":
            return add_group_member(t, req, s[1])
        if s[2] == "members" and n == 5 and s[4] == "$ref" and m == "DELETE":
            return remove_group_member(t, req, s[1], s[3])
    elif head == "reports" and s[1:] == ["authenticationMethods", "userRegistrationDetails"] and m == "GET":
        return registration_details(t, req)
    elif head == "roleManagement" and n >= 3 and s[1] == "directory":
        what = s[2]
        if what == "roleDefinitions" and m == "GET":
            return role_definitions(t, req, s[3] if n > 3 else None)
        if what == "roleAssignments":
            if n == 3 and m == "GET":
                return role_assignments(t, req)
            if n == 3 and m == "POST":
                return create_role_assignment(t, req)
            if n == 4 and m in ("GET", "DELETE"):
                return role_assignment_item(t, req, s[3])
        if what == "roleEligibilitySchedules" and n == 3 and m == "GET":
            return eligibility(t, req)
        if what == "roleEligibilityScheduleRequests" and n == 3 and m == "POST":
            return create_eligibility_request(t, req)
    elif head.startswith("directoryRoles"):
        key = s[1] if n > 1 else None
        if head.startswith("directoryRoles(") and head.endswith(")"):
            key = head[len("directoryRoles("):-1]
            s = ["directoryRoles", key, *s[1:]]
            n = len(s)
        if n == 1 and m == "GET":
            return directory_roles(t, req)
        if n == 3 and s[2] == "members" and m == "GET":
            return directory_role_members(t, req, key)
        if n == 5 and s[2] == "members" and s[4] == "$ref" and m == "DELETE":
            return remove_directory_role_member(t, req, key, s[3])
    elif head == "oauth2PermissionGrants":
        if n == 1 and m == "GET":
            return list_grants(t, req)
        if n == 1 and m == "POST":
            return create_grant(t, req)
        if n == 2 and m in ("GET", "DELETE"):
            return grant_item(t, req, s[1])
    elif head.startswith("servicePrincipals") and m == "GET":
        if head.startswith("servicePrincipals(") and n == 2 and s[1] == "appRoleAssignedTo":
            return app_role_assigned_to(t, req, head[len("servicePrincipals"):])
        if n == 3 and s[2] == "appRoleAssignedTo":
            return app_role_assigned_to(t, req, s[1])
        if head.startswith("servicePrincipals(") and n == 1:
            return service_principals(t, req, head[len("servicePrincipals"):])
        if n == 1:
            return service_principals(t, req)
        if n == 2:
            return service_principals(t, req, s[1])
    elif head == "domains" and n == 1 and m == "GET":
        return domains(t, req)
    elif head == "organization" and n == 1 and m == "GET":
        return organization(t, req)
    if m not in ("GET", "POST", "PATCH", "DELETE", "PUT"):
        raise GraphError(405, "Request_BadRequest", f"The HTTP method '{m}' is not supported.")
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{s[-1]}'.")


def mail_target(t: Tenant, segs: list[str]) -> str | None:
    """The mailbox a request targets (Outlook throttling scope), or None for directory requests."""
    if len(segs) >= 3 and segs[0] == "users" and segs[2] in ("mailFolders", "messages", "mailboxSettings"):
        return segs[1].lower()
    return None



def target_upn(t: Tenant, segs: list[str]) -> str | None:
    if len(segs) >= 2 and segs[0] == "users" and segs[1] != "$count":
        idx = t.find_index(segs[1])
        if idx is not None:
            return t.user_at(idx).userPrincipalName
    return None


def request_class(segs: list[str]) -> str:
    if segs and segs[0] == "reports":
        return "reports"
    if len(segs) >= 3 and segs[0] == "users" and segs[2] in ("mailFolders", "messages", "mailboxSettings"):
        return "outlook"
    return "directory"


__all__ = ["dispatch", "GraphError", "Req", "mail_target", "target_upn", "request_class", "orjson", "METHOD_TYPES"]
