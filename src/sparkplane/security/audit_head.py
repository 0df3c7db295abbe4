"""Signed heads of the audit chain, to keep off the box.

A hash chain cannot show that its newest entries were cut off, nor that it was
rewritten from some entry on: only a head recorded earlier, somewhere the
database's owner cannot reach, can. `sparkplane audit head` prints one, signed
so that whoever holds it can tell it was issued by this deployment:

    {"seq": 1234, "hash": "ab…", "tenant": null, "exported_at": "2026-12-03T…",
     "alg": "hmac-sha256", "signature": "9f…"}

The signature covers the canonical JSON of `seq`, `hash`, `tenant` and
`exported_at` (sorted keys, no whitespace, UTF-8): Ed25519 with the private
key in `audit_head_key` (whoever holds only the public key can check a head,
not forge one), else HMAC-SHA256 with `audit_head_secret`. `sparkplane audit
verify --expect-head FILE` checks the signature, then that the chain still
holds that entry.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
_SIGNED = ("seq", "hash", "tenant", "exported_at")


class HeadError(ValueError):
    """A head document that is malformed or whose signature does not hold."""


def _payload(doc: dict[str, Any]) -> bytes:
    return orjson.dumps({k: doc.get(k) for k in _SIGNED}, option=orjson.OPT_SORT_KEYS)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; HeadError if it is not one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise HeadError(f"cannot read the Ed25519 private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HeadError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file (or a private key's); HeadError otherwise."""
    try:
        data = path.read_bytes()
        if b"PRIVATE KEY" in data:
            return load_private_key(path).public_key()
        key = serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise HeadError(f"cannot read the Ed25519 public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise HeadError(f"{path} is not an Ed25519 public key")
    return key


def sign(
    seq: int,
    digest: str,
    secret: str | None,
    tenant: str | None = None,
    private_key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """The head document for (`seq`, `digest`): signed with `private_key` (Ed25519) when
    given, else with `secret` (HMAC-SHA256); unsigned (`alg` null) with neither."""
    doc: dict[str, Any] = {
        "seq": seq,
        "hash": digest,
        "tenant": tenant,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "alg": None,
        "signature": None,
    }
    if private_key is not None:
        doc["alg"] = ED25519
        doc["signature"] = private_key.sign(_payload(doc)).hex()
    elif secret:
        doc["alg"] = HMAC_SHA256
        doc["signature"] = hmac.new(secret.encode(), _payload(doc), hashlib.sha256).hexdigest()
    return doc


def check(doc: Any, secret: str | None, public_key: Ed25519PublicKey | None = None) -> str:
    """The head hash of a head document whose signature holds; HeadError otherwise.

    An Ed25519 head needs the public key, an HMAC one the secret; an unsigned one
    is refused when either is configured (a head kept off the box should be signed).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("hash"), str):
        raise HeadError("not a head document (no hash)")
    alg, signature = doc.get("alg"), doc.get("signature")
    if alg is None:
        if secret or public_key is not None:
            raise HeadError("the head is not signed, and a signing key is configured")
        return str(doc["hash"])
    if not isinstance(signature, str):
        raise HeadError("the head's signature is missing")
    if alg == ED25519:
        if public_key is None:
            raise HeadError("the head is signed with Ed25519: set audit_head_key to check it")
        try:
            public_key.verify(bytes.fromhex(signature), _payload(doc))
        except (InvalidSignature, ValueError):
            raise HeadError(
                "the head's signature does not match: not issued with this key"
            ) from None
        return str(doc["hash"])
    if alg != HMAC_SHA256:
        raise HeadError(f"unknown signature algorithm {alg!r}")
    if not secret:
        raise HeadError("the head is signed: set audit_head_secret to check it")
    expected = hmac.new(secret.encode(), _payload(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise HeadError("the head's signature does not match: not issued with this secret")
    return str(doc["hash"])
