"""JWT-shaped bearer tokens (HS256 with a per-tenant secret) so clients can read aud/tid/roles/exp."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

GRAPH_RESOURCE = "https://graph.microsoft.com"
EXCHANGE_RESOURCE = "https://outlook.office365.com"
SIM_APP_ID = "5e7a1c2d-9b3f-4c8e-a1d2-3f4b5c6d7e8f"


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def issue(secret: bytes, tenant_id: str, resource: str, roles: list[str], lifetime_s: int = 3600,
          app_id: str = SIM_APP_ID, generation: int = 0) -> str:
    now = int(time.time())
    header = {"typ": "JWT", "alg": "HS256", "kid": "m365sweep-simulator"}
    payload = {"aud": resource, "iss": f"https://sts.windows.net/{tenant_id}/", "iat": now, "nbf": now,
               "exp": now + lifetime_s, "app_displayname": "m365sweep", "appid": app_id, "appidacr": "2",
               "idtyp": "app", "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app_id)), "roles": sorted(roles),
               "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app_id)), "tid": tenant_id, "ver": "1.0",
               "uti": _b64(uuid.uuid4().bytes)[:22], "xms_simgen": generation}
    signing_input = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        _b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)


class TokenError(Exception):
    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


# Signature + claims checks of a token string are pure: cache the decoded payload (the simulator sees the same token
# on every request of a scan; HMAC + base64 + JSON per request was ~9% of its CPU). Expiry and the revocation
# generation are time/state dependent and are checked on every call, cached or not.
_VERIFIED: dict[tuple[bytes, str, str, str], dict] = {}


def validate(secret: bytes, token: str, tenant_id: str, resource: str, generation: int) -> dict:
    key = (secret, token, tenant_id, resource)
    payload = _VERIFIED.get(key)
    if payload is None:
        payload = _verify(secret, token, tenant_id, resource)
        if len(_VERIFIED) > 1024:
            _VERIFIED.clear()
        _VERIFIED[key] = payload
    now = time.time()
    if payload.get("exp", 0) <= now or payload.get("xms_simgen", 0) != generation:
        raise TokenError("Lifetime validation failed, the token is expired.", "expired")
    return payload


def _verify(secret: bytes, token: str, tenant_id: str, resource: str) -> dict:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("IDX14100: JWT is not well formed, there are no dots (.).", "malformed")
    signing_input = parts[0] + "." + parts[1]
    try:
        sig = _unb64(parts[2])
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, TypeError) as e:
        raise TokenError("Invalid JWT token. The token is malformed.", "malformed") from e
    if not hmac.compare_digest(sig, hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()):
        raise TokenError("Invalid JWT token. Signature is invalid.", "signature")
    if payload.get("tid") != tenant_id:
        raise TokenError("Access token validation failure. Invalid tenant.", "tenant")
    if payload.get("aud") != resource:
        raise TokenError("Access token validation failure. Invalid audience.", "audience")
    return payload
