"""Signed heads of the audit chain, to keep off the box.

A hash chain cannot show that its newest entries were cut off, nor that it was
rewritten from some entry on: only a head recorded earlier, somewhere the
database's owner cannot reach, can. `sparkplane audit head` prints one, signed
so that whoever holds it can tell it was issued by this deployment:

    {"seq": 1234, "hash": "ab…", "tenant": null, "exported_at": "2026-12-03T…",
     "alg": "hmac-sha256", "signature": "9f…"}

The signature is HMAC-SHA256 (`audit_head_secret`) over the canonical JSON of
every other field (sorted keys, no whitespace, UTF-8). `sparkplane audit
verify --expect-head FILE` checks the signature, then that the chain still
holds that entry.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

HMAC_SHA256 = "hmac-sha256"
_SIGNED = ("seq", "hash", "tenant", "exported_at")


class HeadError(ValueError):
    """A head document that is malformed or whose signature does not hold."""


def _payload(doc: dict[str, Any]) -> bytes:
    return orjson.dumps({k: doc.get(k) for k in _SIGNED}, option=orjson.OPT_SORT_KEYS)


def sign(seq: int, digest: str, secret: str | None, tenant: str | None = None) -> dict[str, Any]:
    """The head document for (`seq`, `digest`); unsigned (`alg` null) without a secret."""
    doc: dict[str, Any] = {
        "seq": seq,
        "hash": digest,
        "tenant": tenant,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "alg": None,
        "signature": None,
    }
    if secret:
        doc["alg"] = HMAC_SHA256
        doc["signature"] = hmac.new(secret.encode(), _payload(doc), hashlib.sha256).hexdigest()
    return doc


def check(doc: Any, secret: str | None) -> str:
    """The head hash of a head document whose signature holds; HeadError otherwise.

    A signed document needs the secret to be checked; an unsigned one is refused
    when a secret is configured (a head kept off the box should be signed).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("hash"), str):
        raise HeadError("not a head document (no hash)")
    alg, signature = doc.get("alg"), doc.get("signature")
    if alg is None:
        if secret:
            raise HeadError("the head is not signed, and a signing secret is configured")
        return str(doc["hash"])
    if alg != HMAC_SHA256 or not isinstance(signature, str):
        raise HeadError(f"unknown signature algorithm {alg!r}")
    if not secret:
        raise HeadError("the head is signed: set audit_head_secret to check it")
    expected = hmac.new(secret.encode(), _payload(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise HeadError("the head's signature does not match: not issued with this secret")
    return str(doc["hash"])
