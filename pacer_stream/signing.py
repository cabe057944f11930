"""HMAC-SHA256 authentication of operator commands and budget updates.

Why: an emergency stop, a resume or a budget change moves money; when
``settings.require_signed_commands`` is on, only holders of a shared key may issue
them, and a captured record cannot be replayed. The scheme:

* the signer fills ``key_id``, a fresh random ``nonce`` and ``expires_at``, then signs
  ``record.signing_bytes()`` (the canonical encoding without ``signature``, keys
  sorted -- see ``records``) with HMAC-SHA256 and puts the lowercase hex digest in
  ``signature``;
* the worker recomputes the digest with the key named by ``key_id`` (keys come from
  ``settings.command_keys``: ``key_id:secret`` pairs separated by commas) and compares
  in constant time; it refuses records past ``expires_at``, records valid for more than
  :data:`MAX_VALIDITY_S` (so remembered nonces stay bounded), and nonces it has already
  accepted for the campaign (replays). Accepted nonces are kept, until they expire, in
  the campaign's table value, so the protection survives restarts.

Every rejection raises :class:`CommandRejected` with a stable ``code`` (the DLQ error
code) and the worker writes an audit log line for every signed-command decision.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from msgspec.structs import replace

from pacer_stream.errors import PacerError
from pacer_stream.wire.records import BudgetRecord, CommandRecord

#: Longest accepted validity of a signed record (bounds the remembered nonces).
MAX_VALIDITY_S: Final = 24 * 3600.0
#: Accepted nonces remembered per campaign, at most: beyond it a signed record is
#: refused (``too_many_nonces``) rather than forgetting a live nonce, which would let it
#: be replayed. Operators send a few commands a day; a key holder flooding one campaign
#: is stopped here.
MAX_NONCES: Final = 10_000

UNSIGNED: Final = "unsigned"
UNKNOWN_KEY: Final = "unknown_key_id"
BAD_SIGNATURE: Final = "bad_signature"
EXPIRED: Final = "expired"
EXPIRY_TOO_FAR: Final = "expiry_too_far"
REPLAYED: Final = "replayed"
TOO_MANY_NONCES: Final = "too_many_nonces"

Signed = TypeVar("Signed", BudgetRecord, CommandRecord)


class CommandRejected(PacerError):
    """A command or budget record failed authentication; ``code`` says why."""

    code = "command_rejected"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def parse_keys(spec: str) -> dict[str, bytes]:
    """``"k1:secret1,k2:secret2"`` -> ``{"k1": b"secret1", ...}`` (blank entries ignored)."""
    keys: dict[str, bytes] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key_id, sep, secret = part.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError("command_keys entries must look like key_id:secret")
        keys[key_id.strip()] = secret.encode("utf-8")
    return keys


def digest(record: BudgetRecord | CommandRecord, secret: bytes) -> str:
    return hmac.new(secret, record.signing_bytes(), hashlib.sha256).hexdigest()


def sign(
    record: Signed,
    key_id: str,
    secret: bytes,
    *,
    now: datetime | None = None,
    ttl_s: float = 300.0,
    nonce: str | None = None,
) -> Signed:
    """A copy of ``record`` with ``key_id``, ``nonce``, ``expires_at`` and ``signature``."""
    issued = now or datetime.now(UTC)
    unsigned = replace(
        record,
        key_id=key_id,
        nonce=nonce or secrets.token_hex(16),
        expires_at=issued + timedelta(seconds=ttl_s),
        signature=None,
    )
    return replace(unsigned, signature=digest(unsigned, secret))


def verify(
    record: BudgetRecord | CommandRecord,
    keys: Mapping[str, bytes],
    now: datetime,
    nonces: MutableMapping[str, float],
) -> None:
    """Accept ``record`` (and remember its nonce in ``nonces``) or raise
    :class:`CommandRejected`. ``nonces`` maps nonce -> expiry (epoch seconds)."""
    ts = now.timestamp()
    for n, exp in list(nonces.items()):
        if exp <= ts:
            del nonces[n]
    if not (record.signature and record.key_id and record.nonce and record.expires_at):
        raise CommandRejected(UNSIGNED, "signature, key_id, nonce and expires_at are required")
    secret = keys.get(record.key_id)
    if secret is None:
        raise CommandRejected(UNKNOWN_KEY, f"unknown key_id {record.key_id!r}")
    if not hmac.compare_digest(digest(record, secret), record.signature.lower()):
        raise CommandRejected(BAD_SIGNATURE, "signature does not match the record")
    expires = record.expires_at.timestamp()
    if expires <= ts:
        raise CommandRejected(EXPIRED, f"expired at {record.expires_at.isoformat()}")
    if expires > ts + MAX_VALIDITY_S:
        raise CommandRejected(
            EXPIRY_TOO_FAR, f"valid for more than {int(MAX_VALIDITY_S)} s: refused"
        )
    if record.nonce in nonces:
        raise CommandRejected(REPLAYED, f"nonce {record.nonce!r} was already used")
    if len(nonces) >= MAX_NONCES:
        raise CommandRejected(
            TOO_MANY_NONCES, f"{MAX_NONCES} signed records of this campaign are still valid"
        )
    nonces[record.nonce] = expires
