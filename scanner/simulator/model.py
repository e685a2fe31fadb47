"""Tenant state: users, mailboxes, folders, rules, methods, roles, grants; lazily generated background users."""

from __future__ import annotations

import base64
import hashlib
import random
import re
import secrets
import uuid
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import ids
from . import names as N

_FIRST_IDX = {n.lower(): i for i, n in reversed(list(enumerate(N.FIRST_NAMES)))}
_LAST_IDX = {n.lower(): i for i, n in reversed(list(enumerate(N.LAST_NAMES)))}

ROLE_TEMPLATES: dict[str, str] = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Application Administrator": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Conditional Access Administrator": "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Password Administrator": "966707d0-3269-4727-9be2-8c3a10f19b9d",
    "SharePoint Administrator": "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
    "Teams Administrator": "69091246-20e8-4a56-aa4d-066075b2a7a8",
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Reports Reader": "4a5d8f65-41da-4de4-8968-e035b65339cf",
    "Directory Synchronization Accounts": "d29b2b05-8046-44ba-8758-1e26182fcf32",
}

PHONE_IDS = {"mobile": "3179e48a-750b-4051-897c-87b9720928f7",
             "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
             "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc"}
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"  # noqa: S105 - a fixed method id, not a secret

METHOD_TYPES = {  # typed sub-collection -> @odata.type
    "phoneMethods": "#microsoft.graph.phoneAuthenticationMethod",
    "microsoftAuthenticatorMethods": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    "fido2Methods": "#microsoft.graph.fido2AuthenticationMethod",
    "softwareOathMethods": "#microsoft.graph.softwareOathAuthenticationMethod",
    "emailMethods": "#microsoft.graph.emailAuthenticationMethod",
    "temporaryAccessPassMethods": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
    "windowsHelloForBusinessMethods": "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod",
    "passwordMethods": "#microsoft.graph.passwordAuthenticationMethod",
    "platformCredentialMethods": "#microsoft.graph.platformCredentialAuthenticationMethod",
    # external MFA providers (an admin registers them; Graph deletes them through .../{id}/$ref)
    "externalAuthenticationMethods": "#microsoft.graph.externalAuthenticationMethod",
}
TYPE_TO_COLLECTION = {v: k for k, v in METHOD_TYPES.items()}

# registration-report names for methodsRegistered
REGISTRATION_NAMES = {
    "phoneMethods": "mobilePhone", "microsoftAuthenticatorMethods": "microsoftAuthenticatorPush",
    "fido2Methods": "fido2SecurityKey", "softwareOathMethods": "softwareOneTimePasscode", "emailMethods": "email",
    "temporaryAccessPassMethods": "temporaryAccessPass", "windowsHelloForBusinessMethods": "windowsHelloForBusiness",
    "platformCredentialMethods": "macOsSecureEnclaveKey",
}

MS_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MICROSOFT_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"

# (displayName, well-known name, isHidden, is mail folder)
STANDARD_FOLDERS = (
    ("Inbox", "inbox", False, True),
    ("Sent Items", "sentitems", False, True),
    ("Drafts", "drafts", False, True),
    ("Deleted Items", "deleteditems", False, True),
    ("Junk Email", "junkemail", False, True),
    ("Archive", "archive", False, True),
    ("Outbox", "outbox", False, True),
    ("Conversation History", "conversationhistory", False, True),
    ("RSS Feeds", None, False, True),
    ("RSS Subscriptions", None, True, True),
    ("Sync Issues", "syncissues", True, True),
    ("Notes", None, False, False),
    ("Calendar", None, False, False),
    ("Contacts", None, False, False),
)
SYNC_CHILDREN = (("Conflicts", "conflicts"), ("Local Failures", "localfailures"), ("Server Failures", "serverfailures"))


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_precise(dt: datetime | None) -> str | None:
    """Graph's seven-digit fractional form (``2026-12-03T20:11:56.1234560Z``) for stamps that change within a second."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def recipient(address: str, name: str | None = None) -> dict:
    return {"emailAddress": {"name": name if name is not None else address, "address": address}}


@dataclass
class Folder:
    id: str
    displayName: str
    parentFolderId: str
    well_known: str | None = None
    isHidden: bool = False
    is_mail: bool = True
    totalItemCount: int = 0
    unreadItemCount: int = 0


@dataclass
class Rule:
    id: str
    rule_identity: int
    displayName: str
    sequence: int
    conditions: dict = field(default_factory=dict)
    exceptions: dict = field(default_factory=dict)
    actions: dict = field(default_factory=dict)
    isEnabled: bool = True
    hasError: bool = False
    isReadOnly: bool = False
    hidden: bool = False          # only Get-InboxRule -IncludeHidden shows it
    system: bool = False          # Exchange system rule (Junk E-mail Rule)
    exchange_extra: dict = field(default_factory=dict)  # Exchange-only conditions Graph can't represent

    def graph(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "displayName": self.displayName, "sequence": self.sequence,
                             "isEnabled": self.isEnabled, "hasError": self.hasError, "isReadOnly": self.isReadOnly}
        if not self.isReadOnly:
            if self.conditions:
                d["conditions"] = self.conditions
            if self.exceptions:
                d["exceptions"] = self.exceptions
            d["actions"] = self.actions
        return d


@dataclass
class Mailbox:
    kind: str                      # user | shared | room | equipment
    forwarding_smtp: str | None = None
    forwarding_address: str | None = None   # upn of an internal recipient
    deliver_and_forward: bool = False
    grant_send_on_behalf: list[str] = field(default_factory=list)
    cas: dict = field(default_factory=lambda: {"ActiveSyncEnabled": True, "OWAEnabled": True, "PopEnabled": True,
                                               "ImapEnabled": True, "MAPIEnabled": True, "EwsEnabled": True,
                                               "SmtpClientAuthenticationDisabled": None})
    blocked: dict | None = None    # {"Reason":..., "CreatedDatetime":...}
    # Outlook desktop keeps its own copy of the rules (the legacy rules blob); a mailbox that has been used with it has
    # one. Saving rules through Exchange (Enable/Disable/Set/Remove-InboxRule) deletes it, after a confirmation that
    # -Force skips; the user's OWA option "always delete the Outlook rules" (set by -AlwaysDeleteOutlookRulesBlob)
    # skips it for good.
    outlook_rules_blob: bool = True
    always_delete_outlook_rules_blob: bool = False
    sent_per_day: int = 10
    sent_last_24h: int | None = None


@dataclass(eq=False)
class User:
    index: int
    id: str
    userPrincipalName: str
    displayName: str
    givenName: str | None
    surname: str | None
    mail: str | None
    mailNickname: str
    jobTitle: str | None
    department: str | None
    officeLocation: str | None
    businessPhones: list[str]
    mobilePhone: str | None
    accountEnabled: bool
    userType: str
    createdDateTime: datetime
    lastPasswordChangeDateTime: datetime
    onPremisesSyncEnabled: bool | None
    otherMails: list[str]
    usageLocation: str | None
    preferredLanguage: str | None
    companyName: str | None
    employeeType: str | None
    creationType: str | None
    externalUserState: str | None
    licensed: bool
    mailbox: Mailbox | None
    manager_upn: str | None = None
    signInSessionsValidFromDateTime: datetime | None = None
    last_sign_in: datetime | None = None
    # remediation-visible state
    password_hash: str | None = None
    password_changed_at: datetime | None = None
    force_change_password: bool = False
    sessions_revoked: int = 0
    sessions_revoked_at: datetime | None = None
    # lazily materialised mailbox details
    _folders: dict[str, Folder] | None = None
    _rules: list[Rule] | None = None
    _methods: list[dict] | None = None
    _default_method: str | None = None
    # when a method was last added or removed: the registration report's lastUpdatedDateTime follows it
    methods_updated_at: datetime | None = None
    _mailbox_perms: list[dict] | None = None
    _recipient_perms: list[dict] | None = None
    _sent: list[datetime] | None = None
    _rule_seq: int = 0
    explicit: bool = False

    @property
    def proxyAddresses(self) -> list[str]:
        if not self.mail or self.userType == "Guest":
            return []
        return [f"SMTP:{self.mail}"]

    @property
    def has_mailbox(self) -> bool:
        return self.mailbox is not None


class Tenant:
    """The simulated tenant. All state lives here; the HTTP layer only reads and mutates it."""

    def __init__(self, *, users: int, seed: int, now: datetime | None, name: str = "contoso",
                 org_name: str = "Contoso", license: str = "P2") -> None:
        from .faults import FaultSet
        self.seed = seed
        self._fixed_now = now.astimezone(UTC) if now else None
        self.generated_at = self.now()
        self.name = name
        self.org_name = org_name
        self.license = license  # "P2", "P1" or "free" (registration report / signInActivity need premium)
        self.tenant_id = ids.guid_for(seed, 900, 1)
        self.primary_domain = f"{name}.com"
        self.domains = [self.primary_domain, f"eu.{name}.com", f"{name}.onmicrosoft.com"]
        self.onmicrosoft_domain = self.domains[2]
        self.requested_users = users
        self.explicit: list[User] = []
        self._upn_explicit: dict[str, int] = {}
        self.n_background = 0
        # Background users that were read are cached (LRU, regenerated identically after eviction);
        # users that changed are pinned in _dirty and never evicted.
        self._live: OrderedDict[int, User] = OrderedDict()
        self._dirty: dict[int, User] = {}
        self.live_cache_size = 20_000
        self._bg_upn_index: dict[str, int] | None = None
        self.labels: dict[str, dict] = {}
        # Ground truth for TENANT-LEVEL planted objects (service principals in roles ...), keyed by the detectors'
        # pseudo-account label ``serviceprincipal:<displayName> (<appId>)`` — never a UPN, so ``labels`` stays UPN-only.
        self.tenant_labels: dict[str, dict] = {}
        self.mutations: list[dict] = []
        self.stats: Counter[str] = Counter()
        self.faults = FaultSet()
        self.service_principals: dict[str, dict] = {}
        self.sp_by_name: dict[str, str] = {}
        self.grants: dict[str, dict] = {}            # explicit grants (id -> grant)
        self.deleted_bg_grants: set[str] = set()
        self.role_assignments: dict[str, dict] = {}  # id -> {id, principalId, roleDefinitionId, directoryScopeId, created}
        # Application permissions: appRoleAssignment id -> the Graph appRoleAssignment (+ nothing private); listed per
        # resource by GET /servicePrincipals/{id}/appRoleAssignedTo in insertion order.
        self.app_role_assignments: dict[str, dict] = {}
        # Exchange mail-flow (transport) rules, in priority order: each the rule's own properties in Get-TransportRule's
        # names (Name, State, Mode, RedirectMessageTo, BlindCopyTo, SetSCL, SentToScope ...) plus private ``_guid`` /
        # ``_changed``; exchange.transport_rule_row adds everything else the cmdlet prints.
        self.transport_rules: list[dict] = []
        self.eligibility: list[dict] = []
        # Entra groups: id -> the group's Graph properties (id, displayName, isAssignableToRole, securityEnabled,
        # mailEnabled, groupTypes, ...). Direct members (user or group object ids, in the order they were added) live
        # apart in ``group_members``; transitive membership is computed from them.
        self.groups: dict[str, dict] = {}
        self.group_members: dict[str, list[str]] = {}
        self.token_generation = 0
        self.token_secret = hashlib.sha256(f"sim-token-{seed}".encode()).digest()
        self.password_salt = secrets.token_bytes(8)

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        return self._fixed_now if self._fixed_now else datetime.now(UTC).replace(microsecond=0)

    def registration_stamp(self, u: User) -> None:
        """A method was added or removed: move the registration report's ``lastUpdatedDateTime`` for ``u`` forward.

        Graph stamps it with sub-second precision, so two changes (or a change in the second the tenant was generated)
        never share a value; the stamp is strictly later than the last one and than the generation time."""
        precise = self._fixed_now if self._fixed_now else datetime.now(UTC)
        floor = max(self.generated_at, u.methods_updated_at or self.generated_at) + timedelta(microseconds=1)
        u.methods_updated_at = max(precise, floor)

    def advance(self, seconds: float) -> None:
        """Move a frozen clock forward (tests)."""
        if self._fixed_now is None:
            self._fixed_now = datetime.now(UTC).replace(microsecond=0)
        self._fixed_now += timedelta(seconds=seconds)

    # ------------------------------------------------------------------ users
    @property
    def user_count(self) -> int:
        return len(self.explicit) + self.n_background

    def _h(self, i: int, salt: int) -> int:
        return ids.mix(self.seed, i, salt)

    def user_id_for(self, index: int) -> str:
        return ids.guid_for(self.seed, 1, index)

    def _bg_name(self, i: int) -> tuple[str, str, int]:
        b = i - len(self.explicit)
        F, L = len(N.FIRST_NAMES), len(N.LAST_NAMES)
        C = F * L
        c = (b * 7919 + self.seed * 104729) % C
        return N.FIRST_NAMES[c // L], N.LAST_NAMES[c % L], b // C

    def _bg_kind(self, i: int) -> str:
        r = self._h(i, 11) % 1000
        if r < 900:
            return "member"
        if r < 935:
            return "shared"
        if r < 950:
            return "room"
        if r < 972:
            return "nomailbox"
        return "guest"

    def _bg_upn(self, i: int) -> str:
        first, last, block = self._bg_name(i)
        local = f"{first}.{last}".lower() + (str(block + 1) if block else "")
        kind = self._bg_kind(i)
        if kind == "guest":
            gdom = N.GUEST_DOMAINS[self._h(i, 12) % len(N.GUEST_DOMAINS)]
            return f"{local}_{gdom}#EXT#@{self.onmicrosoft_domain}"
        if kind in ("shared", "room"):
            label = (N.SHARED_MAILBOXES if kind == "shared" else N.ROOMS)[self._h(i, 13) % (len(N.SHARED_MAILBOXES) if kind == "shared" else len(N.ROOMS))]
            local = label.lower().replace(" ", "") + str(i)
        dom = self.domains[1] if self._h(i, 14) % 10 == 0 else self.primary_domain
        if local + "@" + dom in self._upn_explicit:
            local += "x"
        return f"{local}@{dom}"

    def _make_bg_user(self, i: int) -> User:
        self.stats["users_built"] += 1
        now = self.generated_at
        kind = self._bg_kind(i)
        first, last, _block = self._bg_name(i)
        upn = self._bg_upn(i)
        h = self._h(i, 20)
        dept = N.DEPARTMENT_NAMES[h % len(N.DEPARTMENT_NAMES)]
        titles = N.DEPARTMENTS[dept]
        title = titles[(h >> 8) % len(titles)]
        office = N.OFFICES[(h >> 16) % len(N.OFFICES)]
        created = now - timedelta(days=30 + (h >> 24) % 2500, seconds=(h >> 36) % 86400)
        pwd = now - timedelta(days=1 + (h >> 40) % 300, seconds=(h >> 12) % 86400)
        phone_n = f"{N.PHONE_PREFIXES[office]} 555 {(h >> 20) % 10000:04d}"
        synced = kind == "member" and (h >> 50) % 20 == 0
        enabled = kind in ("member", "nomailbox", "guest") and (h >> 54) % 33 != 0
        mailbox: Mailbox | None = None
        display = f"{first} {last}"
        given: str | None = first
        sur: str | None = last
        mail: str | None = upn
        user_type = "Member"
        creation = None
        ext_state = None
        licensed = kind == "member"
        if kind == "member":
            mailbox = Mailbox(kind="user", sent_per_day=2 + (h >> 44) % 35)
        elif kind in ("shared", "room"):
            label = upn.split("@")[0].rstrip("0123456789")
            pool = N.SHARED_MAILBOXES if kind == "shared" else N.ROOMS
            display = next((p for p in pool if p.lower().replace(" ", "") == label), label)
            given = sur = None
            title = None
            mailbox = Mailbox(kind="shared" if kind == "shared" else "room", sent_per_day=1 if kind == "shared" else 0)
            enabled = False
        elif kind == "guest":
            local, gdom = upn.split("#EXT#")[0].rsplit("_", 1)
            mail = f"{local}@{gdom}"
            user_type = "Guest"
            creation = "Invitation"
            ext_state = "Accepted"
            title = dept = office = None
            phone_n = None
        elif kind == "nomailbox":
            mail = None
        mgr = None
        if kind == "member" and i - len(self.explicit) > 20:
            mgr_i = len(self.explicit) + (i - len(self.explicit)) // 8
            if self._bg_kind(mgr_i) == "member":
                mgr = self._bg_upn(mgr_i)
        return User(
            index=i, id=self.user_id_for(i), userPrincipalName=upn, displayName=display, givenName=given, surname=sur,
            mail=mail, mailNickname=upn.split("@")[0].replace("#EXT#", "").split("_")[0] if kind == "guest" else upn.split("@")[0],
            jobTitle=title, department=dept, officeLocation=office,
            businessPhones=[phone_n] if phone_n and kind == "member" and h % 3 else [],
            mobilePhone=None, accountEnabled=enabled, userType=user_type, createdDateTime=created,
            lastPasswordChangeDateTime=pwd if kind != "guest" else created,
            onPremisesSyncEnabled=True if synced else None, otherMails=[], usageLocation="US" if office not in N.EU_OFFICES else "GB",
            preferredLanguage="en-US", companyName=self.org_name if kind == "member" else None,
            employeeType="Employee" if kind == "member" else None, creationType=creation,
            externalUserState=ext_state, licensed=licensed, mailbox=mailbox, manager_upn=mgr,
            last_sign_in=now - timedelta(hours=1 + (h >> 30) % 400) if enabled else None,
        )

    def user_at(self, i: int, *, keep: bool = False) -> User:
        """User by index; background users are regenerated on demand unless already live (touched/mutated)."""
        if i < len(self.explicit):
            return self.explicit[i]
        u = self._dirty.get(i)
        if u is not None:
            return u
        u = self._live.get(i)
        if u is not None:
            self._live.move_to_end(i)
            return u
        u = self._make_bg_user(i)
        if keep:
            self._live[i] = u
            self.stats["users_live"] += 1
            if len(self._live) > self.live_cache_size:
                self._live.popitem(last=False)
                self.stats["users_evicted"] += 1
        return u

    def mark_dirty(self, u: User) -> None:
        """Pin a changed background user so its state survives (unchanged ones are regenerated on demand)."""
        if not u.explicit and u.index not in self._dirty:
            self._dirty[u.index] = u
            self._live.pop(u.index, None)

    def changed_users(self) -> list[User]:
        return self.explicit + list(self._dirty.values())

    def iter_users(self, start: int = 0):
        for i in range(start, self.user_count):
            yield self.user_at(i)

    def find_index(self, key: str) -> int | None:
        key = key.strip()
        if not key:
            return None
        idx = ids.guid_index(self.seed, 1, key)
        if idx is not None and idx < self.user_count:
            return idx
        k = key.lower()
        if k in self._upn_explicit:
            return self._upn_explicit[k]
        if "@" not in k:
            return None
        idx = self._invert_bg_upn(k)
        if idx is not None:
            return idx
        if self._bg_upn_index is None:
            self.stats["upn_index_builds"] += 1
            E = len(self.explicit)
            self._bg_upn_index = {self._bg_upn(i).lower(): i for i in range(E, self.user_count)}
        return self._bg_upn_index.get(k)

    def _invert_bg_upn(self, k: str) -> int | None:
        """O(1) inverse of _bg_upn for generated names (falls back to a one-off index otherwise)."""
        E = len(self.explicit)
        local = k.split("@", 1)[0]
        if "#ext#" in local:
            local = local.split("#ext#", 1)[0].rsplit("_", 1)[0]
        cands = []
        for loc in {local, local[:-1] if local.endswith("x") else local}:
            m = re.match(r"^([a-z]+)\.([a-z]+)(\d*)$", loc)
            if not m:
                continue
            fi, li = _FIRST_IDX.get(m.group(1)), _LAST_IDX.get(m.group(2))
            if fi is not None and li is not None:
                F, L = len(N.FIRST_NAMES), len(N.LAST_NAMES)
                C = F * L
                block = int(m.group(3)) - 1 if m.group(3) else 0
                b = ((fi * L + li - self.seed * 104729) * pow(7919, -1, C)) % C + block * C
                cands.append(b + E)
        m = re.match(r"^[a-z0-9]*?[a-z](\d+)x?$", local)
        if m:  # shared/room mailboxes end with their index (a room name may end in a digit too)
            d = m.group(1)
            cands.extend(int(d[j:]) for j in range(len(d)))
        for i in cands:
            if E <= i < self.user_count and self._bg_upn(i).lower() == k:
                return i
        return None

    def find_user(self, key: str) -> User | None:
        """Look up a user by id or UPN (also the primary SMTP address of mailboxes); keeps it live."""
        idx = self.find_index(key)
        if idx is None:
            k = key.lower()
            for u in self.explicit:
                if u.mail and u.mail.lower() == k:
                    return u
            return None
        return self.user_at(idx, keep=True)

    def user(self, upn_or_id: str) -> User:
        u = self.find_user(upn_or_id)
        if u is None:
            raise KeyError(upn_or_id)
        return u

    def add_explicit_user(self, u: User) -> None:
        self.explicit.append(u)
        self._upn_explicit[u.userPrincipalName.lower()] = u.index

    # ------------------------------------------------------------------ mailbox details (lazy)
    def _rng(self, u: User, salt: int) -> random.Random:
        return random.Random(ids.mix(self.seed, u.index, salt))

    def folders(self, u: User) -> dict[str, Folder]:
        if u._folders is None:
            self.stats["mailboxes_materialised"] += 1
            u._folders = {}
            root = ids.outlook_id(u.id, "folder", "msgfolderroot")
            self._root_ids = getattr(self, "_root_ids", {})
            rng = self._rng(u, 31)
            for name, wk, hidden, is_mail in STANDARD_FOLDERS:
                f = Folder(id=ids.outlook_id(u.id, "folder", name), displayName=name, parentFolderId=root,
                           well_known=wk, isHidden=hidden, is_mail=is_mail)
                if name == "Inbox":
                    f.totalItemCount, f.unreadItemCount = rng.randint(50, 9000), rng.randint(0, 60)
                elif name == "Sent Items":
                    f.totalItemCount = rng.randint(100, 5000)
                elif name in ("Deleted Items", "Archive", "Junk Email"):
                    f.totalItemCount = rng.randint(0, 800)
                u._folders[f.id] = f
            sync = self.folder_by_name(u, "Sync Issues")
            for name, wk in SYNC_CHILDREN:
                f = Folder(id=ids.outlook_id(u.id, "folder", name), displayName=name, parentFolderId=sync.id,
                           well_known=wk, isHidden=True)
                u._folders[f.id] = f
        return u._folders

    def folder_by_name(self, u: User, path: str) -> Folder:
        """Resolve 'Inbox', 'Inbox/Invoices' or 'Inbox\\\\Invoices' (created if a custom child is missing)."""
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        folders = self.folders(u)
        parent_id = ids.outlook_id(u.id, "folder", "msgfolderroot")
        cur: Folder | None = None
        for p in parts:
            cur = next((f for f in folders.values() if f.parentFolderId == parent_id and f.displayName == p), None)
            if cur is None:
                cur = Folder(id=ids.outlook_id(u.id, "folder", f"{parent_id}/{p}"), displayName=p,
                             parentFolderId=parent_id, totalItemCount=len(p) * 7 % 120)
                folders[cur.id] = cur
            parent_id = cur.id
        assert cur is not None
        return cur

    def folder_path(self, u: User, folder_id: str) -> str | None:
        folders = self.folders(u)
        parts = []
        f = folders.get(folder_id)
        while f is not None:
            parts.append(f.displayName)
            f = folders.get(f.parentFolderId)
        return "\\".join(reversed(parts)) if parts else None

    def well_known_folder(self, u: User, name: str) -> Folder | None:
        n = name.lower()
        if n == "msgfolderroot":
            root = ids.outlook_id(u.id, "folder", "msgfolderroot")
            return Folder(id=root, displayName="Top of Information Store",
                          parentFolderId=ids.outlook_id(u.id, "folder", "root"))
        for f in self.folders(u).values():
            if f.well_known == n:
                return f
        return None

    def next_rule_identity(self, u: User) -> int:
        # per-user sequence: a regenerated (evicted) mailbox gets the very same rule ids again
        u._rule_seq += 1
        return (ids.mix(self.seed, u.index, u._rule_seq, 55) | (1 << 63)) & ids.M64

    def rules(self, u: User) -> list[Rule]:
        if u._rules is None:
            u._rules = []
            if u.mailbox is not None:
                self.folders(u)
                self._generate_background_rules(u)
                self.ensure_system_rules(u)
        return u._rules

    def ensure_system_rules(self, u: User) -> None:
        """The hidden 'Junk E-mail Rule' every mailbox has (only Get-InboxRule -IncludeHidden shows it)."""
        assert u._rules is not None
        if u.mailbox is None or any(r.system for r in u._rules):
            return
        ri = self.next_rule_identity(u)
        u._rules.append(Rule(id=ids.rule_graph_id(ri), rule_identity=ri, displayName="Junk E-mail Rule",
                             sequence=len(u._rules) + 1, hidden=True, system=True,
                             actions={"moveToFolder": self.folder_by_name(u, "Junk Email").id}))

    def _generate_background_rules(self, u: User) -> None:
        if u.explicit or u.mailbox is None or u.mailbox.kind != "user":
            return
        rng = self._rng(u, 41)
        templates = []
        r = rng.random()
        if r < 0.30:
            nm, addr = rng.choice(N.NEWSLETTER_SENDERS)
            templates.append(("Newsletters", {"fromAddresses": [recipient(addr, nm)]}, "Inbox/Newsletters", False))
        if u.department in ("Engineering", "IT") and rng.random() < 0.6:
            nm, addr = rng.choice(N.CI_SENDERS)
            templates.append((f"{nm} notifications", {"fromAddresses": [recipient(addr, nm)]}, "Inbox/CI", True))
        if u.manager_upn and rng.random() < 0.15:
            templates.append(("From my manager", {"fromAddresses": [recipient(u.manager_upn)]}, "Inbox/Boss", False))
        if rng.random() < 0.05:
            templates.append(("Expenses", {"subjectContains": ["expense report"]}, "Inbox/Expenses", False))
        for name, cond, folder, mark in templates:
            self.add_rule(u, displayName=name, conditions=cond,
                          actions={"moveToFolder": folder, "stopProcessingRules": False, **({"markAsRead": True} if mark else {})},
                          log=False)

    def methods(self, u: User) -> list[dict]:
        if u._methods is None:
            u._methods = []
            self._generate_background_methods(u)
        return u._methods

    def _generate_background_methods(self, u: User) -> None:
        u._methods.append({"@odata.type": METHOD_TYPES["passwordMethods"], "id": PASSWORD_METHOD_ID, "password": None,
                           "createdDateTime": iso(u.createdDateTime)})
        if u.explicit or u.userType == "Guest" or (u.mailbox and u.mailbox.kind != "user"):
            return
        rng = self._rng(u, 51)
        age_days = (self.generated_at - u.createdDateTime).days
        office = u.officeLocation or "Seattle"
        if rng.random() < 0.75:
            cc, area = N.PHONE_PREFIXES.get(office, "+1 425").split(" ")
            rng.randint(0, 9999)  # drawn as before, so the rest of the tenant is unchanged
            # one number per person: four random digits per office collided by the thousand in big tenants (a
            # 100k tenant had a third of its accounts "sharing" an MFA phone), which real mobile numbers do not
            num = f"{cc} {area}555{u.index:07d}"
            self.add_method(u, "phoneMethods", {"phoneNumber": num, "phoneType": "mobile", "smsSignInState": "notAllowedByPolicy"},
                            created=None, log=False)
            u._default_method = PHONE_IDS["mobile"]
        if rng.random() < 0.65:
            created = None if rng.random() < 0.6 else self.generated_at - timedelta(days=rng.randint(40, max(41, age_days)))
            self.add_method(u, "microsoftAuthenticatorMethods",
                            {"displayName": rng.choice(N.DEVICES), "deviceTag": "SoftwareTokenActivated",
                             "phoneAppVersion": f"6.8.{rng.randint(1, 20)}"}, created=created, log=False)
            if u._default_method is None or rng.random() < 0.5:
                u._default_method = u._methods[-1]["id"]
        if rng.random() < 0.05:
            self.add_method(u, "fido2Methods", {"displayName": "YubiKey 5 NFC", "aaGuid": "fa2b99dc-9e39-4257-8f92-4a30d23c4118",
                                                "model": "YubiKey 5 Series with NFC", "attestationCertificates": [],
                                                "attestationLevel": "attested"},
                            created=self.generated_at - timedelta(days=rng.randint(60, 700)), log=False)
        if rng.random() < 0.2:
            self.add_method(u, "emailMethods", {"emailAddress": f"{(u.givenName or 'user').lower()}.{rng.randint(10, 99)}@gmail.com"},
                            created=None, log=False)

    def add_method(self, u: User, collection: str, props: dict, *, created: datetime | None = None,
                   method_id: str | None = None, default: bool = False, log: bool = True) -> dict:
        """Add an authentication method (collection = 'phoneMethods', 'microsoftAuthenticatorMethods', ...)."""
        if log:
            self.mark_dirty(u)
        meths = self.methods(u) if u._methods is not None else u._methods
        if meths is None:
            u._methods = []
            self._generate_background_methods(u)
            meths = u._methods
        if method_id is None:
            if collection == "phoneMethods":
                method_id = PHONE_IDS[props.get("phoneType", "mobile")]
            elif collection == "fido2Methods":
                method_id = ids.fido_id(self.seed, u.index, len(meths))
            else:
                method_id = ids.random_guid(self.seed, u.index, len(meths), zlib.crc32(collection.encode()) & 0xFFFF)
        m = {"@odata.type": METHOD_TYPES[collection], "id": method_id, "createdDateTime": iso(created)}
        if collection == "phoneMethods":
            m.pop("createdDateTime")  # phone methods carry no timestamp
        if collection == "temporaryAccessPassMethods":
            m.update({"startDateTime": iso(created or self.now()), "lifetimeInMinutes": 60, "isUsableOnce": False,
                      "temporaryAccessPass": None})
        m.update(props)
        meths.append(m)
        if log:
            self.registration_stamp(u)
        if default or u._default_method is None and collection != "passwordMethods":
            u._default_method = method_id
        if log:
            self.log("POST", f"/users/{u.id}/authentication/{collection}", u, detail={"id": method_id})
        return m

    def method_view(self, m: dict) -> dict:
        """The JSON shape served: TAP usability is computed against the clock."""
        if m["@odata.type"] != METHOD_TYPES["temporaryAccessPassMethods"]:
            return m
        out = dict(m)
        start = datetime.strptime(m["startDateTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        end = start + timedelta(minutes=m["lifetimeInMinutes"])
        now = self.now()
        if now < start:
            usable, reason = False, "NotYetValid"
        elif now >= end:
            usable, reason = False, "Expired"
        elif m.get("_used"):
            usable, reason = False, "OneTimeUsed"
        else:
            usable, reason = True, "EnabledByPolicy"
        out["isUsable"], out["methodUsabilityReason"] = usable, reason
        out.pop("_used", None)
        return out

    def mailbox_permissions(self, u: User) -> list[dict]:
        if u._mailbox_perms is None:
            u._mailbox_perms = [{"User": "NT AUTHORITY\\SELF", "AccessRights": ["FullAccess, ReadPermission"],
                                 "IsInherited": False, "Deny": False, "InheritanceType": "All"}]
            if not u.explicit and u.mailbox is not None:
                rng = self._rng(u, 61)
                if u.mailbox.kind == "shared":
                    for _ in range(rng.randint(2, 4)):
                        j = len(self.explicit) + rng.randrange(max(1, self.n_background))
                        if self._bg_kind(j) == "member":
                            u._mailbox_perms.append({"User": self._bg_upn(j), "AccessRights": ["FullAccess"],
                                                     "IsInherited": False, "Deny": False, "InheritanceType": "All"})
                elif u.mailbox.kind == "user" and rng.random() < 0.02 and u.manager_upn:
                    u._mailbox_perms.append({"User": u.manager_upn, "AccessRights": ["FullAccess"],
                                             "IsInherited": False, "Deny": False, "InheritanceType": "All"})
        return u._mailbox_perms

    def recipient_permissions(self, u: User) -> list[dict]:
        if u._recipient_perms is None:
            u._recipient_perms = [{"Trustee": "NT AUTHORITY\\SELF", "AccessRights": ["SendAs"],
                                   "AccessControlType": "Allow", "IsInherited": False, "InheritanceType": "None"}]
            if not u.explicit and u.mailbox is not None and u.mailbox.kind == "shared":
                for p in self.mailbox_permissions(u)[1:2]:
                    u._recipient_perms.append({"Trustee": p["User"], "AccessRights": ["SendAs"],
                                               "AccessControlType": "Allow", "IsInherited": False,
                                               "InheritanceType": "None"})
        return u._recipient_perms

    def sent_times(self, u: User, since: datetime | None = None) -> list[datetime]:
        """Sent-item timestamps, newest first (14 days of history).

        ``since``: the caller only looks at timestamps >= since (a ``sentDateTime ge`` filter). Days whose newest
        possible timestamp is older are not generated (the same RNG sequence, stopped early), so the list's prefix of
        timestamps >= since — and their positions — equal the full list's; the rest may differ. Not cached."""
        if u._sent is not None:
            return u._sent
        out: list[datetime] = []
        if u.mailbox is not None:
            rng = self._rng(u, 71)
            now = self.generated_at
            for d in range(14):
                if since is not None and now - timedelta(days=d, seconds=30) < since:
                    break  # every timestamp of day d and later is older than ``since``
                n = u.mailbox.sent_last_24h if d == 0 and u.mailbox.sent_last_24h is not None else \
                    max(0, int(u.mailbox.sent_per_day * rng.uniform(0.5, 1.5)))
                if n <= 0:
                    continue
                step = 86400 / n
                base = now - timedelta(days=d, seconds=30)
                out.extend(base - timedelta(seconds=int(k * step + rng.random() * step * 0.8)) for k in range(n))
            out.sort(reverse=True)
        if since is None:
            u._sent = out
        return out

    # ------------------------------------------------------------------ grants
    def _bg_grant_app(self, i: int) -> str | None:
        if i < len(self.explicit) or self._bg_kind(i) != "member" or self._h(i, 81) % 9:
            return None
        benign = [sp for sp in self.service_principals.values() if sp.get("_benign_user_app")]
        if not benign:
            return None
        return benign[self._h(i, 82) % len(benign)]["id"]

    def graph_sp_id(self) -> str:
        return self.sp_by_name["Microsoft Graph"]

    def bg_grant(self, i: int) -> dict | None:
        sp = self._bg_grant_app(i)
        if sp is None:
            return None
        uid = self.user_id_for(i)
        gid = ids.grant_id(sp, self.graph_sp_id(), uid)
        if gid in self.deleted_bg_grants:
            return None
        return {"id": gid, "clientId": sp, "consentType": "Principal", "principalId": uid,
                "resourceId": self.graph_sp_id(), "scope": self.service_principals[sp].get("_user_scope", "User.Read")}

    def grants_for_user(self, u: User) -> list[dict]:
        out = [g for g in self.grants.values() if g["principalId"] == u.id]
        g = self.bg_grant(u.index)
        if g:
            out.append(g)
        return out

    def find_grant(self, gid: str) -> dict | None:
        if gid in self.grants:
            return self.grants[gid]
        parts = ids.grant_parts(gid)
        if not parts or parts[2] is None:
            return None
        idx = ids.guid_index(self.seed, 1, parts[2])
        if idx is None:
            return None
        g = self.bg_grant(idx)
        return g if g and g["id"] == gid else None

    def add_grant(self, principal: User | None, app: str, scope: str, *, consent_type: str | None = None,
                  resource: str = "Microsoft Graph", log: bool = True) -> dict:
        sp = self.sp_by_name.get(app) or app
        res = self.sp_by_name[resource]
        ct = consent_type or ("Principal" if principal else "AllPrincipals")
        gid = ids.grant_id(sp, res, principal.id if principal and ct == "Principal" else None)
        g = {"id": gid, "clientId": sp, "consentType": ct, "principalId": principal.id if ct == "Principal" and principal else None,
             "resourceId": res, "scope": scope}
        self.grants[gid] = g
        if log:
            self.log("POST", "/oauth2PermissionGrants", principal, detail={"id": gid, "app": app, "scope": scope})
        return g

    def delete_grant(self, gid: str) -> bool:
        if gid in self.grants:
            del self.grants[gid]
            return True
        if self.find_grant(gid):
            self.deleted_bg_grants.add(gid)
            return True
        return False

    # ------------------------------------------------------------------ roles
    def role_definition_id(self, role: str) -> str:
        return ROLE_TEMPLATES[role] if role in ROLE_TEMPLATES else role

    def add_role(self, u: User, role: str, *, created: datetime | None = None, log: bool = True) -> dict:
        # roles live in the tenant-wide table, so the user object itself need not be pinned
        rd = self.role_definition_id(role)
        rid = ids.role_assignment_id(rd, u.id)
        a = {"id": rid, "principalId": u.id, "roleDefinitionId": rd, "directoryScopeId": "/",
             "_created": created or self.now()}
        self.role_assignments[rid] = a
        if log:
            self.log("POST", "/roleManagement/directory/roleAssignments", u, detail={"role": role, "id": rid})
        return a

    def add_eligible_role(self, u: User, role: str, *, start: datetime | None = None, end: datetime | None = None,
                          scope: str = "/", log: bool = True) -> dict:
        """A PIM-eligible assignment (a unifiedRoleEligibilitySchedule): not active until the user activates it."""
        rd = self.role_definition_id(role)
        start = start or self.now()
        expiration = ({"type": "afterDateTime", "endDateTime": iso(end), "duration": None} if end else
                      {"type": "noExpiration", "endDateTime": None, "duration": None})
        base = ids.role_assignment_id(rd, u.id, scope)
        eid = base + "-e"
        e = {"id": eid, "principalId": u.id, "roleDefinitionId": rd, "directoryScopeId": scope, "appScopeId": None,
             "createdUsing": base, "createdDateTime": iso(start), "modifiedDateTime": None, "status": "Provisioned",
             "memberType": "Direct",
             "scheduleInfo": {"startDateTime": iso(start), "recurrence": None, "expiration": expiration}}
        self.eligibility = [x for x in self.eligibility if x["id"] != eid]
        self.eligibility.append(e)
        if log:
            self.log("POST", "/roleManagement/directory/roleEligibilityScheduleRequests", u,
                     detail={"action": "adminAssign", "role": role, "id": eid})
        return e

    def eligible_roles_of(self, u: User) -> list[str]:
        names = {v: k for k, v in ROLE_TEMPLATES.items()}
        return [names.get(e["roleDefinitionId"], e["roleDefinitionId"]) for e in self.eligibility
                if e["principalId"] == u.id]

    def add_principal_role(self, principal_id: str, role: str, *, created: datetime | None = None) -> dict:
        """An active assignment for a non-user principal (a service principal), e.g. a planted app in a role."""
        rd = self.role_definition_id(role)
        rid = ids.role_assignment_id(rd, principal_id)
        a = {"id": rid, "principalId": principal_id, "roleDefinitionId": rd, "directoryScopeId": "/",
             "_created": created or self.now()}
        self.role_assignments[rid] = a
        return a

    def add_app_role_assignment(self, client: str, resource: str, role: str, *, created: datetime | None = None,
                                log: bool = True) -> dict:
        """Give the service principal ``client`` (object id or display name) the application permission ``role``
        (an appRoles[] ``value`` such as "Mail.ReadWrite" or "full_access_as_app") on the resource service principal
        named ``resource`` ("Microsoft Graph", "Office 365 Exchange Online"). Adding it again changes nothing."""
        cid = client if client in self.service_principals else self.sp_by_name[client]
        rid = resource if resource in self.service_principals else self.sp_by_name[resource]
        csp, rsp = self.service_principals[cid], self.service_principals[rid]
        role_id = next((r["id"] for r in rsp.get("appRoles") or () if r.get("value") == role), None)
        if role_id is None:
            raise KeyError(f"{rsp['displayName']} has no app role {role!r}")
        # Graph's ids are base64url: the principal's GUID bytes, then 16 more bytes (43 characters, no padding).
        raw = uuid.UUID(cid).bytes_le + hashlib.sha256(f"{rid}|{role_id}".encode()).digest()[:16]
        aid = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if aid in self.app_role_assignments:
            return self.app_role_assignments[aid]
        a = {"id": aid, "deletedDateTime": None, "appRoleId": role_id, "createdDateTime": iso(created or self.now()),
             "principalDisplayName": csp["displayName"], "principalId": cid, "principalType": "ServicePrincipal",
             "resourceDisplayName": rsp["displayName"], "resourceId": rid}
        self.app_role_assignments[aid] = a
        if log:
            self.log("POST", f"/servicePrincipals/{rid}/appRoleAssignedTo", None,
                     detail={"id": aid, "principalId": cid, "appRole": role})
        return a

    def app_roles_of(self, client: str) -> list[str]:
        """The application permissions (role values) the service principal ``client`` (id or name) holds."""
        cid = client if client in self.service_principals else self.sp_by_name[client]
        out = []
        for a in self.app_role_assignments.values():
            if a["principalId"] == cid:
                rsp = self.service_principals[a["resourceId"]]
                out.append(next((r["value"] for r in rsp.get("appRoles") or () if r["id"] == a["appRoleId"]),
                                a["appRoleId"]))
        return out

    def add_transport_rule(self, name: str, *, changed: datetime | None = None, log: bool = True,
                           **props: Any) -> dict:
        """A new mail-flow rule (``New-TransportRule -Name name ...``) at the lowest priority; ``props`` are the
        rule's properties in Get-TransportRule's names (``BlindCopyTo=["x@y"]``, ``SetSCL=-1``, ``State="Disabled"``).
        A rule of the same name is replaced in place (``Set-TransportRule``)."""
        existing = next((r for r in self.transport_rules if r["Name"].lower() == name.lower()), None)
        rule = {"Name": name, "State": "Enabled", "Mode": "Enforce", **props,
                "_guid": existing["_guid"] if existing else str(uuid.uuid5(uuid.UUID(self.tenant_id), f"etr:{name}")),
                "_changed": changed or self.now()}
        if existing is not None:
            self.transport_rules[self.transport_rules.index(existing)] = rule
        else:
            self.transport_rules.append(rule)
        if log:
            self.log("Set-TransportRule" if existing else "New-TransportRule", "TransportRule", None,
                     detail={"Name": name, "parameters": {k: v for k, v in props.items() if not k.startswith("_")}})
        return rule

    # ------------------------------------------------------------------ groups
    def add_group(self, name: str, *, assignable: bool = False, security: bool = True, mail: bool = False,
                  group_types: list[str] | tuple[str, ...] = (), description: str | None = None,
                  created: datetime | None = None) -> dict:
        """A new Entra group (cloud, assigned membership). ``assignable``: isAssignableToRole, which Entra only allows
        on a security group created that way (immutable afterwards); only such groups can hold directory roles."""
        if assignable and not security:
            raise ValueError("a role-assignable group must be a security group (securityEnabled true)")
        gid = ids.guid_for(self.seed, 330, len(self.groups))
        nick = re.sub(r"[^A-Za-z0-9]", "", name) or "group"
        g = {"id": gid, "deletedDateTime": None, "classification": None, "createdDateTime": iso(created or self.now()),
             "description": description, "displayName": name, "groupTypes": list(group_types),
             "isAssignableToRole": bool(assignable), "mail": f"{nick.lower()}@{self.primary_domain}" if mail else None,
             "mailEnabled": bool(mail), "mailNickname": nick, "membershipRule": None,
             "onPremisesSyncEnabled": None, "securityEnabled": bool(security), "visibility": "Private"}
        self.groups[gid] = g
        self.group_members[gid] = []
        return g

    def group(self, key: str) -> dict:
        """A group by object id or display name (KeyError when there is none)."""
        if key in self.groups:
            return self.groups[key]
        k = key.lower()
        for g in self.groups.values():
            if g["id"].lower() == k or g["displayName"].lower() == k:
                return g
        raise KeyError(key)

    def _member_id(self, member: User | dict | str) -> str:
        if isinstance(member, User):
            return member.id
        if isinstance(member, dict):
            return member["id"]
        if member in self.groups or any(g["displayName"].lower() == member.lower() for g in self.groups.values()):
            return self.group(member)["id"]
        return self.user(member).id

    def add_group_member(self, group: dict | str, member: User | dict | str, *, log: bool = True,
                         allow_nesting: bool = False) -> bool:
        """Add a direct member (a user, or a group) to ``group``; False when it already is one.

        Entra refuses a group as a member of a role-assignable group ("Group nesting isn't supported", groups-concept);
        ``allow_nesting`` builds that state anyway, only for tests of code that must cope if it is ever seen."""
        g = group if isinstance(group, dict) else self.group(group)
        mid = self._member_id(member)
        if mid in self.groups and g["isAssignableToRole"] and not allow_nesting:
            raise ValueError(f"group nesting is not supported for the role-assignable group {g['displayName']!r}")
        if mid == g["id"]:
            raise ValueError("a group cannot be a member of itself")
        members = self.group_members[g["id"]]
        if mid in members:
            return False
        members.append(mid)
        if log:
            self.log("POST", f"/groups/{g['id']}/members/$ref", self._member_label(mid),
                     detail={"group": g["displayName"], "groupId": g["id"], "memberId": mid})
        return True

    def remove_group_member(self, group: dict | str, member: User | dict | str, *, log: bool = True) -> bool:
        g = group if isinstance(group, dict) else self.group(group)
        mid = self._member_id(member)
        members = self.group_members[g["id"]]
        if mid not in members:
            return False
        members.remove(mid)
        if log:
            self.log("DELETE", f"/groups/{g['id']}/members/{mid}/$ref", self._member_label(mid),
                     detail={"group": g["displayName"], "groupId": g["id"], "memberId": mid})
        return True

    def _member_label(self, mid: str) -> User | str:
        if mid in self.groups:
            return self.groups[mid]["displayName"]
        u = self.find_user(mid)
        return u if u is not None else mid

    def transitive_members(self, gid: str) -> list[str]:
        """Every member id of ``gid``, nested groups flattened (the nested groups themselves included), once each."""
        out: list[str] = []
        seen: set[str] = {gid}
        stack = list(reversed(self.group_members.get(gid, [])))
        while stack:
            mid = stack.pop()
            if mid in seen:
                continue
            seen.add(mid)
            out.append(mid)
            if mid in self.groups:
                stack.extend(reversed(self.group_members.get(mid, [])))
        return out

    def member_of(self, object_id: str) -> list[str]:
        """Ids of the groups ``object_id`` (a user or a group) is a direct member of."""
        return [gid for gid, members in self.group_members.items() if object_id in members]

    def transitive_member_of(self, object_id: str) -> list[str]:
        out: list[str] = []
        todo = self.member_of(object_id)
        while todo:
            gid = todo.pop(0)
            if gid in out:
                continue
            out.append(gid)
            todo.extend(self.member_of(gid))
        return out

    def groups_of(self, u: User | str) -> list[str]:
        """Display names of the groups the user is a DIRECT member of (tests)."""
        uid = u.id if isinstance(u, User) else self.user(u).id
        return [self.groups[g]["displayName"] for g in self.member_of(uid)]

    def add_group_role(self, group: dict | str, role: str, *, created: datetime | None = None) -> dict:
        """An active directory role assigned to a role-assignable group: its members hold the role through it."""
        g = group if isinstance(group, dict) else self.group(group)
        if not g["isAssignableToRole"]:
            raise ValueError(f"group {g['displayName']!r} is not role-assignable (isAssignableToRole false)")
        return self.add_principal_role(g["id"], role, created=created)

    def roles_of(self, u: User) -> list[str]:
        names = {v: k for k, v in ROLE_TEMPLATES.items()}
        return [names.get(a["roleDefinitionId"], a["roleDefinitionId"]) for a in self.role_assignments.values()
                if a["principalId"] == u.id]

    # ------------------------------------------------------------------ rules (mutation helpers)
    def resolve_folder_ref(self, u: User, ref: str) -> str:
        """A rule's moveToFolder in data files may be a folder path ('RSS Feeds', 'Inbox/Invoices') or an id."""
        folders = self.folders(u)
        if ref in folders:
            return ref
        wk = self.well_known_folder(u, ref) if "/" not in ref and "\\" not in ref else None
        if wk is not None and wk.displayName.lower() == ref.lower():
            return wk.id
        return self.folder_by_name(u, ref).id

    def add_rule(self, u: User | str, *, displayName: str, conditions: dict | None = None, actions: dict | None = None,
                 exceptions: dict | None = None, isEnabled: bool = True, hidden: bool = False, isReadOnly: bool = False,
                 hasError: bool = False, exchange_extra: dict | None = None, sequence: int | None = None,
                 log: bool = True) -> Rule:
        """Plant an inbox rule. ``actions.moveToFolder``/``copyToFolder`` may name a folder path."""
        if isinstance(u, str):
            u = self.user(u)
        if log:
            self.mark_dirty(u)
        rules = u._rules if u._rules is not None else None
        if rules is None:
            u._rules = []
            rules = u._rules
            if u.mailbox is not None and not u.explicit:
                self.folders(u)
                self._generate_background_rules(u)
        acts = dict(actions or {})
        for k in ("moveToFolder", "copyToFolder"):
            if k in acts and acts[k]:
                acts[k] = self.resolve_folder_ref(u, acts[k])
        ri = self.next_rule_identity(u)
        visible = [r for r in rules if not r.system]
        seq = sequence if sequence is not None else (max((r.sequence for r in visible), default=0) + 1)
        r = Rule(id=ids.rule_graph_id(ri), rule_identity=ri, displayName=displayName, sequence=seq,
                 conditions=dict(conditions or {}), exceptions=dict(exceptions or {}), actions=acts, isEnabled=isEnabled,
                 hidden=hidden, isReadOnly=isReadOnly, hasError=hasError, exchange_extra=dict(exchange_extra or {}))
        # keep the system Junk rule last
        sys_rules = [x for x in rules if x.system]
        for x in sys_rules:
            rules.remove(x)
        rules.append(r)
        rules.extend(sys_rules)
        if log:
            self.log("POST", f"/users/{u.id}/mailFolders/inbox/messageRules", u, detail={"id": r.id, "displayName": displayName})
        return r

    def remove_rule(self, u: User | str, rule_id_or_name: str, *, log: bool = True) -> Rule:
        if isinstance(u, str):
            u = self.user(u)
        self.mark_dirty(u)
        rules = self.rules(u)
        r = next(x for x in rules if x.id == rule_id_or_name or x.displayName == rule_id_or_name
                 or str(x.rule_identity) == rule_id_or_name)
        rules.remove(r)
        if log:
            self.log("DELETE", f"/users/{u.id}/mailFolders/inbox/messageRules/{r.id}", u, detail={"displayName": r.displayName})
        return r

    def add_many_rules(self, u: User | str, n: int, *, prefix: str = "Rule") -> None:
        if isinstance(u, str):
            u = self.user(u)
        self.mark_dirty(u)
        for k in range(n):
            self.add_rule(u, displayName=f"{prefix} {k}", conditions={"subjectContains": [f"project-{k}"]},
                          actions={"moveToFolder": "Inbox/Projects"}, log=False)

    def set_forwarding(self, u: User | str, smtp: str | None = None, address: str | None = None,
                       deliver_and_forward: bool = False, log: bool = True) -> None:
        if isinstance(u, str):
            u = self.user(u)
        self.mark_dirty(u)
        assert u.mailbox is not None, "user has no mailbox"
        u.mailbox.forwarding_smtp = smtp
        u.mailbox.forwarding_address = address
        u.mailbox.deliver_and_forward = deliver_and_forward
        if log:
            self.log("Set-Mailbox", "Set-Mailbox", u, detail={"ForwardingSmtpAddress": smtp, "ForwardingAddress": address})

    def add_delegate(self, u: User | str, trustee: str, rights: str = "FullAccess", log: bool = True) -> None:
        if isinstance(u, str):
            u = self.user(u)
        self.mark_dirty(u)
        if rights == "SendAs":
            self.recipient_permissions(u).append({"Trustee": trustee, "AccessRights": ["SendAs"], "AccessControlType": "Allow",
                                                  "IsInherited": False, "InheritanceType": "None"})
        elif rights == "SendOnBehalf":
            assert u.mailbox is not None
            u.mailbox.grant_send_on_behalf.append(trustee)
        else:
            self.mailbox_permissions(u).append({"User": trustee, "AccessRights": [rights], "IsInherited": False,
                                                "Deny": False, "InheritanceType": "All"})
        if log:
            self.log("Add-MailboxPermission", "Add-MailboxPermission", u, detail={"trustee": trustee, "rights": rights})

    def block_sender(self, u: User | str, reason: str = "OutboundSpamLimitExceeded", log: bool = True) -> None:
        if isinstance(u, str):
            u = self.user(u)
        self.mark_dirty(u)
        assert u.mailbox is not None
        u.mailbox.blocked = {"Reason": reason, "CreatedDatetime": iso(self.now())}
        if log:
            self.log("Block-Sender", "Block-Sender", u, detail={"reason": reason})

    # ------------------------------------------------------------------ inspection helpers
    def is_blocked(self, upn: str) -> bool:
        u = self.user(upn)
        return bool(u.mailbox and u.mailbox.blocked)

    def visible_rules(self, upn: str) -> list[Rule]:
        return [r for r in self.rules(self.user(upn)) if not r.hidden]

    def hidden_rules(self, upn: str) -> list[Rule]:
        return [r for r in self.rules(self.user(upn)) if r.hidden]

    def password_changed(self, upn: str) -> bool:
        return self.user(upn).password_changed_at is not None

    def set_password(self, u: User, password: str, force: bool) -> None:
        self.mark_dirty(u)
        u.password_hash = hashlib.sha256(self.password_salt + password.encode()).hexdigest()
        u.password_changed_at = self.now()
        u.lastPasswordChangeDateTime = u.password_changed_at
        u.force_change_password = force

    def label_of(self, upn: str) -> dict:
        return self.labels.get(upn.lower(), {"label": "plain", "classes": [], "techniques": [], "scenario": None, "notes": ""})

    # ------------------------------------------------------------------ mutation log
    def log(self, method: str, path: str, target: User | str | None, detail: dict | None = None) -> None:
        if isinstance(target, User):
            self.mark_dirty(target)
        elif isinstance(target, str):
            idx = self.find_index(target)
            if idx is not None and idx >= len(self.explicit):
                self.mark_dirty(self.user_at(idx, keep=True))
        tgt = target.userPrincipalName if isinstance(target, User) else target
        self.mutations.append({"time": iso(self.now()), "method": method, "path": path, "target": tgt,
                               "detail": detail or {}})

    def mutations_for(self, upn: str) -> list[dict]:
        return [m for m in self.mutations if (m["target"] or "").lower() == upn.lower()]
