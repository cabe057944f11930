"""A can-spend grant as a small changelog record instead of a write of the whole
campaign.

Why: a grant changes only its reservation, the channel's reserved total and the answer
remembered for the request (:mod:`pacer_stream.core.grants`), but writing the campaign's
value costs its whole size (a few KB) per grant and holds the reply until that larger
write is delivered. So a plain grant (on a CLOSED channel, no alert or transition with
it) writes one record on the campaign's changelog partition::

    GRANT_PREFIX + campaign_id + "\\x1f" + request offset
        ->  [channel, amount, request id, reservation id, created at, expires at]

and the reply waits only for that record. The campaign's value in memory has the grant
already; the next time the value is written for any reason, it carries the grant, and
the grant records it covers are deleted right after it on the same partition.

After a restart, a grant record whose request offset is above the recovered value's
high-water mark for the requests topic is put back into the state
(:func:`~pacer_stream.core.grants.restore`); one at or below it is in the value already
and is deleted. A request replayed after the restart finds its grant remembered and
gets the same reservation back, as any retry does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import orjson

from pacer_stream.core.grants import Grant, restore
from pacer_stream.core.types import ChannelType
from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.event_ids import SavedRecords
from pacer_stream.streams.processor import Message
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import topics

log = get_logger("pacer_stream.grants")

#: Sorts after every campaign key and before the event-id records.
GRANT_PREFIX: Final = "\U0010fffe"
GRANT_PREFIX_BYTES: Final = GRANT_PREFIX.encode()
SEP: Final = "\x1f"


def grant_key(campaign_id: str, offset: int) -> bytes:
    return f"{GRANT_PREFIX}{campaign_id}{SEP}{offset}".encode()


def grant_prefix(campaign_id: str) -> bytes:
    return f"{GRANT_PREFIX}{campaign_id}{SEP}".encode()


def is_grant_key(raw: bytes) -> bool:
    return raw.startswith(GRANT_PREFIX_BYTES)


def split_grant_key(raw: bytes) -> tuple[str, int]:
    """``(campaign id, request offset)`` of a raw grant-record key."""
    campaign_id, _, offset = raw[len(GRANT_PREFIX_BYTES) :].decode().rpartition(SEP)
    return campaign_id, int(offset)


def encode_grant(g: Grant) -> bytes:
    return orjson.dumps(
        [g.channel.value, g.amount, g.request_id, g.reservation_id, g.created_at, g.expires_at]
    )


def decode_grant(data: bytes) -> Grant:
    channel, amount, request_id, reservation_id, created_at, expires_at = orjson.loads(data)
    return Grant(
        ChannelType(channel),
        int(amount),
        str(request_id),
        str(reservation_id),
        float(created_at),
        float(expires_at),
    )


@dataclass(slots=True)
class _Campaign:
    partition: int
    #: Keys of grant records the campaign's saved value does not cover yet.
    open: list[bytes] = field(default_factory=list)
    #: Keys of grant records to delete (covered by a value read back after a restart).
    stale: list[bytes] = field(default_factory=list)


class GrantLog:
    """The grant records of the worker's campaigns (see the module docstring)."""

    def __init__(self, changelog: str, saved: SavedRecords | None = None) -> None:
        self.changelog = changelog
        self.saved = saved
        self.campaigns: dict[str, _Campaign] = {}
        #: campaign id -> grant records read by a recovery, not yet looked at.
        self.pending: dict[str, dict[bytes, bytes | None]] = {}

    def attach(self, stored: Stored) -> int:
        """Before a campaign's first use after a start: put back the grants its saved
        value does not cover; records a recovery read since are looked at too. Returns
        how many grants were put back (the state in memory is then ahead of its value)."""
        campaign_id = stored.campaign_id
        known = self.campaigns.get(campaign_id)
        restored = 0
        if known is None:
            known = self.campaigns[campaign_id] = _Campaign(stored.partition)
            if self.saved is not None:
                saved = self.saved.saved(grant_prefix(campaign_id), stored.partition)
                restored += self._merge(known, stored, saved)
        known.partition = stored.partition
        pending = self.pending.pop(campaign_id, None)
        if pending:
            restored += self._merge(known, stored, pending.items())
        return restored

    def recovered(self, raw_key: bytes, value: bytes | None) -> None:
        campaign_id = split_grant_key(raw_key)[0]
        self.pending.setdefault(campaign_id, {})[raw_key] = value

    def granted(self, stored: Stored, grant: Grant, offset: int) -> Message:
        """The record of a grant made by the request at ``offset``."""
        known = self.campaigns.setdefault(stored.campaign_id, _Campaign(stored.partition))
        key = grant_key(stored.campaign_id, offset)
        known.open.append(key)
        return Message(
            self.changelog, key, encode_grant(grant), stored.partition, stored.campaign_id
        )

    def covered(self, campaign_id: str) -> list[Message]:
        """The campaign's value is being written (after these deletions' grants): its
        grant records are no longer needed. Produce after the value."""
        known = self.campaigns.get(campaign_id)
        if known is None or not (known.open or known.stale):
            return []
        keys = known.stale + known.open
        known.open, known.stale = [], []
        return [Message(self.changelog, k, None, known.partition) for k in keys]

    def forget(self, campaign_id: str) -> list[Message]:
        self.pending.pop(campaign_id, None)
        known = self.campaigns.pop(campaign_id, None)
        if known is None:
            return []
        return [Message(self.changelog, k, None, known.partition) for k in known.stale + known.open]

    def drop(self, campaign_id: str) -> None:
        self.campaigns.pop(campaign_id, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        for campaign_id in [c for c, k in self.campaigns.items() if k.partition in partitions]:
            self.drop(campaign_id)

    @staticmethod
    def _merge(
        known: _Campaign, stored: Stored, records: Iterable[tuple[bytes, bytes | None]]
    ) -> int:
        state = stored.state
        mark = state.offsets.get(topics.CAN_SPEND_REQUESTS, -1)
        restored = 0
        for key, data in sorted(records, key=lambda kv: split_grant_key(kv[0])[1]):
            if data is None:
                if key in known.open:
                    known.open.remove(key)
                continue
            if split_grant_key(key)[1] <= mark:
                known.stale.append(key)  # the saved value carries it
            elif key not in known.open:
                restore(state, decode_grant(data))
                known.open.append(key)
                restored += 1
        if restored:
            log.info("grants_restored", campaign_id=state.campaign_id, grants=restored)
        return restored
