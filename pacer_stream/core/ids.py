"""The one rule for ids: what a campaign, event, request or command id may be.

Every edge uses it -- the wire decoders (a refused id goes to the DLQ), the engine (a
``BudgetPacer`` caller gets a typed error) and the Redis key layout -- so an id accepted
anywhere is accepted everywhere. Before there was one rule, a campaign id such as
``a{b}``, one with a non-breaking space or of 200 accented letters passed the wire and
the engine but not the Redis keys, so its fast-path allowance was never published.

An id is a string of 1 to :data:`MAX_ID_BYTES` bytes of UTF-8, not blank, made of
printable characters only (``str.isprintable``: no control or format characters, no
line or paragraph separators, no space other than the ASCII space). A campaign id is
also the Redis Cluster hash tag of its keys, so it must not contain ``{`` or ``}``.
Ids the pacer itself generates (reservation ids, which embed two ids) may be up to
:data:`MAX_TOKEN_BYTES`.
"""

from __future__ import annotations

from typing import Final

from pacer_stream.errors import InvalidArgument, WrongType

MAX_ID_BYTES: Final = 128
MAX_TOKEN_BYTES: Final = 512
#: Stable codes (the DLQ's ``error_code``, ``PacerError.code``).
EMPTY_ID: Final = "empty_id"
INVALID_ID: Final = "invalid_id"
_HASH_TAG: Final = frozenset("{}")


def id_problem(
    value: str, *, campaign: bool = False, max_bytes: int = MAX_ID_BYTES
) -> tuple[str, str] | None:
    """``(code, why)`` when ``value`` is not a valid id, else None (``value`` is a str)."""
    if campaign:
        return _campaign_id_problem(value, max_bytes)
    return _id_problem(value, False, max_bytes)


#: Campaign ids found valid under the default size limit, oldest first (bounded).
_VALID_CAMPAIGN_IDS: dict[str, None] = {}
_VALID_CAMPAIGN_IDS_MAX: Final = 65_536


def _campaign_id_problem(value: str, max_bytes: int) -> tuple[str, str] | None:
    """Campaign ids repeat on every event of a campaign (the decoder and the engine
    both check them): the valid ones are remembered, for a bounded number of ids.

    A plain dict of the valid ids (the verdict of nearly every check) rather than an
    ``lru_cache``: an entry costs a dict slot (~50 bytes) where the cache's link, key
    and verdict took ~150, and a worker remembers one per campaign it holds. Invalid
    ids are checked again each time (they go to the DLQ, a rare and slower path)."""
    if max_bytes == MAX_ID_BYTES and value in _VALID_CAMPAIGN_IDS:
        return None
    problem = _id_problem(value, True, max_bytes)
    if problem is None and max_bytes == MAX_ID_BYTES:
        if len(_VALID_CAMPAIGN_IDS) >= _VALID_CAMPAIGN_IDS_MAX:
            del _VALID_CAMPAIGN_IDS[next(iter(_VALID_CAMPAIGN_IDS))]
        _VALID_CAMPAIGN_IDS[value] = None
    return problem


def forget_valid_campaign_ids() -> None:
    """Empty the cache of valid campaign ids (the next checks fill it again).

    For measurements: the cache is shared by the process and its table grows by
    doubling, so a memory measurement that starts with the ids of an earlier one held
    pays for the growth of a larger table (``bench.core_bench``)."""
    _VALID_CAMPAIGN_IDS.clear()


def _id_problem(value: str, campaign: bool, max_bytes: int) -> tuple[str, str] | None:
    if not value.strip():
        return EMPTY_ID, "must not be empty or blank"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return INVALID_ID, "is not valid Unicode text (lone surrogate)"
    if size > max_bytes:
        return INVALID_ID, f"is longer than {max_bytes} bytes of UTF-8 ({size})"
    if not value.isprintable():
        return INVALID_ID, "has a non-printable character (control, format, non-ASCII space)"
    if campaign and not _HASH_TAG.isdisjoint(value):
        return INVALID_ID, "must not contain '{' or '}' (it is the Redis hash tag)"
    return None


def check_id(
    value: object, what: str, *, campaign: bool = False, max_bytes: int = MAX_ID_BYTES
) -> str:
    """``value`` if it is a valid id, else ``WrongType`` / ``InvalidArgument`` with the
    rule's code."""
    if not isinstance(value, str):
        raise WrongType(f"{what} must be a string, got {type(value).__name__}")
    problem = id_problem(value, campaign=campaign, max_bytes=max_bytes)
    if problem is not None:
        code, why = problem
        raise InvalidArgument(f"{what} {why}", code=code)
    return value


def check_campaign_id(value: object, what: str = "campaign_id") -> str:
    if type(value) is str and value in _VALID_CAMPAIGN_IDS:  # checked before: every event
        return value
    return check_id(value, what, campaign=True)
