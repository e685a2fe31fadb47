"""Deterministic, opaque-looking identifiers (GUIDs, Outlook ids, grant and role-assignment ids)."""

from __future__ import annotations

import base64
import hashlib
import uuid

M64 = (1 << 64) - 1
M48 = (1 << 48) - 1
_MULT = 0x9E3779B97F4B  # odd, so index -> index * _MULT mod 2**48 is a bijection
_MULT_INV = pow(_MULT, -1, 1 << 48)


def mix(*parts: int) -> int:
    """splitmix64 over several integers: cheap, deterministic, well distributed."""
    x = 0x243F6A8885A308D3
    for p in parts:
        x = (x ^ (p & M64)) + 0x9E3779B97F4A7C15 & M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        x = z ^ (z >> 31)
    return x


def guid_for(seed: int, salt: int, index: int) -> str:
    """A random-looking v4 GUID whose last 48 bits encode ``index`` (XOR a seed mask) so it can be inverted."""
    hi = (mix(seed, salt, index, 1) << 16) | (mix(seed, salt, index, 2) & 0xFFFF)  # 80 bits
    low = (index * _MULT + mix(seed, salt, 0xABCDEF)) & M48
    h = f"{hi:020x}"[-20:]
    h = h[:12] + "4" + h[13:16] + "89ab"[int(h[16], 16) & 3] + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{low:012x}"


def guid_index(seed: int, salt: int, guid: str) -> int | None:
    """Inverse of :func:`guid_for` (None when ``guid`` was not produced by it)."""
    g = guid.strip().lower()
    if len(g) != 36 or g[8] != "-" or g[23] != "-":
        return None
    try:
        low = int(g[24:], 16)
    except ValueError:
        return None
    idx = ((low - mix(seed, salt, 0xABCDEF)) * _MULT_INV) & M48
    if idx < 0 or idx > 50_000_000 or guid_for(seed, salt, idx) != g:
        return None
    return idx


def random_guid(*parts: int) -> str:
    return str(uuid.UUID(int=(mix(*parts, 3) << 64) | mix(*parts, 4), version=4))


def guid_le_bytes(g: str) -> bytes:
    return uuid.UUID(g).bytes_le


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def outlook_id(user_id: str, kind: str, key: str) -> str:
    """Outlook-style opaque id, e.g. AAMkAGI2... (URL-safe base64 with padding, like Graph's)."""
    digest = hashlib.sha256(f"{user_id}|{kind}|{key}".encode()).digest()
    raw = b"\x00\x00\x00\x00" + uuid.UUID(user_id).bytes + b"\x00\x2e\x00" + digest[:22] + b"\x01\x00" + digest[22:26]
    return "AAMkAG" + base64.urlsafe_b64encode(raw).decode()


def rule_graph_id(rule_identity: int) -> str:
    """Graph messageRule ids look like 'AQAAAJ5dZqA=' (8 bytes, standard base64); avoid '/' and '+'."""
    low = rule_identity & 0xFFFFFFFF
    for bump in range(64):
        s = base64.b64encode(b"\x01\x00\x00\x00" + ((low + bump) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
        if "/" not in s and "+" not in s:
            return s
    return base64.urlsafe_b64encode(b"\x01\x00\x00\x00" + low.to_bytes(4, "big")).decode()


def grant_id(client_id: str, resource_id: str, principal_id: str | None) -> str:
    """Real oauth2PermissionGrant ids are base64url(client || resource [|| principal]) GUID bytes."""
    raw = guid_le_bytes(client_id) + guid_le_bytes(resource_id)
    if principal_id:
        raw += guid_le_bytes(principal_id)
    return b64url(raw)


def grant_parts(gid: str) -> tuple[str, str, str | None] | None:
    try:
        raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) not in (32, 48):
        return None
    parts = [str(uuid.UUID(bytes_le=raw[i:i + 16])) for i in range(0, len(raw), 16)]
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def role_assignment_id(role_definition_id: str, principal_id: str, scope: str = "/") -> str:
    """Unified role assignment ids look like base64url(roleDef || principal) + '-1'."""
    base = b64url(guid_le_bytes(role_definition_id) + guid_le_bytes(principal_id))
    return base + "-1" if scope == "/" else base + "-" + hashlib.sha256(scope.encode()).hexdigest()[:6]


def fido_id(*parts: int) -> str:
    return b64url(mix(*parts, 7).to_bytes(8, "big") + mix(*parts, 8).to_bytes(8, "big"))[:22]
