"""API key material: generation, parsing and hashing.

A key reads `sp-<id>_<secret>`: `id` (12 hex characters) names the stored row
and may appear in logs and audit entries; `secret` is 32 random bytes,
base64url. Only SHA-256 of the whole key is stored; a presented key is
compared with it in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sp-"
_KEY = re.compile(r"^sp-([0-9a-f]{12})_([A-Za-z0-9_-]{43,})$")


def generate() -> tuple[str, str]:
    """A new key: (key id, the full key to show once)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def with_new_secret(key_id: str) -> str:
    """The key `key_id` with a fresh secret (rotation keeps the id)."""
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, or None."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_digest: str) -> bool:
    """Constant-time check of a presented key against its stored digest."""
    return hmac.compare_digest(digest(key), stored_digest)


def redact(text: str) -> str:
    """`text` with anything shaped like a sparkplane key masked (for logs and errors)."""
    return re.sub(r"sp-([0-9a-f]{12})_[A-Za-z0-9_-]+", r"sp-\1_…", text)
