"""Join tokens and node credentials: generation, parsing and hashing.

    spj-<id>_<secret>   a join token, made by `sparkplane nodes token`: shown once,
                        stored hashed, expiring, revocable; any number of machines
                        may join with it until then
    spn-<id>_<secret>   a node key, given to an agent when it joins: the agent sends
                        it on every call to the server (stored hashed)
    spa-<secret>        an agent key, made by the agent: the server sends it on every
                        call to the agent, which compares it in constant time

Only SHA-256 digests of tokens and node keys are stored (as for API keys).
"""

from __future__ import annotations

import hmac
import re
import secrets

from sparkplane.security.keys import digest

TOKEN_PREFIX = "spj-"
NODE_KEY_PREFIX = "spn-"
AGENT_KEY_PREFIX = "spa-"
_TOKEN = re.compile(r"^spj-([0-9a-f]{12})_([A-Za-z0-9_-]{43,})$")
_NODE_KEY = re.compile(r"^spn-([0-9a-f]{32})_([A-Za-z0-9_-]{43,})$")

__all__ = [
    "digest",
    "matches",
    "new_agent_key",
    "new_join_token",
    "new_node_key",
    "node_id_of",
    "token_id_of",
]


def new_join_token() -> tuple[str, str]:
    """A new join token: (token id, the full token to show once)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed join token, or None."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def new_node_key(node_id: str) -> str:
    """A node key for `node_id` (a 32-hex id)."""
    return f"{NODE_KEY_PREFIX}{node_id}_{secrets.token_urlsafe(32)}"


def node_id_of(key: str) -> str | None:
    """The node id a well-formed node key names, or None."""
    match = _NODE_KEY.match(key)
    return match.group(1) if match else None


def new_agent_key() -> str:
    """A key the server must present to this agent."""
    return f"{AGENT_KEY_PREFIX}{secrets.token_urlsafe(32)}"


def matches(presented: str, stored_digest: str) -> bool:
    """Constant-time check of a presented secret against its stored digest."""
    return hmac.compare_digest(digest(presented), stored_digest)


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of two secrets kept in the clear (the agent key)."""
    return hmac.compare_digest(presented.encode(), expected.encode())
