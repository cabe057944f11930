"""The records that share the ``campaigns`` changelog with the campaign values: a
campaign's event ids (:mod:`.event_ids`) and its grants since its value was last
written (:mod:`.grants`).

Why beside and not inside the value: both grow or change far more often than the rest
of a campaign, and writing the whole value for each change made every write carry them
(event ids) or cost a whole value per grant. Their keys start with a character no
campaign id can start with and that sorts after every one, so a store lists campaigns
by stopping at :data:`SIDE_RECORDS_START`, and one campaign's records of one kind are
one key range.

:class:`SideRecords` is what the worker and its table stores talk to: it routes records
a recovery reads to the right index, gives a campaign both when it is used, and forgets
them together.
"""

from __future__ import annotations

from typing import Final

from pacer_stream.streams.event_ids import ID_PREFIX_BYTES, EventIdIndex, is_id_key, split_key
from pacer_stream.streams.grants import GRANT_PREFIX_BYTES, GrantLog, is_grant_key, split_grant_key
from pacer_stream.streams.processor import Message
from pacer_stream.streams.stored import Stored

#: The smallest key of a record beside the values; every campaign key sorts before it.
SIDE_RECORDS_START: Final = min(GRANT_PREFIX_BYTES, ID_PREFIX_BYTES)


def is_side_key(raw: bytes) -> bool:
    return is_id_key(raw) or is_grant_key(raw)


def is_side_value(value: bytes) -> bool:
    """Whether a changelog value is a side record's: event-id and grant records are
    JSON arrays, campaign values JSON objects."""
    return value[:1] == b"["


def campaign_of(raw_key: bytes) -> str:
    """The campaign a changelog key belongs to (its own value, or a record beside it)."""
    if is_id_key(raw_key):
        return split_key(raw_key)[0]
    if is_grant_key(raw_key):
        return split_grant_key(raw_key)[0]
    return raw_key.decode()


class SideRecords:
    """Event-id windows and grant records of the worker's campaigns, kept together."""

    def __init__(self, event_ids: EventIdIndex, grants: GrantLog) -> None:
        self.event_ids = event_ids
        self.grants = grants

    def attach(self, stored: Stored) -> bool:
        """Give a campaign its event-id window and put back grants its value does not
        cover; True when grants were put back (the state is then ahead of its value)."""
        self.event_ids.attach(stored)
        return self.grants.attach(stored) > 0

    def recovered(self, raw_key: bytes, value: bytes | None) -> None:
        if is_id_key(raw_key):
            self.event_ids.recovered(raw_key, value)
        elif is_grant_key(raw_key):
            self.grants.recovered(raw_key, value)

    def forget(self, campaign_id: str) -> list[Message]:
        """A removed campaign: deletions of all its records."""
        return self.event_ids.forget(campaign_id) + self.grants.forget(campaign_id)

    def drop(self, campaign_id: str) -> None:
        self.event_ids.drop(campaign_id)
        self.grants.drop(campaign_id)

    def drop_partitions(self, partitions: set[int]) -> None:
        self.event_ids.drop_partitions(partitions)
        self.grants.drop_partitions(partitions)
