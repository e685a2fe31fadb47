"""The step registry and the safe order (interface.md, "Remediation steps").

Order: contain first (revoke sessions, reset the password), then remove the back-doors, then the optional
lock-downs, and ``unblock_sending`` last — only once the account is secured (Microsoft's step 4).
"""

from __future__ import annotations

from remediators._model import BaseStep
from remediators.block_sign_in import BlockSignIn
from remediators.disable_email_apps import DisableEmailApps
from remediators.disable_rules import DisableRules
from remediators.remove_admin_roles import RemoveAdminRoles
from remediators.remove_auth_methods import RemoveAuthMethods
from remediators.remove_delegates import RemoveDelegates
from remediators.remove_forwarding import RemoveForwarding
from remediators.reset_password import ResetPassword
from remediators.revoke_oauth_grants import RevokeOAuthGrants
from remediators.revoke_sessions import RevokeSessions
from remediators.unblock_sending import UnblockSending

ORDER: tuple[str, ...] = (
    "revoke_sessions", "reset_password",  # contain
    "remove_forwarding", "disable_rules", "remove_auth_methods", "revoke_oauth_grants", "remove_delegates",
    "remove_admin_roles", "block_sign_in", "disable_email_apps",  # back-doors, then optional lock-downs
    "unblock_sending",  # last, and only when everything before it succeeded
)
CONTAINMENT = ("revoke_sessions", "reset_password")
DEFAULT_PLAYBOOK: tuple[str, ...] = ("revoke_sessions", "reset_password", "remove_forwarding", "disable_rules",
                                     "unblock_sending")
OPTIONAL: frozenset[str] = frozenset({"block_sign_in", "disable_email_apps", "remove_admin_roles"})

STEPS: dict[str, BaseStep] = {s.name: s for s in (
    RevokeSessions(), ResetPassword(), RemoveForwarding(), DisableRules(), UnblockSending(), BlockSignIn(),
    DisableEmailApps(), RemoveAdminRoles(), RemoveAuthMethods(), RevokeOAuthGrants(), RemoveDelegates(),
)}

if set(STEPS) != set(ORDER):  # import-time consistency check that survives `python -O`
    raise ImportError("remediators.steps: STEPS and ORDER disagree")


def ordered(names: set[str] | list[str] | tuple[str, ...]) -> list[str]:
    wanted = set(names)
    return [n for n in ORDER if n in wanted]


def required_permissions(names: list[str] | tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """step -> least-privilege application permissions (for ``m365sweep check``)."""
    return {n: STEPS[n].permissions for n in (names or ORDER)}
