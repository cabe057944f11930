"""Every Redis key and reservation-id format of the fast path, in one place.

Why one module: the Lua scripts, the worker-side publisher, the bid-engine client, the
ACL file (``deploy/redis/users.acl``) and the docs must agree on names byte for byte.
Scattering f-strings over the code base is how a key ends up outside the ACL pattern or
outside the hash slot of its siblings.

Layout (``P`` = prefix, default ``pacer``; ``C`` = campaign id; ``H`` = channel value)::

    P:{C}:H:allowance   STRING  worker-owned: generation, granted micros, expiry stamp ...
    P:{C}:H:breaker     STRING  worker-owned: breaker state + expiry stamp
    P:{C}:H:ledger      HASH    script-owned: consumption of the current generation,
                                outstanding reservations, settled totals, epoch, and one
                                ``r:<request_id>`` field per reservation record
    P:{C}:H:timers      ZSET    script-owned: ``x:<request_id>`` scored by reservation
                                expiry, ``g:<request_id>`` scored by when its record is
                                forgotten (idempotency window end)

The ``{C}`` hash tag puts every key of a campaign in one Redis Cluster slot, so every
script (which touches the keys of one campaign/channel) is cluster-safe. The allowance
and breaker are plain strings on purpose: the bid-engine ACL user has no string write
command, so it cannot forge them even though Redis makes it hold write permission on
every key a script names (see ``docs/redis.md``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from pacer_stream.core import ids
from pacer_stream.core.types import ChannelType
from pacer_stream.errors import InvalidArgument, UnknownChannel, WrongType

#: Default key prefix. The ACL file's key patterns (``~pacer:*:ledger`` ...) assume it.
DEFAULT_PREFIX = "pacer"
#: Key suffixes (the last component of every key; ACL patterns match on them).
ALLOWANCE = "allowance"
BREAKER = "breaker"
LEDGER = "ledger"
TIMERS = "timers"
#: Timers members prefixes (ledger records are fields ``r:<request_id>``).
EXPIRY_MEMBER_PREFIX = "x:"
FORGET_MEMBER_PREFIX = "g:"
#: Reservation ids issued by the fast path start with this (the worker uses it to tell
#: fast-path reservations from its own in spend events).
RESERVATION_ID_PREFIX = "rsv1."
#: Longest campaign / request id accepted (bytes of UTF-8): the one id rule's bound,
#: which the Lua scripts check too (``_lib.lua``).
MAX_ID_BYTES = ids.MAX_ID_BYTES


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """The four keys of one campaign/channel, in the order every script expects."""

    allowance: str
    breaker: str
    ledger: str
    timers: str

    def all(self) -> list[str]:
        """KEYS[1..4] of the Lua scripts."""
        return [self.allowance, self.breaker, self.ledger, self.timers]


@dataclass(frozen=True, slots=True)
class ReservationRef:
    """What a reservation id encodes: where its record lives and which ledger epoch
    issued it (a record from a lost ledger must not be settled against a new one)."""

    campaign_id: str
    channel: ChannelType
    epoch: str
    request_id: str


def check_id(value: object, what: str) -> str:
    """A request id by the one id rule (``core.ids``)."""
    return ids.check_id(value, what)


def check_campaign_id(value: object) -> str:
    """A campaign id by the one id rule: it is also the hash tag, so no braces."""
    return ids.check_campaign_id(value)


def check_channel(value: object) -> ChannelType:
    """Accept a ChannelType or its lowercase value; anything else is unknown."""
    if isinstance(value, ChannelType):
        return value
    if not isinstance(value, str):
        raise WrongType(f"channel must be a ChannelType or str, got {type(value).__name__}")
    try:
        return ChannelType(value)
    except ValueError:
        raise UnknownChannel(f"unknown channel {value!r}") from None


def channel_keys(
    campaign_id: str, channel: ChannelType | str, *, prefix: str = DEFAULT_PREFIX
) -> ChannelKeys:
    """Keys of one campaign/channel (validated: safe to hand to Redis)."""
    cid = check_campaign_id(campaign_id)
    ch = check_channel(channel).value
    base = f"{prefix}:{{{cid}}}:{ch}"
    return ChannelKeys(
        allowance=f"{base}:{ALLOWANCE}",
        breaker=f"{base}:{BREAKER}",
        ledger=f"{base}:{LEDGER}",
        timers=f"{base}:{TIMERS}",
    )


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad).decode("utf-8")


def reservation_id(
    campaign_id: str, channel: ChannelType | str, epoch: str, request_id: str
) -> str:
    """Deterministic reservation id: a retried reserve gets the same id back.

    ``rsv1.<epoch>.<b64url(campaign_id)>.<channel>.<b64url(request_id)>`` -- base64 so
    any printable id round-trips; the epoch names the ledger that issued it.
    """
    ch = check_channel(channel).value
    return f"{RESERVATION_ID_PREFIX}{epoch}.{_b64(campaign_id)}.{ch}.{_b64(request_id)}"


def is_fastpath_reservation_id(value: str) -> bool:
    """True for ids issued by the fast path (the worker counts their spend separately,
    see ``RedisPublisher`` and ``docs/redis.md``)."""
    return value.startswith(RESERVATION_ID_PREFIX)


def parse_reservation_id(value: object) -> ReservationRef:
    """Inverse of :func:`reservation_id`; raises ``InvalidArgument`` on anything else."""
    if not isinstance(value, str):
        raise WrongType(f"reservation_id must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidArgument("reservation_id must not be empty")
    if not value.startswith(RESERVATION_ID_PREFIX):
        raise InvalidArgument("reservation_id was not issued by the fast path")
    parts = value[len(RESERVATION_ID_PREFIX) :].split(".")
    if len(parts) != 4 or not parts[0].isalnum():
        raise InvalidArgument("malformed reservation_id")
    epoch, cid_b64, ch, rid_b64 = parts
    try:
        cid = _unb64(cid_b64)
        rid = _unb64(rid_b64)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("malformed reservation_id") from None
    return ReservationRef(
        check_campaign_id(cid), check_channel(ch), epoch, check_id(rid, "request_id")
    )
