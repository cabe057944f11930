"""Strict wire codec of every pacer-stream topic (schema_version 1).

``decode(topic, payload)`` turns the bytes of a Kafka record into a typed, frozen record
or raises :class:`~pacer_stream.errors.InvalidRecord` whose ``code`` is one of the stable
strings of :class:`ErrorCode` (the worker sends such records to the DLQ with that code).
``encode(record)`` is the inverse: compact JSON, integer micros, RFC 3339 UTC times
(``...Z``), ``schema_version: 1`` first, no ``__faust`` metadata.

Each topic's fields, which of them are required, and whether unknown fields are refused
come from its wire model (:mod:`pacer_stream.wire.models`, also the source of the JSON
Schemas).

Strictness (one parsing pass with the stdlib ``json`` hooks, then typed field checks; a
well-formed spend record is read straight from bytes by msgspec instead, and anything
else takes the strict path, so the codes are the same -- docs/streaming.md, "Wire
models"):

- payload: non-empty bytes, at most ``max_bytes`` (64 KiB; 1 MiB for the DLQ topic),
  UTF-8, one JSON *object*; no duplicate keys; no ``NaN``/``Infinity``; every integer
  within +/-(2**53 - 1) and every float finite; nesting deeper than :data:`MAX_DEPTH`
  (32) levels is ``invalid_json``.
- ``schema_version`` must be the integer ``1`` (checked before anything else, so a
  payload of another version is reported as such rather than as a bag of field errors).
- money (``*_micros``) and counts are JSON integers written without fraction or exponent
  (``1.0`` and ``1e3`` are ``float_not_allowed``), 0 .. 2**53 - 1.
- times are RFC 3339 with an explicit offset (``Z`` or ``+HH:MM``), converted to UTC;
  naive, date-only and leap-second (``:60``) times are ``invalid_time``.
- ids (``event_id``, ``campaign_id``, ``request_id``, ...) are non-blank strings of at
  most 256 characters without control characters.
- input topics (spend, budgets, commands, can-spend requests) reject unknown fields
  (``unknown_field``); output topics are read tolerantly (unknown fields are ignored), so
  clients keep working when a field is added to v1 output.
- optional fields may be absent or ``null``; encoders omit them when they are ``None``.
- with ``now`` given, spend ``event_time`` and can-spend ``requested_at`` must lie within
  ``history_days`` (28) before ``now`` and ``max_future_skew_s`` (300 s) after it, and a
  command's ``issued_at`` must not lie in the future. These window checks run after every
  other check, so the code of a malformed record does not depend on the clock.

The worker also calls :func:`check_key` (a record keyed by another campaign would sit on
the wrong partition) and dead-letters failures with :func:`encode_dlq`. Clients use
:func:`decode_as` for a typed result and the ``encode_*`` helpers to publish.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final, NoReturn, TypeVar

import msgspec
import orjson

from pacer_stream import topics
from pacer_stream.core import ids
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerCause,
    BreakerTransition,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    Decision,
    PaceSnapshot,
    PacingStrategy,
    Severity,
    SpendEvent,
    Thresholds,
)
from pacer_stream.core.validation import aware
from pacer_stream.errors import InvalidRecord, PacerError
from pacer_stream.wire.models import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_DEADLINE_MS,
    MAX_PARTITION,
    MAX_TEXT_LENGTH,
    AlertWire,
    BreakerWire,
    BudgetWire,
    CanSpendReplyWire,
    CanSpendRequestWire,
    ChannelBudgetWire,
    CommandType,
    CommandWire,
    DlqWire,
    PaceWire,
    SpendBatchWire,
)

SCHEMA_VERSION: Final = 1
#: Largest accepted payload on every topic but the DLQ.
DEFAULT_MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: Largest accepted DLQ payload (it wraps a failed record, base64-encoded).
DLQ_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
#: ``encode_dlq`` keeps at most this many bytes of the original payload.
DLQ_KEEP_BYTES: Final = 256 * 1024
#: Deepest accepted nesting of objects/arrays (the deepest record needs 3).
MAX_DEPTH: Final = 32
DEFAULT_HISTORY_DAYS: Final = 28
DEFAULT_MAX_FUTURE_SKEW_S: Final = 300


class ErrorCode(StrEnum):
    """Stable codes of :class:`InvalidRecord` (``exc.code`` holds the value)."""

    EMPTY_PAYLOAD = "empty_payload"  # no bytes at all (e.g. a tombstone)
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_JSON = "invalid_json"  # not UTF-8, not JSON, or not a JSON object
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE_NUMBER = "non_finite_number"  # NaN, Infinity, -Infinity
    FLOAT_NOT_ALLOWED = "float_not_allowed"  # 1.5, 1.0 or 1e3 where an integer is required
    NUMBER_OUT_OF_RANGE = "number_out_of_range"  # |n| > 2**53-1, negative, float overflow
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_CHANNEL = "unknown_channel"
    UNKNOWN_STRATEGY = "unknown_strategy"
    UNKNOWN_COMMAND = "unknown_command"
    UNKNOWN_VALUE = "unknown_value"  # other enumerations: state, cause, alert type, code
    INVALID_TIME = "invalid_time"
    TIME_TOO_OLD = "time_too_old"
    TIME_IN_FUTURE = "time_in_future"
    INVALID_AMOUNT = "invalid_amount"  # can-spend amount_micros == 0
    INVALID_BUDGET = "invalid_budget"  # daily_budget_micros == 0, no channels
    EMPTY_ID = "empty_id"
    INVALID_ID = "invalid_id"  # too long or control characters
    INVALID_TEXT = "invalid_text"  # free text too long or with control characters
    INVALID_TIMEZONE = "invalid_timezone"
    UNKNOWN_THRESHOLD = "unknown_threshold"
    INVALID_THRESHOLD = "invalid_threshold"
    INVALID_COMMAND = "invalid_command"  # fields that do not fit the command
    INVALID_TOPIC_NAME = "invalid_topic_name"
    INVALID_BASE64 = "invalid_base64"
    KEY_MISMATCH = "key_mismatch"  # record key differs from the payload's (check_key)
    EMPTY_BATCH = "empty_batch"  # a batch spend record with no events
    TOO_MANY_EVENTS = "too_many_events"  # a batch spend record over MAX_BATCH_EVENTS


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _same_named(target: type[_T], origin: object, /, **overrides: object) -> _T:
    """A ``target`` from every field ``origin`` has under the same name, plus
    ``overrides``: records and the core types share field names, so converting between
    them is never a hand-kept field-by-field copy."""
    names = {f.name for f in fields(target)}  # type: ignore[arg-type]
    values = {n: getattr(origin, n) for n in names if hasattr(origin, n)}
    return target(**{**values, **overrides})



@dataclass(frozen=True, slots=True)
class SpendRecord:
    """``pacer.spend.v1``: one SpendTransaction reported by an ad platform."""

    topic: ClassVar[str] = topics.SPEND

    event_id: str
    campaign_id: str
    channel: ChannelType
    amount_micros: int
    event_time: datetime
    clicks: int = 0
    conversions: int = 0
    impressions: int | None = None
    #: Conversion value reported with the event (optional).
    revenue_micros: int | None = None
    reservation_id: str | None = None
    #: Free-form name of the reporter (ad platform, connector); informational only.
    source: str | None = None

    def to_core(self) -> SpendEvent:
        return _same_named(SpendEvent, self)

    @classmethod
    def from_core(cls, event: SpendEvent, *, source: str | None = None) -> SpendRecord:
        return _same_named(cls, event, source=source)


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One malformed event of a batch spend record (the rest of the batch still applies)."""

    #: Position in the batch's ``events`` list.
    index: int
    #: A stable :class:`ErrorCode` value: the code a single spend record would get.
    code: str
    message: str
    #: This event's own JSON object, re-encoded (what its DLQ entry keeps).
    payload: bytes


@dataclass(frozen=True, slots=True)
class SpendBatchRecord:
    """``pacer.spend.v1`` batch: up to :data:`MAX_BATCH_EVENTS` events of one campaign.

    ``events`` are the well-formed events in batch order and ``indexes`` their positions
    in the batch; ``rejected`` the others. Duplicates are kept (the engine de-duplicates
    by ``event_id``). ``source`` is the batch's reporter, already given to every event
    that does not name its own.
    """

    topic: ClassVar[str] = topics.SPEND

    campaign_id: str
    events: tuple[SpendRecord, ...]
    indexes: tuple[int, ...]
    rejected: tuple[RejectedEvent, ...] = ()
    source: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    """``pacer.budgets.v1`` (compacted, key ``campaign_id``): a campaign's configuration.

    ``thresholds`` holds only the tunables the operator set (names of
    :class:`~pacer_stream.core.types.Thresholds` fields); the rest keep their defaults.
    The signature fields are carried for the command-authentication layer, which may
    require budget updates to be signed; this module does not verify them.
    """

    topic: ClassVar[str] = topics.BUDGETS

    campaign_id: str
    timezone: str
    strategy: PacingStrategy
    channels: Mapping[ChannelType, ChannelConfig]
    updated_at: datetime
    thresholds: Mapping[str, ThresholdValue] = field(default_factory=dict)
    key_id: str | None = None
    nonce: str | None = None
    expires_at: datetime | None = None
    signature: str | None = None

    def core_thresholds(self) -> Thresholds:
        """The full :class:`Thresholds` (defaults + overrides), validated."""
        return _make_thresholds(self.thresholds, "thresholds")

    def to_core(self) -> CampaignConfig:
        return CampaignConfig(
            campaign_id=self.campaign_id,
            channels=dict(self.channels),
            strategy=self.strategy,
            timezone=self.timezone,
            thresholds=self.core_thresholds(),
        )

    @classmethod
    def from_core(cls, config: CampaignConfig, *, updated_at: datetime) -> BudgetRecord:
        """A record of ``config``; ``thresholds`` lists only values that differ from the
        defaults."""
        default = Thresholds()
        overrides = {
            f.name: getattr(config.thresholds, f.name)
            for f in fields(Thresholds)
            if getattr(config.thresholds, f.name) != getattr(default, f.name)
        }
        return cls(
            campaign_id=config.campaign_id,
            timezone=config.timezone,
            strategy=config.strategy,
            channels=dict(config.channels),
            updated_at=updated_at,
            thresholds=overrides,
        )

    def signing_bytes(self) -> bytes:
        """Canonical bytes a signer authenticates: the encoded record without
        ``signature``, keys sorted (see :meth:`CommandRecord.signing_bytes`)."""
        return _signing_bytes(self)


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """``pacer.commands.v1``: an operator command.

    ``force_breaker`` requires ``channel`` and ``state``; ``state`` is only valid for
    ``force_breaker``; ``channel`` may narrow other commands to one channel. The
    signature fields are decoded but not verified here.
    """

    topic: ClassVar[str] = topics.COMMANDS

    command_id: str
    campaign_id: str
    command: CommandType
    reason: str
    issued_at: datetime
    channel: ChannelType | None = None
    state: CircuitBreakerState | None = None
    key_id: str | None = None
    nonce: str | None = None
    expires_at: datetime | None = None
    signature: str | None = None

    def signing_bytes(self) -> bytes:
        """Canonical bytes a signer authenticates: the record as :func:`encode` writes it
        (times in UTC ``Z`` form) minus ``signature``, with keys sorted. Sign and verify
        these, never the received bytes, so the signature survives re-encoding."""
        return _signing_bytes(self)


@dataclass(frozen=True, slots=True)
class CanSpendRequest:
    """``pacer.can-spend.requests.v1``: "may I spend ``amount_micros``?".

    ``requested_at`` only serves to drop requests that waited past ``deadline``; the
    decision itself uses the worker's clock.
    """

    topic: ClassVar[str] = topics.CAN_SPEND_REQUESTS

    request_id: str
    campaign_id: str
    channel: ChannelType
    amount_micros: int
    requested_at: datetime
    deadline_ms: int
    reply_to: str | None = None

    @property
    def deadline(self) -> datetime:
        return self.requested_at + timedelta(milliseconds=self.deadline_ms)

    @property
    def reply_topic(self) -> str:
        return self.reply_to or topics.CAN_SPEND_REPLIES


@dataclass(frozen=True, slots=True)
class CanSpendReply:
    """``pacer.can-spend.replies.v1`` (key ``campaign_id``): the decision.

    ``remaining_micros`` is the channel's daily budget minus its spend and active
    reservations after this decision.
    """

    topic: ClassVar[str] = topics.CAN_SPEND_REPLIES

    request_id: str
    campaign_id: str
    channel: ChannelType
    allowed: bool
    code: Code
    reason: str
    remaining_micros: int
    decided_at: datetime
    reservation_id: str | None = None
    expires_at: datetime | None = None
    #: Bid/throttle multiplier for the bid engine (absent from older producers).
    pacing_multiplier: float | None = None

    @classmethod
    def from_decision(
        cls, request: CanSpendRequest, decision: Decision, *, decided_at: datetime
    ) -> CanSpendReply:
        return _same_named(
            cls,
            decision,
            request_id=request.request_id,
            campaign_id=request.campaign_id,
            channel=request.channel,
            decided_at=decided_at,
        )

    def to_core(self) -> Decision:
        return _same_named(Decision, self, pacing_multiplier=self.pacing_multiplier or 0.0)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """``pacer.alerts.v1``: a PacingAlert. ``alert_id`` is the alert's event id (stable
    for one state change, so consumers can de-duplicate); ``at`` its time;
    ``thresholds`` the configured values that fired (name -> value)."""

    topic: ClassVar[str] = topics.ALERTS

    alert_id: str
    campaign_id: str
    channel: ChannelType | None
    alert_type: AlertType
    severity: Severity
    pace_ratio: float
    current_spend_micros: int
    budget_consumed_pct: float
    time_elapsed_pct: float
    recommended_action: str
    at: datetime
    thresholds: Mapping[str, float] = field(default_factory=dict)
    budget_micros: int | None = None
    projected_overspend_micros: int | None = None

    @classmethod
    def from_core(cls, alert: Alert) -> AlertRecord:
        return _same_named(cls, alert, thresholds=dict(alert.thresholds))

    def to_core(self) -> Alert:
        return _same_named(
            Alert,
            self,
            budget_micros=self.budget_micros or 0,
            projected_overspend_micros=self.projected_overspend_micros or 0,
            thresholds=dict(self.thresholds),
        )


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    """``pacer.breakers.v1`` (compacted, key ``campaign_id:channel``): a breaker state."""

    topic: ClassVar[str] = topics.BREAKERS

    campaign_id: str
    channel: ChannelType
    state: CircuitBreakerState
    cause: BreakerCause
    since: datetime
    #: When an OPEN breaker may go HALF_OPEN (None for CLOSED or forced states).
    until: datetime | None = None
    previous: CircuitBreakerState | None = None
    #: A forced state (emergency stop, force_breaker) never changes by itself.
    forced: bool = False

    @classmethod
    def from_core(cls, transition: BreakerTransition) -> BreakerRecord:
        return _same_named(cls, transition)

    def to_core(self) -> BreakerTransition:
        previous = self.previous if self.previous is not None else self.state
        return _same_named(BreakerTransition, self, previous=previous)


@dataclass(frozen=True, slots=True)
class PaceRecord:
    """``pacer.pace.v1``: a periodic pace snapshot of one campaign/channel."""

    topic: ClassVar[str] = topics.PACE

    campaign_id: str
    channel: ChannelType
    at: datetime
    budget_micros: int
    spent_micros: int
    reserved_micros: int
    planned_micros: int
    pace_ratio: float
    time_elapsed_pct: float
    hour_allowance_micros: int
    hour_spent_micros: int
    breaker: CircuitBreakerState
    clicks: int
    conversions: int
    impressions: int = 0
    revenue_micros: int = 0
    pacing_multiplier: float = 0.0
    #: Derived metrics by window ("today", "7d", "baseline", ...) -> name -> value.
    performance: Mapping[str, Mapping[str, int | float | None]] = field(default_factory=dict)

    @classmethod
    def from_core(cls, snapshot: PaceSnapshot) -> PaceRecord:
        performance = {k: dict(v) for k, v in snapshot.performance.items()}
        return _same_named(cls, snapshot, performance=performance)

    def to_core(self) -> PaceSnapshot:
        performance = {k: dict(v) for k, v in self.performance.items()}
        return _same_named(PaceSnapshot, self, performance=performance)


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """``pacer.dlq.v1``: a record that could not be accepted, with its original bytes.

    On the wire ``payload`` and ``key`` travel base64-encoded as ``payload_b64`` and
    ``key_b64``. ``payload_size`` is the original length; ``payload_truncated`` says the
    kept bytes are only its first :data:`DLQ_KEEP_BYTES`.
    """

    topic: ClassVar[str] = topics.DLQ

    source_topic: str
    partition: int
    offset: int
    payload: bytes
    error_code: str
    error: str
    at: datetime
    key: bytes | None = None
    payload_size: int | None = None
    payload_truncated: bool = False
    #: Position of the rejected event in its batch spend record (None: a whole record).
    batch_index: int | None = None


Record = (
    SpendRecord
    | SpendBatchRecord
    | BudgetRecord
    | CommandRecord
    | CanSpendRequest
    | CanSpendReply
    | AlertRecord
    | BreakerRecord
    | PaceRecord
    | DlqRecord
)

RECORD_TYPES: Final[Mapping[str, type[Record]]] = {
    topics.SPEND: SpendRecord,
    topics.BUDGETS: BudgetRecord,
    topics.COMMANDS: CommandRecord,
    topics.CAN_SPEND_REQUESTS: CanSpendRequest,
    topics.CAN_SPEND_REPLIES: CanSpendReply,
    topics.ALERTS: AlertRecord,
    topics.BREAKERS: BreakerRecord,
    topics.PACE: PaceRecord,
    topics.DLQ: DlqRecord,
}


# --------------------------------------------------------------------------------------
# Parsing: one stdlib json pass with strict hooks
# --------------------------------------------------------------------------------------


def _fail(code: ErrorCode, where: str, message: str) -> NoReturn:
    raise InvalidRecord(code.value, f"{where}: {message}" if where else message)


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                _fail(ErrorCode.DUPLICATE_KEY, "", f"duplicate key {_show(name)}")
            seen.add(name)
    return obj


def _parse_constant(name: str) -> NoReturn:
    _fail(ErrorCode.NON_FINITE_NUMBER, "", f"{name} is not allowed: numbers must be finite")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _fail(ErrorCode.NUMBER_OUT_OF_RANGE, "", f"number {_show(text)} overflows a double")
    return value


_MAX_INT_DIGITS: Final = len(str(MAX_MICROS))


def _parse_int(text: str) -> int:
    digits = text[1:] if text.startswith("-") else text
    if len(digits) > _MAX_INT_DIGITS or abs(value := int(text)) > MAX_MICROS:
        _fail(
            ErrorCode.NUMBER_OUT_OF_RANGE,
            "",
            f"integer {_show(text)} is outside +/-{MAX_MICROS} (2**53 - 1)",
        )
    return value


_JSON: Final = json.JSONDecoder(
    object_pairs_hook=_pairs_hook,
    parse_float=_parse_float,
    parse_int=_parse_int,
    parse_constant=_parse_constant,
)


def _load(payload: object, max_bytes: int) -> dict[str, Any]:
    if payload is None:
        _fail(ErrorCode.EMPTY_PAYLOAD, "", "no payload (tombstone)")
    if isinstance(payload, memoryview | bytearray):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        _fail(ErrorCode.WRONG_TYPE, "", f"payload must be bytes, got {type(payload).__name__}")
    if not payload:
        _fail(ErrorCode.EMPTY_PAYLOAD, "", "empty payload")
    if len(payload) > max_bytes:
        _fail(
            ErrorCode.PAYLOAD_TOO_LARGE, "", f"payload is {len(payload)} bytes > {max_bytes}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(ErrorCode.INVALID_JSON, "", f"payload is not UTF-8 ({exc.reason} at {exc.start})")
    if text.count("{") + text.count("[") > MAX_DEPTH and _too_deep(text):
        _fail(
            ErrorCode.INVALID_JSON,
            "",
            f"JSON nests deeper than {MAX_DEPTH} levels or is unbalanced",
        )
    try:
        value = _JSON.decode(text)
    except InvalidRecord:
        raise
    except RecursionError:
        _fail(ErrorCode.INVALID_JSON, "", "JSON is nested too deeply")
    except ValueError as exc:
        _fail(ErrorCode.INVALID_JSON, "", f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        _fail(
            ErrorCode.INVALID_JSON,
            "",
            f"top level must be a JSON object, got {_json_type(value)}",
        )
    return value


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIRS = re.compile(r"\[\]|\{\}")


def _too_deep(text: str) -> bool:
    """Whether brackets outside JSON strings nest deeper than :data:`MAX_DEPTH` (or do
    not balance, which is invalid JSON anyway). Each pass removes the innermost level,
    all at C speed; only payloads with many brackets get here."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(MAX_DEPTH):
        brackets, removed = _EMPTY_PAIRS.subn("", brackets)
        if not brackets:
            return False
        if not removed:
            return True
    return True


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------------------
# Field readers (shared by decode and by encode's validation)
# --------------------------------------------------------------------------------------

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
S = TypeVar("S", bound=msgspec.Struct)

_TEXT_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _id(value: object, where: str, *, max_bytes: int = ids.MAX_ID_BYTES) -> str:
    """An id by the one id rule (``core.ids``); campaign ids also refuse braces."""
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    campaign = where in ("campaign_id", "key")
    problem = ids.id_problem(value, campaign=campaign, max_bytes=max_bytes)
    if problem is not None:
        _fail(ErrorCode(problem[0]), where, f"{problem[1]}: {_show(value)}")
    return value


def _token(value: object, where: str) -> str:
    """An id the pacer generated (a reservation id embeds two ids)."""
    return _id(value, where, max_bytes=ids.MAX_TOKEN_BYTES)


def _text(value: object, where: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    if len(value) > max_length:
        _fail(ErrorCode.INVALID_TEXT, where, f"longer than {max_length} characters")
    if _TEXT_BAD.search(value):
        _fail(ErrorCode.INVALID_TEXT, where, f"contains control characters: {_show(value)}")
    return value


def _int(
    value: object,
    where: str,
    *,
    lo: int = 0,
    hi: int = MAX_MICROS,
    zero: ErrorCode | None = None,
) -> int:
    """An integer in [lo, hi]; ``zero`` is the code when 0 is not acceptable."""
    if type(value) is not int:
        if isinstance(value, float):
            _fail(
                ErrorCode.FLOAT_NOT_ALLOWED,
                where,
                f"must be an integer without fraction or exponent, got {_show(value)}",
            )
        _fail(ErrorCode.WRONG_TYPE, where, f"must be an integer, got {_json_type(value)}")
    if value < lo or value > hi:
        _fail(ErrorCode.NUMBER_OUT_OF_RANGE, where, f"{value} is outside [{lo}, {hi}]")
    if value == 0 and zero is not None:
        _fail(zero, where, "must be positive, got 0")
    return value


def _number(value: object, where: str) -> float:
    """A finite, non-negative JSON number (integer or float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a number, got {_json_type(value)}")
    if isinstance(value, int) and abs(value) > MAX_MICROS:
        _fail(ErrorCode.NUMBER_OUT_OF_RANGE, where, f"{value} is too large")
    number = float(value)
    if not math.isfinite(number):
        _fail(ErrorCode.NON_FINITE_NUMBER, where, f"must be finite, got {number}")
    if number < 0:
        _fail(ErrorCode.NUMBER_OUT_OF_RANGE, where, f"must not be negative, got {number}")
    return number


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be true or false, got {_json_type(value)}")
    return value


def _enum(value: object, where: str, cls: type[E], code: ErrorCode) -> E:
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        _fail(code, where, f"unknown value {_show(value)} (allowed: {allowed})")


def _channel(value: object, where: str) -> ChannelType:
    return _enum(value, where, ChannelType, ErrorCode.UNKNOWN_CHANNEL)


def _strategy(value: object, where: str) -> PacingStrategy:
    return _enum(value, where, PacingStrategy, ErrorCode.UNKNOWN_STRATEGY)


def _state(value: object, where: str) -> CircuitBreakerState:
    return _enum(value, where, CircuitBreakerState, ErrorCode.UNKNOWN_VALUE)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be an object, got {_json_type(value)}")
    return value


def parse_time(value: object, where: str = "time") -> datetime:
    """Parse an RFC 3339 time with an explicit offset into an aware UTC datetime.

    Raises :class:`InvalidRecord` (``wrong_type`` or ``invalid_time``). Fractions beyond
    microseconds are truncated; leap seconds (``:60``) are refused.
    """
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be an RFC 3339 string, got {_json_type(value)}")
    match = _RFC3339.fullmatch(value)
    if match is None:
        _fail(
            ErrorCode.INVALID_TIME,
            where,
            f"{_show(value)} is not an RFC 3339 time with an offset "
            "(e.g. 2026-03-02T10:00:00Z or 2026-03-02T11:00:00+01:00)",
        )
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if sign is not None:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if sign == "-":
                offset = -offset
        micro = int((frac or "0")[:6].ljust(6, "0"))
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
            tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        _fail(ErrorCode.INVALID_TIME, where, f"{_show(value)} is not a valid time ({exc})")


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def _timezone(value: object, where: str) -> str:
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    if value not in _known_zones():
        _fail(ErrorCode.INVALID_TIMEZONE, where, f"{_show(value)} is not an IANA time zone")
    return value


def _topic_name(value: object, where: str) -> str:
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    if not topics.is_valid_topic_name(value):
        _fail(ErrorCode.INVALID_TOPIC_NAME, where, f"{_show(value)} is not a Kafka topic name")
    return value


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a base64 string, got {_json_type(value)}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        _fail(ErrorCode.INVALID_BASE64, where, f"not valid base64 ({exc})")


def _threshold_kind(annotation: object) -> tuple[type, bool]:
    """(int or float, nullable) of a Thresholds field annotation ("int", "float | None")."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parts = {part.strip() for part in str(text).split("|")}
    nullable = "None" in parts
    parts.discard("None")
    return (int if parts == {"int"} else float), nullable


#: Every tunable of :class:`Thresholds`: name -> (int or float, may be null).
THRESHOLD_KINDS: Final[Mapping[str, tuple[type, bool]]] = {
    f.name: _threshold_kind(f.type) for f in fields(Thresholds)
}

ThresholdValue = int | float | None


def _make_thresholds(values: Mapping[str, ThresholdValue], where: str) -> Thresholds:
    for name in values:
        if name not in THRESHOLD_KINDS:
            _fail(ErrorCode.UNKNOWN_THRESHOLD, f"{where}.{name}", "unknown threshold")
    changes: dict[str, Any] = dict(values)
    try:
        return replace(Thresholds(), **changes)
    except (PacerError, ValueError, TypeError) as exc:
        _fail(ErrorCode.INVALID_THRESHOLD, where, str(exc))


def _thresholds(value: object, where: str) -> dict[str, ThresholdValue]:
    """Threshold overrides by name: integers for integer tunables, numbers otherwise,
    ``null`` for the optional ones (switched off)."""
    obj = _object(value, where)
    result: dict[str, ThresholdValue] = {}
    for name, raw in obj.items():
        kind = THRESHOLD_KINDS.get(name)
        if kind is None:
            _fail(ErrorCode.UNKNOWN_THRESHOLD, f"{where}.{_show(name, 40)}", "unknown threshold")
        number_type, nullable = kind
        if raw is None and nullable:
            result[name] = None
        elif number_type is int:
            result[name] = _int(raw, f"{where}.{name}")
        else:
            result[name] = _number(raw, f"{where}.{name}")
    _make_thresholds(result, where)
    return result


def _metric(value: object, where: str) -> int | float | None:
    """A derived metric: null, an integer, or a finite number (may be negative)."""
    if value is None or (type(value) is int and abs(value) <= MAX_MICROS):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail(ErrorCode.NON_FINITE_NUMBER, where, f"must be finite, got {value}")
        return value
    if type(value) is int:
        _fail(ErrorCode.NUMBER_OUT_OF_RANGE, where, f"{value} is too large")
    _fail(ErrorCode.WRONG_TYPE, where, f"must be a number or null, got {_json_type(value)}")


def _performance(value: object, where: str) -> dict[str, dict[str, int | float | None]]:
    return {
        _text(window, f"{where} key", 64): {
            _text(name, f"{where}.{window} key", 64): _metric(raw, f"{where}.{window}.{name}")
            for name, raw in _object(metrics, f"{where}.{window}").items()
        }
        for window, metrics in _object(value, where).items()
    }


def _fired_thresholds(value: object, where: str) -> dict[str, float]:
    obj = _object(value, where)
    return {
        _text(name, f"{where} key", 64): _number(raw, f"{where}.{name}")
        for name, raw in obj.items()
    }


# --------------------------------------------------------------------------------------
# Per-topic decoders
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    now: datetime | None
    history: timedelta
    skew: timedelta

    def not_too_old(self, value: datetime, where: str) -> None:
        if self.now is not None and value < self.now - self.history:
            _fail(
                ErrorCode.TIME_TOO_OLD,
                where,
                f"{_fmt_time(value)} is more than {self.history.days} days before "
                f"{_fmt_time(self.now)}",
            )

    def not_in_future(self, value: datetime, where: str) -> None:
        if self.now is not None and value > self.now + self.skew:
            _fail(
                ErrorCode.TIME_IN_FUTURE,
                where,
                f"{_fmt_time(value)} is more than {int(self.skew.total_seconds())} s after "
                f"{_fmt_time(self.now)}",
            )


_NO_CONTEXT: Final = _Context(None, timedelta(days=DEFAULT_HISTORY_DAYS), timedelta(0))


@dataclass(frozen=True, slots=True)
class _Shape:
    required: tuple[str, ...]
    allowed: frozenset[str]
    strict: bool

    def check(self, data: Mapping[str, object], where: str = "") -> None:
        if self.strict:
            for name in data:
                if name not in self.allowed:
                    _fail(
                        ErrorCode.UNKNOWN_FIELD,
                        f"{where}{_show(name, 40)}",
                        "unknown field (not part of schema_version 1)",
                    )
        for name in self.required:
            if name not in data:
                _fail(ErrorCode.MISSING_FIELD, f"{where}{name}", "required field is missing")


def _shape(model: type[msgspec.Struct]) -> _Shape:
    """Required and allowed field names of a wire model, in its declaration order (the
    first missing one is reported); strict when the model forbids unknown fields."""
    info = msgspec.structs.fields(model)
    return _Shape(
        tuple(f.name for f in info if f.required),
        frozenset(f.name for f in info),
        bool(model.__struct_config__.forbid_unknown_fields),
    )


_BUDGET = _shape(BudgetWire)
_CHANNEL_BUDGET = _shape(ChannelBudgetWire)
_COMMAND = _shape(CommandWire)
_REQUEST = _shape(CanSpendRequestWire)
_REPLY = _shape(CanSpendReplyWire)
_ALERT = _shape(AlertWire)
_BREAKER = _shape(BreakerWire)
_PACE = _shape(PaceWire)
_DLQ = _shape(DlqWire)


def _opt(data: Mapping[str, object], name: str, reader: Callable[[object, str], T]) -> T | None:
    value = data.get(name)
    return None if value is None else reader(value, name)


_Micros = Annotated[int, msgspec.Meta(ge=0, le=MAX_MICROS)]


class _SpendTyped(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The typed layer of ``pacer.spend.v1``, checked by msgspec (field set, types,
    integer micros, channel); ids and the time keep the rules msgspec does not have (the
    one id rule, RFC 3339 with ``T``, sub-microsecond digits truncated)."""

    schema_version: int
    event_id: str
    campaign_id: str
    channel: ChannelType
    amount_micros: _Micros
    event_time: str
    clicks: _Micros
    conversions: _Micros
    impressions: _Micros | None = None
    revenue_micros: _Micros | None = None
    reservation_id: str | None = None
    source: str | None = None


#: msgspec's validation message -> stable code (its errors carry a message and a
#: ``$.path``, no machine-readable kind; msgspec is pinned and the corpus guards this).
_MSGSPEC_CODES: Final = (
    ("unknown field", ErrorCode.UNKNOWN_FIELD),
    ("missing required field", ErrorCode.MISSING_FIELD),
    ("Expected `int`, got `float`", ErrorCode.FLOAT_NOT_ALLOWED),
    ("Expected `int` >=", ErrorCode.NUMBER_OUT_OF_RANGE),
    ("Expected `int` <=", ErrorCode.NUMBER_OUT_OF_RANGE),
    ("Invalid enum value", ErrorCode.UNKNOWN_CHANNEL),
)
_MSGSPEC_PATH: Final = re.compile(r"(?: - at `\$\.?(.*)`)?$")


def _typed(d: Mapping[str, Any], cls: type[S]) -> S:
    """``d`` converted to ``cls`` by msgspec; its errors become :class:`InvalidRecord`."""
    try:
        return msgspec.convert(d, cls, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _MSGSPEC_PATH.search(text)
        where = (match.group(1) or "") if match else ""
        message = text[: match.start()] if match else text
        code = next((c for part, c in _MSGSPEC_CODES if part in text), ErrorCode.WRONG_TYPE)
        _fail(code, where, message)


def _decode_spend(d: Mapping[str, Any], ctx: _Context) -> SpendRecord | SpendBatchRecord:
    if "events" in d:
        return _decode_batch(d, ctx)
    return _finish_spend(_typed(d, _SpendTyped), ctx)


_BATCH = _shape(SpendBatchWire)


def _decode_batch(d: Mapping[str, Any], ctx: _Context) -> SpendBatchRecord:
    """The envelope is judged whole (any problem refuses the record); then each event on
    its own, with the checks and codes of a single spend record."""
    _BATCH.check(d)
    campaign_id = _id(d["campaign_id"], "campaign_id")
    source = _opt(d, "source", _id)
    events = d["events"]
    if not isinstance(events, list):
        _fail(ErrorCode.WRONG_TYPE, "events", f"must be an array, got {_json_type(events)}")
    if not events:
        _fail(ErrorCode.EMPTY_BATCH, "events", "a batch needs at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        _fail(
            ErrorCode.TOO_MANY_EVENTS,
            "events",
            f"{len(events)} events > {MAX_BATCH_EVENTS} in one batch",
        )
    good: list[SpendRecord] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, event in enumerate(events):
        try:
            good.append(_batch_event(event, campaign_id, source, ctx))
            indexes.append(index)
        except InvalidRecord as exc:
            message = f"events[{index}].{exc.message}"
            rejected.append(RejectedEvent(index, exc.code, message, _ANY_ENCODE(event)))
    return SpendBatchRecord(campaign_id, tuple(good), tuple(indexes), tuple(rejected), source)


def _batch_event(
    event: object, campaign_id: str, source: str | None, ctx: _Context
) -> SpendRecord:
    if not isinstance(event, dict):
        _fail(ErrorCode.WRONG_TYPE, "", f"an event must be an object, got {_json_type(event)}")
    if "schema_version" in event:
        _fail(ErrorCode.UNKNOWN_FIELD, "schema_version", "unknown field in a batch's event")
    own = event.get("campaign_id")
    if own is not None and own != campaign_id:
        _fail(
            ErrorCode.KEY_MISMATCH,
            "campaign_id",
            f"{_show(own)} differs from the batch's {_show(campaign_id)}",
        )
    typed = _typed({**event, "schema_version": SCHEMA_VERSION, "campaign_id": campaign_id},
                   _SpendTyped)
    record = _finish_spend(typed, ctx)
    return record if record.source is not None or source is None else replace(
        record, source=source
    )


def _finish_spend(typed: _SpendTyped, ctx: _Context) -> SpendRecord:
    """The checks msgspec does not make (the one id rule, the RFC 3339 rule, the clock
    window), in the order the hand-written decoder made them."""
    _id(typed.event_id, "event_id")
    _id(typed.campaign_id, "campaign_id")
    if typed.reservation_id is not None:
        _token(typed.reservation_id, "reservation_id")
    if typed.source is not None:
        _id(typed.source, "source")
    fields_ = msgspec.structs.asdict(typed)
    del fields_["schema_version"]
    fields_["event_time"] = event_time = parse_time(typed.event_time, "event_time")
    ctx.not_too_old(event_time, "event_time")
    ctx.not_in_future(event_time, "event_time")
    return SpendRecord(**fields_)


_SPEND_JSON: Final = msgspec.json.Decoder(_SpendTyped)
_ANY_JSON: Final = msgspec.json.Decoder()
_ANY_ENCODE: Final = msgspec.json.Encoder().encode


def _fast_spend(payload: bytes) -> _SpendTyped | None:
    """The spend record straight from bytes (the hot path), or None when anything is off.

    msgspec alone accepts duplicate keys and reports NaN, non-UTF-8 or a version of the
    wrong type under other codes, so any failure -- and any payload with a backslash
    escape or a repeated key -- returns None and goes through the strict path, which
    gives the exact code. Only well-formed records are decided here.

    Repeated keys: without escapes every ``"`` delimits a string, so the colons outside
    strings (even pieces of a split on ``"``) count the keys (spend values are flat);
    more keys than the decoded object has means one repeats.
    """
    if b"\\" in payload:
        return None
    try:
        typed = _SPEND_JSON.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if typed.schema_version != SCHEMA_VERSION or type(typed.schema_version) is not int:
        return None
    keys = b"".join(payload.split(b'"')[::2]).count(b":")
    if keys != len(_ANY_JSON.decode(payload)):
        return None
    return typed


def _plain(value: object) -> bool:
    """A JSON scalar the strict parser accepts (no nesting, integers within 2**53 - 1,
    finite floats)."""
    if isinstance(value, dict | list):
        return False
    if type(value) is int:
        return abs(value) <= MAX_MICROS
    return type(value) is not float or math.isfinite(value)


def _fast_batch(payload: bytes) -> dict[str, Any] | None:
    """A batch's JSON object in one msgspec pass (the hot path for batches), or None
    when the strict parser must judge the bytes: a backslash escape, a value msgspec
    reads but the strict rules refuse (deep nesting, a big integer), or a repeated key
    (counted as in :func:`_fast_spend`: an event holds only scalars, so the colons
    outside strings are exactly the keys of the envelope and of its events)."""
    if b"\\" in payload:
        return None
    try:
        data = _ANY_JSON.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(events := data.get("events"), list):
        return None
    keys = len(data)
    if not all(_plain(v) for k, v in data.items() if k != "events"):
        return None
    for event in events:
        if not isinstance(event, dict) or not all(_plain(v) for v in event.values()):
            return None
        keys += len(event)
    if keys != b"".join(payload.split(b'"')[::2]).count(b":"):
        return None
    return data


def _decode_spend_bytes(
    payload: bytes | bytearray | memoryview | None,
    ctx: _Context,
    max_bytes: int,
    max_batch_bytes: int,
) -> Record:
    """A spend payload that is not a plain single record: a batch (up to
    ``max_batch_bytes``) or a record the strict path must judge."""
    if isinstance(payload, memoryview | bytearray):
        payload = bytes(payload)
    size = len(payload) if isinstance(payload, bytes) else 0
    batch_like = isinstance(payload, bytes) and b'"events"' in payload
    limit = max(max_bytes, max_batch_bytes) if batch_like else max_bytes
    data = (_fast_batch(payload) if batch_like and size <= limit else None) or _load(
        payload, limit
    )
    allowed = max_batch_bytes if "events" in data else max_bytes
    if size > allowed:
        _fail(ErrorCode.PAYLOAD_TOO_LARGE, "", f"payload is {size} bytes > {allowed}")
    return _decode_obj(topics.SPEND, data, ctx)


def _decode_channel_budgets(value: object, where: str) -> dict[ChannelType, ChannelConfig]:
    obj = _object(value, where)
    if not obj:
        _fail(ErrorCode.INVALID_BUDGET, where, "a campaign needs at least one channel")
    result: dict[ChannelType, ChannelConfig] = {}
    for name, raw in obj.items():
        channel = _channel(name, f"{where} key")
        path = f"{where}.{channel.value}"
        entry = _object(raw, path)
        _CHANNEL_BUDGET.check(entry, f"{path}.")
        strategy = entry.get("strategy")
        result[channel] = ChannelConfig(
            daily_budget_micros=_int(
                entry["daily_budget_micros"],
                f"{path}.daily_budget_micros",
                zero=ErrorCode.INVALID_BUDGET,
            ),
            strategy=None if strategy is None else _strategy(strategy, f"{path}.strategy"),
        )
    return result


def _decode_budget(d: Mapping[str, Any], ctx: _Context) -> BudgetRecord:
    _BUDGET.check(d)
    return BudgetRecord(
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        timezone=_timezone(d["timezone"], "timezone"),
        strategy=_strategy(d["strategy"], "strategy"),
        channels=_decode_channel_budgets(d["channels"], "channels"),
        updated_at=parse_time(d["updated_at"], "updated_at"),
        thresholds=_opt(d, "thresholds", _thresholds) or {},
        key_id=_opt(d, "key_id", _id),
        nonce=_opt(d, "nonce", _id),
        expires_at=_opt(d, "expires_at", parse_time),
        signature=_opt(d, "signature", lambda v, w: _text(v, w, 1024)),
    )


def _decode_command(d: Mapping[str, Any], ctx: _Context) -> CommandRecord:
    _COMMAND.check(d)
    record = CommandRecord(
        command_id=_id(d["command_id"], "command_id"),
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        command=_enum(d["command"], "command", CommandType, ErrorCode.UNKNOWN_COMMAND),
        reason=_text(d["reason"], "reason"),
        issued_at=parse_time(d["issued_at"], "issued_at"),
        channel=_opt(d, "channel", _channel),
        state=_opt(d, "state", _state),
        key_id=_opt(d, "key_id", _id),
        nonce=_opt(d, "nonce", _id),
        expires_at=_opt(d, "expires_at", parse_time),
        signature=_opt(d, "signature", lambda v, w: _text(v, w, 1024)),
    )
    if record.command is CommandType.FORCE_BREAKER:
        if record.channel is None:
            _fail(ErrorCode.MISSING_FIELD, "channel", "force_breaker needs a channel")
        if record.state is None:
            _fail(ErrorCode.MISSING_FIELD, "state", "force_breaker needs a state")
    elif record.state is not None:
        _fail(ErrorCode.INVALID_COMMAND, "state", f"not allowed for {record.command.value}")
    ctx.not_in_future(record.issued_at, "issued_at")
    return record


def _decode_request(d: Mapping[str, Any], ctx: _Context) -> CanSpendRequest:
    _REQUEST.check(d)
    record = CanSpendRequest(
        request_id=_id(d["request_id"], "request_id"),
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        channel=_channel(d["channel"], "channel"),
        amount_micros=_int(d["amount_micros"], "amount_micros", zero=ErrorCode.INVALID_AMOUNT),
        requested_at=parse_time(d["requested_at"], "requested_at"),
        deadline_ms=_int(
            d["deadline_ms"],
            "deadline_ms",
            hi=MAX_DEADLINE_MS,
            zero=ErrorCode.NUMBER_OUT_OF_RANGE,
        ),
        reply_to=_opt(d, "reply_to", _topic_name),
    )
    ctx.not_too_old(record.requested_at, "requested_at")
    ctx.not_in_future(record.requested_at, "requested_at")
    return record


def _decode_reply(d: Mapping[str, Any], ctx: _Context) -> CanSpendReply:
    _REPLY.check(d)
    return CanSpendReply(
        request_id=_id(d["request_id"], "request_id"),
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        channel=_channel(d["channel"], "channel"),
        allowed=_bool(d["allowed"], "allowed"),
        code=_enum(d["code"], "code", Code, ErrorCode.UNKNOWN_VALUE),
        reason=_text(d["reason"], "reason"),
        remaining_micros=_int(d["remaining_micros"], "remaining_micros"),
        decided_at=parse_time(d["decided_at"], "decided_at"),
        reservation_id=_opt(d, "reservation_id", _token),
        expires_at=_opt(d, "expires_at", parse_time),
        pacing_multiplier=_opt(d, "pacing_multiplier", _number),
    )


def _decode_alert(d: Mapping[str, Any], ctx: _Context) -> AlertRecord:
    _ALERT.check(d)
    return AlertRecord(
        alert_id=_token(d["alert_id"], "alert_id"),
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        channel=_opt(d, "channel", _channel),
        alert_type=_enum(d["alert_type"], "alert_type", AlertType, ErrorCode.UNKNOWN_VALUE),
        severity=_enum(d["severity"], "severity", Severity, ErrorCode.UNKNOWN_VALUE),
        pace_ratio=_number(d["pace_ratio"], "pace_ratio"),
        current_spend_micros=_int(d["current_spend_micros"], "current_spend_micros"),
        budget_consumed_pct=_number(d["budget_consumed_pct"], "budget_consumed_pct"),
        time_elapsed_pct=_number(d["time_elapsed_pct"], "time_elapsed_pct"),
        recommended_action=_text(d["recommended_action"], "recommended_action"),
        at=parse_time(d["at"], "at"),
        thresholds=_fired_thresholds(d["thresholds"], "thresholds"),
        budget_micros=_opt(d, "budget_micros", _int),
        projected_overspend_micros=_opt(d, "projected_overspend_micros", _int),
    )


def _decode_breaker(d: Mapping[str, Any], ctx: _Context) -> BreakerRecord:
    _BREAKER.check(d)
    return BreakerRecord(
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        channel=_channel(d["channel"], "channel"),
        state=_state(d["state"], "state"),
        cause=_enum(d["cause"], "cause", BreakerCause, ErrorCode.UNKNOWN_VALUE),
        since=parse_time(d["since"], "since"),
        until=_opt(d, "until", parse_time),
        previous=_opt(d, "previous", _state),
        forced=_opt(d, "forced", _bool) or False,
    )


def _decode_pace(d: Mapping[str, Any], ctx: _Context) -> PaceRecord:
    _PACE.check(d)
    return PaceRecord(
        campaign_id=_id(d["campaign_id"], "campaign_id"),
        channel=_channel(d["channel"], "channel"),
        at=parse_time(d["at"], "at"),
        budget_micros=_int(d["budget_micros"], "budget_micros"),
        spent_micros=_int(d["spent_micros"], "spent_micros"),
        reserved_micros=_int(d["reserved_micros"], "reserved_micros"),
        planned_micros=_int(d["planned_micros"], "planned_micros"),
        pace_ratio=_number(d["pace_ratio"], "pace_ratio"),
        time_elapsed_pct=_number(d["time_elapsed_pct"], "time_elapsed_pct"),
        hour_allowance_micros=_int(d["hour_allowance_micros"], "hour_allowance_micros"),
        hour_spent_micros=_int(d["hour_spent_micros"], "hour_spent_micros"),
        breaker=_state(d["breaker"], "breaker"),
        clicks=_int(d["clicks"], "clicks"),
        conversions=_int(d["conversions"], "conversions"),
        impressions=_opt(d, "impressions", _int) or 0,
        revenue_micros=_opt(d, "revenue_micros", _int) or 0,
        pacing_multiplier=_opt(d, "pacing_multiplier", _number) or 0.0,
        performance=_opt(d, "performance", _performance) or {},
    )


def _decode_dlq(d: Mapping[str, Any], ctx: _Context) -> DlqRecord:
    _DLQ.check(d)
    return DlqRecord(
        source_topic=_topic_name(d["source_topic"], "source_topic"),
        partition=_int(d["partition"], "partition", lo=-1, hi=MAX_PARTITION),
        offset=_int(d["offset"], "offset", lo=-1),
        payload=_b64(d["payload_b64"], "payload_b64"),
        error_code=_text(d["error_code"], "error_code", 64),
        error=_text(d["error"], "error"),
        at=parse_time(d["at"], "at"),
        key=_opt(d, "key_b64", _b64),
        payload_size=_opt(d, "payload_size", _int),
        payload_truncated=_opt(d, "payload_truncated", _bool) or False,
        batch_index=_opt(d, "batch_index", _batch_index),
    )


def _batch_index(value: object, where: str) -> int:
    return _int(value, where, hi=MAX_BATCH_EVENTS - 1)


_DECODERS: Final[Mapping[str, Callable[[Mapping[str, Any], _Context], Record]]] = {
    topics.SPEND: _decode_spend,
    topics.BUDGETS: _decode_budget,
    topics.COMMANDS: _decode_command,
    topics.CAN_SPEND_REQUESTS: _decode_request,
    topics.CAN_SPEND_REPLIES: _decode_reply,
    topics.ALERTS: _decode_alert,
    topics.BREAKERS: _decode_breaker,
    topics.PACE: _decode_pace,
    topics.DLQ: _decode_dlq,
}


def _decode_obj(topic: str, data: Mapping[str, Any], ctx: _Context) -> Record:
    decoder = _DECODERS.get(topic)
    if decoder is None:
        _fail(ErrorCode.UNKNOWN_TOPIC, "", f"no decoder for topic {_show(topic)}")
    if "schema_version" not in data:
        _fail(ErrorCode.MISSING_FIELD, "schema_version", "required field is missing")
    version = data["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        _fail(
            ErrorCode.UNKNOWN_SCHEMA_VERSION,
            "schema_version",
            f"must be the integer {SCHEMA_VERSION}, got {_show(version)}",
        )
    return decoder(data, ctx)


def _context(
    now: datetime | None, history_days: int, max_future_skew_s: int
) -> _Context:
    if now is None:
        return _NO_CONTEXT
    return _Context(
        aware(now, what="now"),
        timedelta(days=history_days),
        timedelta(seconds=max_future_skew_s),
    )


def decode(
    topic: str,
    payload: bytes | bytearray | memoryview | None,
    *,
    now: datetime | None = None,
    max_bytes: int | None = None,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    history_days: int = DEFAULT_HISTORY_DAYS,
    max_future_skew_s: int = DEFAULT_MAX_FUTURE_SKEW_S,
) -> Record:
    """Decode ``payload`` read from ``topic`` into its typed record.

    ``now`` (aware) enables the time-window checks (see the module docstring); the worker
    passes its clock. ``max_bytes`` defaults to 64 KiB (1 MiB on the DLQ topic);
    ``max_batch_bytes`` limits a batch spend record (a :class:`SpendBatchRecord`, whose
    malformed events are returned as :attr:`SpendBatchRecord.rejected`). Raises
    :class:`InvalidRecord` with a stable :class:`ErrorCode` value as ``code``; nothing
    else for any payload (a naive ``now`` is a caller error: ``ValueError``).
    """
    if topic not in _DECODERS:
        _fail(ErrorCode.UNKNOWN_TOPIC, "", f"no decoder for topic {_show(topic)}")
    ctx = _context(now, history_days, max_future_skew_s)
    if max_bytes is None:
        max_bytes = DLQ_MAX_PAYLOAD_BYTES if topic == topics.DLQ else DEFAULT_MAX_PAYLOAD_BYTES
    if topic == topics.SPEND and isinstance(payload, bytes) and 0 < len(payload) <= max_bytes:
        typed = _fast_spend(payload)
        if typed is not None:
            return _finish_spend(typed, ctx)
    if topic == topics.SPEND:
        return _decode_spend_bytes(payload, ctx, max_bytes, max_batch_bytes)
    return _decode_obj(topic, _load(payload, max_bytes), ctx)


def from_dict(
    topic: str,
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    max_future_skew_s: int = DEFAULT_MAX_FUTURE_SKEW_S,
) -> Record:
    """Like :func:`decode` for an already parsed JSON object (same checks, minus the
    byte-level ones: size, UTF-8, duplicate keys)."""
    if not isinstance(data, Mapping):
        _fail(ErrorCode.INVALID_JSON, "", f"must be a JSON object, got {_json_type(data)}")
    return _decode_obj(topic, data, _context(now, history_days, max_future_skew_s))


R = TypeVar("R", bound=Record)


def decode_as(
    cls: type[R],
    payload: bytes | bytearray | memoryview | None,
    *,
    now: datetime | None = None,
    max_bytes: int | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    max_future_skew_s: int = DEFAULT_MAX_FUTURE_SKEW_S,
) -> R:
    """``decode(cls.topic, payload, ...)`` typed as ``cls``, e.g.
    ``decode_as(SpendRecord, value, now=clock())``."""
    record = decode(
        cls.topic,
        payload,
        now=now,
        max_bytes=max_bytes,
        history_days=history_days,
        max_future_skew_s=max_future_skew_s,
    )
    if not isinstance(record, cls):  # a single spend record where a batch was expected
        _fail(ErrorCode.WRONG_TYPE, "", f"expected {cls.__name__}, got {type(record).__name__}")
    return record


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


def breaker_key(campaign_id: str, channel: ChannelType) -> bytes:
    """Key of ``pacer.breakers.v1``: ``campaign_id:channel``."""
    return f"{campaign_id}:{ChannelType(channel).value}".encode()


def parse_breaker_key(key: bytes) -> tuple[str, ChannelType]:
    """Inverse of :func:`breaker_key` (campaign ids may themselves contain ``:``)."""
    try:
        campaign_id, _, channel = key.decode("utf-8").rpartition(":")
    except UnicodeDecodeError:
        _fail(ErrorCode.KEY_MISMATCH, "key", "breaker key is not UTF-8")
    return _id(campaign_id, "key"), _channel(channel, "key")


def record_key(record: Record) -> bytes | None:
    """The Kafka key a record is published with (``None`` only for an unkeyed DLQ
    entry): ``campaign_id`` everywhere, ``campaign_id:channel`` on the breakers topic,
    the failed record's own key on the DLQ."""
    if isinstance(record, DlqRecord):
        return record.key
    if isinstance(record, BreakerRecord):
        return breaker_key(record.campaign_id, record.channel)
    return record.campaign_id.encode()


def check_key(record: Record, key: bytes | None) -> None:
    """Raise ``key_mismatch`` unless ``key`` is the key ``record`` must be published
    with. A record keyed by another campaign would sit on the wrong partition, so the
    worker checks this for every input record (DLQ records are not checked)."""
    if isinstance(record, DlqRecord):
        return
    expected = record_key(record)
    if key != expected:
        _fail(
            ErrorCode.KEY_MISMATCH,
            "key",
            f"record key {_show(key)} differs from the payload's {_show(expected)}",
        )


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def _fmt_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        _fail(ErrorCode.INVALID_TIME, "", f"naive datetime {value.isoformat()} cannot be encoded")
    u = value.astimezone(UTC)
    text = (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    )
    if u.microsecond:
        text += f".{u.microsecond:06d}"
    return text + "Z"


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` (microseconds only when non-zero); naive refused."""
    if not isinstance(value, datetime):
        _fail(ErrorCode.WRONG_TYPE, "", f"expected a datetime, got {type(value).__name__}")
    return _fmt_time(value)


def _t(value: object) -> object:
    return _fmt_time(value) if isinstance(value, datetime) else value


def _v(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def _put(out: dict[str, object], name: str, value: object) -> None:
    if value is not None:
        out[name] = value


def _b64s(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def to_dict(record: Record) -> dict[str, object]:
    """The JSON object of ``record`` (what :func:`encode` serialises), unvalidated."""
    out: dict[str, object] = {"schema_version": SCHEMA_VERSION}
    if isinstance(record, SpendRecord):
        out.update(
            event_id=record.event_id,
            campaign_id=record.campaign_id,
            channel=_v(record.channel),
            amount_micros=record.amount_micros,
            event_time=_t(record.event_time),
            clicks=record.clicks,
            conversions=record.conversions,
        )
        _put(out, "impressions", record.impressions)
        _put(out, "revenue_micros", record.revenue_micros)
        _put(out, "reservation_id", record.reservation_id)
        _put(out, "source", record.source)
    elif isinstance(record, SpendBatchRecord):
        out["campaign_id"] = record.campaign_id
        out["events"] = [_batch_event_dict(record, event) for event in record.events]
        _put(out, "source", record.source)
    elif isinstance(record, BudgetRecord):
        out.update(
            campaign_id=record.campaign_id,
            timezone=record.timezone,
            strategy=_v(record.strategy),
            channels={
                str(_v(channel)): _channel_budget_dict(cfg)
                for channel, cfg in record.channels.items()
            },
            updated_at=_t(record.updated_at),
        )
        if record.thresholds:
            out["thresholds"] = dict(record.thresholds)
        _put_signature(out, record)
    elif isinstance(record, CommandRecord):
        out.update(
            command_id=record.command_id,
            campaign_id=record.campaign_id,
            command=_v(record.command),
        )
        _put(out, "channel", _v(record.channel))
        _put(out, "state", _v(record.state))
        out.update(reason=record.reason, issued_at=_t(record.issued_at))
        _put_signature(out, record)
    elif isinstance(record, CanSpendRequest):
        out.update(
            request_id=record.request_id,
            campaign_id=record.campaign_id,
            channel=_v(record.channel),
            amount_micros=record.amount_micros,
            requested_at=_t(record.requested_at),
            deadline_ms=record.deadline_ms,
        )
        _put(out, "reply_to", record.reply_to)
    elif isinstance(record, CanSpendReply):
        out.update(
            request_id=record.request_id,
            campaign_id=record.campaign_id,
            channel=_v(record.channel),
            allowed=record.allowed,
            code=_v(record.code),
            reason=record.reason,
        )
        _put(out, "reservation_id", record.reservation_id)
        _put(out, "expires_at", _t(record.expires_at))
        out.update(remaining_micros=record.remaining_micros, decided_at=_t(record.decided_at))
        if record.pacing_multiplier is not None:
            out["pacing_multiplier"] = _float(record.pacing_multiplier, "pacing_multiplier")
    elif isinstance(record, AlertRecord):
        out.update(alert_id=record.alert_id, campaign_id=record.campaign_id)
        _put(out, "channel", _v(record.channel))
        out.update(
            alert_type=_v(record.alert_type),
            severity=_v(record.severity),
            pace_ratio=_float(record.pace_ratio, "pace_ratio"),
            current_spend_micros=record.current_spend_micros,
            budget_consumed_pct=_float(record.budget_consumed_pct, "budget_consumed_pct"),
            time_elapsed_pct=_float(record.time_elapsed_pct, "time_elapsed_pct"),
            recommended_action=record.recommended_action,
            at=_t(record.at),
            thresholds={
                name: _float(value, f"thresholds.{name}")
                for name, value in record.thresholds.items()
            },
        )
        _put(out, "budget_micros", record.budget_micros)
        _put(out, "projected_overspend_micros", record.projected_overspend_micros)
    elif isinstance(record, BreakerRecord):
        out.update(
            campaign_id=record.campaign_id,
            channel=_v(record.channel),
            state=_v(record.state),
            cause=_v(record.cause),
            since=_t(record.since),
        )
        _put(out, "until", _t(record.until))
        _put(out, "previous", _v(record.previous))
        out["forced"] = record.forced
    elif isinstance(record, PaceRecord):
        out.update(
            campaign_id=record.campaign_id,
            channel=_v(record.channel),
            at=_t(record.at),
            budget_micros=record.budget_micros,
            spent_micros=record.spent_micros,
            reserved_micros=record.reserved_micros,
            planned_micros=record.planned_micros,
            pace_ratio=_float(record.pace_ratio, "pace_ratio"),
            time_elapsed_pct=_float(record.time_elapsed_pct, "time_elapsed_pct"),
            hour_allowance_micros=record.hour_allowance_micros,
            hour_spent_micros=record.hour_spent_micros,
            breaker=_v(record.breaker),
            clicks=record.clicks,
            conversions=record.conversions,
            impressions=record.impressions,
            revenue_micros=record.revenue_micros,
            pacing_multiplier=_float(record.pacing_multiplier, "pacing_multiplier"),
        )
        if record.performance:
            out["performance"] = {
                window: {
                    name: _float(value, f"performance.{window}.{name}")
                    for name, value in metrics.items()
                }
                for window, metrics in record.performance.items()
            }
    elif isinstance(record, DlqRecord):
        out.update(
            source_topic=record.source_topic,
            partition=record.partition,
            offset=record.offset,
        )
        if record.key is not None:
            out["key_b64"] = _b64s(record.key)
        out.update(
            payload_b64=_b64s(record.payload),
            error_code=record.error_code,
            error=record.error,
            at=_t(record.at),
        )
        _put(out, "payload_size", record.payload_size)
        out["payload_truncated"] = record.payload_truncated
        _put(out, "batch_index", record.batch_index)
    else:
        _fail(ErrorCode.UNKNOWN_TOPIC, "", f"not a record: {type(record).__name__}")
    return out


def _batch_event_dict(batch: SpendBatchRecord, event: SpendRecord) -> dict[str, object]:
    """An event as a batch carries it: no version; its campaign and source only where
    they differ from the batch's (a differing campaign is refused on validation)."""
    out = to_dict(event)
    del out["schema_version"]
    if event.campaign_id == batch.campaign_id:
        del out["campaign_id"]
    if event.source is not None and event.source == batch.source:
        del out["source"]
    return out


def _channel_budget_dict(cfg: ChannelConfig) -> dict[str, object]:
    out: dict[str, object] = {"daily_budget_micros": cfg.daily_budget_micros}
    _put(out, "strategy", _v(cfg.strategy))
    return out


def _put_signature(out: dict[str, object], record: BudgetRecord | CommandRecord) -> None:
    _put(out, "key_id", record.key_id)
    _put(out, "nonce", record.nonce)
    _put(out, "expires_at", _t(record.expires_at))
    _put(out, "signature", record.signature)


def _float(value: object, where: str) -> object:
    # orjson would silently write NaN/Infinity as null: refuse them here, always.
    if isinstance(value, float) and not math.isfinite(value):
        _fail(ErrorCode.NON_FINITE_NUMBER, where, f"cannot encode {value}")
    return value


def _dumps(data: Mapping[str, object], *, sort_keys: bool = False) -> bytes:
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except orjson.JSONEncodeError as exc:
        _fail(ErrorCode.WRONG_TYPE, "", f"cannot encode record: {exc}")


def encode(record: Record, *, validate: bool = True) -> bytes:
    """Compact JSON bytes of ``record``.

    With ``validate`` (the default) the object is checked by the very decoder of its
    topic (without time windows) before it is written, so whatever ``encode`` returns
    ``decode`` accepts; a bad field raises :class:`InvalidRecord` with the same code
    ``decode`` would give. ``validate=False`` skips that second pass on hot paths (the
    non-finite-float and naive-time checks stay).
    """
    data = to_dict(record)
    if validate:
        checked = _decode_obj(record.topic, data, _NO_CONTEXT)
        if isinstance(checked, SpendBatchRecord):
            if checked.rejected:
                first = checked.rejected[0]
                raise InvalidRecord(first.code, first.message)
            encoded = _dumps(data)
            if len(encoded) > MAX_BATCH_BYTES:
                _fail(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    "",
                    f"batch is {len(encoded)} bytes > {MAX_BATCH_BYTES}",
                )
            return encoded
    return _dumps(data)


def _signing_bytes(record: BudgetRecord | CommandRecord) -> bytes:
    data = to_dict(record)
    data.pop("signature", None)
    return _dumps(data, sort_keys=True)


def encode_spend(event: SpendEvent, *, source: str | None = None) -> bytes:
    return encode(SpendRecord.from_core(event, source=source))


def encode_spend_batch(
    campaign_id: str, events: Sequence[SpendEvent], *, source: str | None = None
) -> bytes:
    """One batch spend record of ``events`` (all of ``campaign_id``; publish it with key
    ``campaign_id``). Raises :class:`InvalidRecord` for an event a decoder would reject,
    no events, more than :data:`MAX_BATCH_EVENTS`, or more than :data:`MAX_BATCH_BYTES`."""
    return encode(
        SpendBatchRecord(
            campaign_id,
            tuple(SpendRecord.from_core(event) for event in events),
            tuple(range(len(events))),
            source=source,
        )
    )


def encode_budget(config: CampaignConfig, *, updated_at: datetime) -> bytes:
    return encode(BudgetRecord.from_core(config, updated_at=updated_at))


def encode_alert(alert: Alert, *, validate: bool = True) -> bytes:
    return encode(AlertRecord.from_core(alert), validate=validate)


def encode_breaker(transition: BreakerTransition, *, validate: bool = True) -> bytes:
    return encode(BreakerRecord.from_core(transition), validate=validate)


def encode_pace(snapshot: PaceSnapshot, *, validate: bool = True) -> bytes:
    return encode(PaceRecord.from_core(snapshot), validate=validate)


def encode_reply(
    request: CanSpendRequest,
    decision: Decision,
    *,
    decided_at: datetime,
    validate: bool = True,
) -> bytes:
    """The reply to ``request`` (publish it to ``request.reply_topic`` with key
    ``campaign_id``)."""
    return encode(
        CanSpendReply.from_decision(request, decision, decided_at=decided_at),
        validate=validate,
    )


_ERROR_CLEAN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def encode_dlq(
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    error_code: str,
    error: str,
    at: datetime,
    *,
    keep_bytes: int = DLQ_KEEP_BYTES,
    batch_index: int | None = None,
) -> bytes:
    """A DLQ entry for a record that failed (publish it with the original ``key``).

    Keeps the original key and the first ``keep_bytes`` of the payload (base64), its size,
    and the error; control characters in ``error`` are replaced and it is cut to
    :data:`MAX_TEXT_LENGTH`, so any failure can be recorded. ``partition``/``offset``
    may be -1 when unknown. ``batch_index`` names the rejected event of a batch spend
    record (``payload`` is then that event's own JSON object).
    """
    original = bytes(payload) if payload is not None else b""
    kept = original[:keep_bytes]
    message = _ERROR_CLEAN.sub("?", error)[:MAX_TEXT_LENGTH]
    code = _ERROR_CLEAN.sub("?", error_code)[:64] or "unknown"
    return encode(
        DlqRecord(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            payload=kept,
            error_code=code,
            error=message,
            at=at,
            key=bytes(key) if key is not None else None,
            payload_size=len(original),
            payload_truncated=len(kept) < len(original),
            batch_index=batch_index,
        )
    )


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DLQ_KEEP_BYTES",
    "DLQ_MAX_PAYLOAD_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "THRESHOLD_KINDS",
    "AlertRecord",
    "BreakerRecord",
    "BudgetRecord",
    "CanSpendReply",
    "CanSpendRequest",
    "CommandRecord",
    "CommandType",
    "DlqRecord",
    "ErrorCode",
    "PaceRecord",
    "Record",
    "RejectedEvent",
    "SpendBatchRecord",
    "SpendRecord",
    "breaker_key",
    "check_key",
    "decode",
    "decode_as",
    "encode",
    "encode_alert",
    "encode_breaker",
    "encode_budget",
    "encode_dlq",
    "encode_pace",
    "encode_reply",
    "encode_spend",
    "encode_spend_batch",
    "format_time",
    "from_dict",
    "parse_breaker_key",
    "parse_time",
    "record_key",
    "to_dict",
]
