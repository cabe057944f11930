"""Strict wire codec of every pacer-stream topic (schema_version 1).

``decode(topic, payload)`` turns the bytes of a Kafka record into a typed, frozen record
or raises :class:`~pacer_stream.errors.InvalidRecord` whose ``code`` is one of the stable
strings of :class:`ErrorCode` (the worker sends such records to the DLQ with that code).
``encode(record)`` is the inverse: compact JSON, integer micros, RFC 3339 UTC times
(``...Z``), ``schema_version: 1`` first, no ``__faust`` metadata.

Each topic's record class *is* its wire model (:mod:`pacer_stream.wire.models`, also the
source of the JSON Schemas) plus the conversions to and from the core's types: the
fields, types, bounds, which of them are required, and whether unknown fields are
refused are written there only. Decoding is two steps: the bytes are parsed by one
msgspec pass (anything it cannot vouch for -- a backslash escape, a repeated key, NaN, a
big integer -- is parsed by the stdlib ``json`` with strict hooks instead, which give
those faults their codes), then :func:`_convert` builds the record: times and base64 by
the codec's own rules, everything else by one strict ``msgspec.convert`` (whose
validation message :func:`_error` maps to the stable code), then the one id rule (bytes,
not characters). What a model cannot say is checked after it: IANA zones, threshold and
command cross-field rules, the clock window. The spend topic, the hot one, first tries a
typed msgspec pass straight into its model (:func:`_typed_spend`); whatever that pass
cannot vouch for takes the two steps above, which decide alike.

Strictness:

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
import functools
import json
import math
import operator
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, StrEnum
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final, NoReturn, TypeVar, get_args, get_type_hints

import msgspec

from pacer_stream.core import ids
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import (
    Alert,
    BreakerTransition,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    Decision,
    PaceSnapshot,
    SpendEvent,
    Thresholds,
)
from pacer_stream.core.validation import aware
from pacer_stream.errors import InvalidRecord, PacerError
from pacer_stream.wire import topics
from pacer_stream.wire.models import (
    B64_PATTERN,
    CAMPAIGN_ID_PATTERN,
    ID_PATTERN,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_TEXT_LENGTH,
    MODELS,
    TEXT_PATTERN,
    TIME_PATTERN,
    TOPIC_PATTERN,
    AlertWire,
    BreakerWire,
    BudgetWire,
    CanSpendReplyWire,
    CanSpendRequestWire,
    ChannelBudget,
    CommandType,
    CommandWire,
    DlqWire,
    PaceWire,
    SpendBatchWire,
    SpendEventWire,
    SpendWire,
    ThresholdsWire,
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
# Records: each is its topic's wire model (the one definition of its fields) plus the
# conversions to and from the core's types
# --------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _same_named(target: type[_T], origin: object, /, **overrides: object) -> _T:
    """A ``target`` from every field ``origin`` has under the same name, plus
    ``overrides``: records and the core types share field names, so converting between
    them is never a hand-kept field-by-field copy."""
    if not overrides:
        whole = _whole_getter(target, type(origin))
        if whole is not None:  # the usual case (a spend record to the core's event)
            return target(*whole(origin))
    values = {n: getattr(origin, n) for n in _field_names(target) if hasattr(origin, n)}
    return target(**{**values, **overrides})


@functools.lru_cache(maxsize=64)
def _whole_getter(target: type, origin: type) -> Callable[[object], tuple[Any, ...]] | None:
    """Reads every field of ``target`` from an ``origin`` in ``target``'s order, when
    ``origin`` (a record or core type) has them all: one C call, and the values go in
    by position (a sixth of the keyword path's cost, paid once per spend event)."""
    typed = hasattr(origin, "__struct_fields__") or hasattr(origin, "__dataclass_fields__")
    names = _field_names(target)
    if not typed or len(names) < 2 or not set(names) <= set(_field_names(origin)):
        return None  # (one name: attrgetter would return the value, not a tuple)
    return operator.attrgetter(*names)


@functools.lru_cache(maxsize=64)
def _field_names(target: type) -> tuple[str, ...]:
    """A record's or core type's field names (read once per type: ``fields()`` on
    every event was a measurable share of the spend path)."""
    names = getattr(target, "__struct_fields__", None)
    if names is None:  # a core dataclass
        names = tuple(f.name for f in fields(target))
    return tuple(names)


class SpendRecord(SpendWire, frozen=True):
    """``pacer.spend.v1``: one SpendTransaction reported by an ad platform."""

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
    """``pacer.spend.v1`` batch, decoded (its wire shape is :class:`SpendBatchWire`).

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


ThresholdValue = int | float | None


def threshold_overrides(values: Mapping[str, ThresholdValue]) -> Any:
    """The ``thresholds`` of a :class:`BudgetRecord` from tunable name -> value."""
    for name in values:
        if name not in ThresholdsWire.__struct_fields__:
            _fail(ErrorCode.UNKNOWN_THRESHOLD, f"thresholds.{name}", "unknown threshold")
    return ThresholdsWire(**values)


class BudgetRecord(BudgetWire, frozen=True):
    """``pacer.budgets.v1`` (compacted, key ``campaign_id``): a campaign's configuration.

    ``thresholds`` holds only the tunables the operator set (:meth:`overrides`); the rest
    keep their defaults. The signature fields are carried for the command-authentication
    layer, which may require budget updates to be signed; this module does not verify
    them.
    """

    def overrides(self) -> dict[str, ThresholdValue]:
        """The tunables set by this record, by name."""
        if self.thresholds is None:
            return {}
        items = msgspec.structs.asdict(self.thresholds).items()
        return {k: v for k, v in items if v is not msgspec.UNSET}

    def core_thresholds(self) -> Thresholds:
        """The full :class:`Thresholds` (defaults + overrides), validated."""
        changes: dict[str, Any] = self.overrides()
        try:
            return replace(Thresholds(), **changes)
        except (PacerError, ValueError, TypeError) as exc:
            _fail(ErrorCode.INVALID_THRESHOLD, "thresholds", str(exc))

    def to_core(self) -> CampaignConfig:
        channels = {c: _same_named(ChannelConfig, b) for c, b in self.channels.items()}
        return _same_named(
            CampaignConfig, self, channels=channels, thresholds=self.core_thresholds()
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
        channels = {c: _same_named(ChannelBudget, b) for c, b in config.channels.items()}
        return _same_named(
            cls,
            config,
            channels=channels,
            updated_at=updated_at,
            thresholds=threshold_overrides(overrides) if overrides else None,
        )

    def signing_bytes(self) -> bytes:
        """Canonical bytes a signer authenticates: the encoded record without
        ``signature``, keys sorted (see :meth:`CommandRecord.signing_bytes`)."""
        return _signing_bytes(self)


class CommandRecord(CommandWire, frozen=True):
    """``pacer.commands.v1``: an operator command.

    ``force_breaker`` requires ``channel`` and ``state``; ``state`` is only valid for
    ``force_breaker``; ``channel`` may narrow other commands to one channel. The
    signature fields are decoded but not verified here.
    """

    def signing_bytes(self) -> bytes:
        """Canonical bytes a signer authenticates: the record as :func:`encode` writes it
        (times in UTC ``Z`` form) minus ``signature``, with keys sorted. Sign and verify
        these, never the received bytes, so the signature survives re-encoding."""
        return _signing_bytes(self)


class CanSpendRequest(CanSpendRequestWire, frozen=True):
    """``pacer.can-spend.requests.v1``: "may I spend ``amount_micros``?".

    ``requested_at`` only serves to drop requests that waited past ``deadline``; the
    decision itself uses the worker's clock.
    """

    @property
    def deadline(self) -> datetime:
        return self.requested_at + timedelta(milliseconds=self.deadline_ms)

    @property
    def reply_topic(self) -> str:
        return self.reply_to or topics.CAN_SPEND_REPLIES


class CanSpendReply(CanSpendReplyWire, frozen=True):
    """``pacer.can-spend.replies.v1`` (key ``campaign_id``): the decision."""

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


class AlertRecord(AlertWire, frozen=True):
    """``pacer.alerts.v1``: a PacingAlert. ``alert_id`` is the alert's event id (stable
    for one state change, so consumers can de-duplicate)."""

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


class BreakerRecord(BreakerWire, frozen=True):
    """``pacer.breakers.v1`` (compacted, key ``campaign_id:channel``): a breaker state."""

    @classmethod
    def from_core(cls, transition: BreakerTransition) -> BreakerRecord:
        return _same_named(cls, transition)

    def to_core(self) -> BreakerTransition:
        previous = self.previous if self.previous is not None else self.state
        return _same_named(BreakerTransition, self, previous=previous, forced=bool(self.forced))


class PaceRecord(PaceWire, frozen=True):
    """``pacer.pace.v1``: a periodic pace snapshot of one campaign/channel."""

    @classmethod
    def from_core(cls, snapshot: PaceSnapshot) -> PaceRecord:
        performance = {k: dict(v) for k, v in snapshot.performance.items()}
        return _same_named(cls, snapshot, performance=performance)

    def to_core(self) -> PaceSnapshot:
        return _same_named(
            PaceSnapshot,
            self,
            impressions=self.impressions or 0,
            revenue_micros=self.revenue_micros or 0,
            pacing_multiplier=self.pacing_multiplier or 0.0,
            performance={k: dict(v) for k, v in (self.performance or {}).items()},
        )


class DlqRecord(DlqWire, frozen=True):
    """``pacer.dlq.v1``: a record that could not be accepted, with its original bytes
    (``payload`` and ``key`` travel base64-encoded as ``payload_b64`` and ``key_b64``)."""


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

#: Topic name -> its record class (a batch is the spend topic's other shape).
RECORD_TYPES: Final[Mapping[str, type[Record]]] = {
    cls.topic: cls for cls in get_args(Record) if cls is not SpendBatchRecord
}


# --------------------------------------------------------------------------------------
# Strict parse: one stdlib json pass with hooks (for what the fast parse leaves)
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


def _payload_bytes(payload: object) -> bytes:
    if payload is None:
        _fail(ErrorCode.EMPTY_PAYLOAD, "", "no payload (tombstone)")
    if isinstance(payload, memoryview | bytearray):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        _fail(ErrorCode.WRONG_TYPE, "", f"payload must be bytes, got {type(payload).__name__}")
    if not payload:
        _fail(ErrorCode.EMPTY_PAYLOAD, "", "empty payload")
    return payload


def _load(payload: object, max_bytes: int) -> dict[str, Any]:
    """The strict parse: stdlib ``json`` with hooks that give every byte-level fault its
    code (duplicate key, NaN, integer range, nesting)."""
    payload = _payload_bytes(payload)
    if len(payload) > max_bytes:
        _fail(ErrorCode.PAYLOAD_TOO_LARGE, "", f"payload is {len(payload)} bytes > {max_bytes}")
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


_JSON_TYPES: Final = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return next(
        (name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__
    )


# --------------------------------------------------------------------------------------
# Fast parse: one msgspec pass, for documents the strict rules accept as they are
# --------------------------------------------------------------------------------------

_ANY_JSON: Final = msgspec.json.Decoder()
_ENCODER: Final = msgspec.json.Encoder()
_SORTED_ENCODER: Final = msgspec.json.Encoder(order="sorted")


class _Odd(Exception):
    """A parsed value the strict JSON rules refuse (see :func:`_check_values`)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check_values(
    value: dict[str, Any] | list[Any], depth: int = 0, *, floats: bool = True
) -> None:
    """Raise :class:`_Odd` for what the strict parser refuses in a parsed value: nesting
    deeper than :data:`MAX_DEPTH`, an integer beyond 2**53 - 1, a non-finite float
    (unless not ``floats``)."""
    if depth >= MAX_DEPTH:
        raise _Odd(ErrorCode.INVALID_JSON, f"JSON nests deeper than {MAX_DEPTH} levels")
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, dict | list):
            _check_values(item, depth + 1, floats=floats)
        elif type(item) is int and abs(item) > MAX_MICROS:
            raise _Odd(ErrorCode.NUMBER_OUT_OF_RANGE, f"integer {_show(item)} beyond 2**53 - 1")
        elif floats and isinstance(item, float) and not math.isfinite(item):
            raise _Odd(ErrorCode.NON_FINITE_NUMBER, f"{item} is not allowed: must be finite")


_CONTAINERS: Final = (dict, list)


def _count_keys(value: dict[str, Any] | list[Any]) -> int:
    """Object keys in ``value`` at any depth (a plain loop: for a batch record this
    visits every field of every event, and a generator per object cost 2.5 us an
    event where the loop costs 1)."""
    if isinstance(value, dict):
        n = len(value)
        inner: Any = value.values()
    else:
        n = 0
        inner = value
    for item in inner:
        if isinstance(item, _CONTAINERS):
            n += _count_keys(item)
    return n


#: Outside strings, with every digit made 0: what the fast parse leaves to the strict
#: one -- an integer that may pass 2**53 - 1, any exponent (it may overflow a double).
_DIGITS: Final = bytes.maketrans(b"123456789E+", b"000000000e-")


def _fast_load(payload: bytes) -> dict[str, Any] | None:
    """``payload``'s object in one msgspec pass (the hot path), or None when the strict
    parser must judge the bytes: msgspec refuses them (it reports NaN or bad UTF-8 under
    other codes), a backslash escape, a value the strict rules may refuse (big number,
    deep nesting), or a repeated key (msgspec keeps the last one silently). Without
    escapes every ``"`` delimits a string, so the colons outside strings count the keys
    at every depth; more of them than the parsed object holds means a key repeats."""
    if b"\\" in payload:
        return None
    outside = b"".join(payload.split(b'"')[::2])
    shape = outside.translate(_DIGITS)
    if b"0000000000000000" in shape or b"e0" in shape or b"e-" in shape:
        return None
    brackets = outside.count(b"{") + outside.count(b"[")
    if brackets > MAX_DEPTH and _too_deep(outside.decode("utf-8", "replace")):
        return None
    try:
        data = _ANY_JSON.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    keys = len(data) if brackets == 1 else _count_keys(data)
    return data if keys == outside.count(b":") else None


# --------------------------------------------------------------------------------------
# Typed layer: msgspec converts to the record (its wire model); errors map to stable codes
# --------------------------------------------------------------------------------------

S = TypeVar("S", bound=msgspec.Struct)

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _metas(annotation: object) -> list[msgspec.Meta]:
    """The constraints of a field type (``Annotated`` metadata, also inside ``X | None``)."""
    found = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, msgspec.Meta)]
    for arg in get_args(annotation):
        found += _metas(arg)
    return found


def _pattern(annotation: object) -> tuple[str, int] | None:
    """(pattern, max length) of a field type: msgspec's own, or one its schema states
    only (ids, times, base64: the codec checks those by its own rules)."""
    for meta in _metas(annotation):
        extra = meta.extra_json_schema or {}
        if (pattern := meta.pattern or extra.get("pattern")) is not None:
            return pattern, extra.get("maxLength", ids.MAX_ID_BYTES)
    return None


#: The code of a field whose msgspec pattern or length fails, by its pattern.
_PATTERN_CODES: Final[Mapping[str, ErrorCode]] = {
    TOPIC_PATTERN: ErrorCode.INVALID_TOPIC_NAME,
    TEXT_PATTERN: ErrorCode.INVALID_TEXT,
}
#: Field name -> the code of its failed msgspec string constraint.
_CODES: Final = {
    "timezone": ErrorCode.INVALID_TIMEZONE,
    **{
        field: _PATTERN_CODES[pattern]
        for model in MODELS.values()
        for field, kind in get_type_hints(model, include_extras=True).items()
        if (pattern := (_pattern(kind) or ("",))[0]) in _PATTERN_CODES
    },
}
_B64: Final = re.compile(B64_PATTERN)


def _base64(value: str, where: str) -> bytes:
    if _B64.fullmatch(value) is None:
        _fail(ErrorCode.INVALID_BASE64, where, f"not valid base64: {_show(value)}")
    return base64.b64decode(value)


def _id_rule(pattern: str, max_bytes: int) -> Callable[[str, str], str] | None:
    if pattern not in (ID_PATTERN, CAMPAIGN_ID_PATTERN):
        return None
    campaign = pattern == CAMPAIGN_ID_PATTERN
    return lambda value, where: _id(value, where, campaign=campaign, max_bytes=max_bytes)


#: Per record class: (wire name, parser) of the fields parsed before msgspec converts the
#: object (times, base64) and (name, check) of the ids checked after it.
_Rules = tuple[tuple[str, Callable[[str, str], Any]], ...]


def _rules(cls: type[msgspec.Struct]) -> tuple[_Rules, _Rules]:
    hints = get_type_hints(cls, include_extras=True)
    parsers: dict[str, Callable[[str, str], Any]] = {
        TIME_PATTERN: parse_time,
        B64_PATTERN: _base64,
    }
    before: list[tuple[str, Callable[[str, str], Any]]] = []
    after: list[tuple[str, Callable[[str, str], Any]]] = []
    for f in msgspec.structs.fields(cls):
        pattern, max_bytes = _pattern(hints[f.name]) or ("", 0)
        if parse := parsers.get(pattern):
            before.append((f.encode_name, parse))
        elif check := _id_rule(pattern, max_bytes):
            after.append((f.name, check))
    return tuple(before), tuple(after)


#: An unknown value of these enumerations has its own code; of the others unknown_value.
_ENUM_CODES: Final[Mapping[str, ErrorCode]] = {
    "channel": ErrorCode.UNKNOWN_CHANNEL,
    "channels": ErrorCode.UNKNOWN_CHANNEL,
    "strategy": ErrorCode.UNKNOWN_STRATEGY,
    "command": ErrorCode.UNKNOWN_COMMAND,
}
#: A value within 0 .. 2**53 - 1 that a field's bound still refuses gets the field's code.
_BOUND_CODES: Final[Mapping[str, ErrorCode]] = {
    "amount_micros": ErrorCode.INVALID_AMOUNT,
    "daily_budget_micros": ErrorCode.INVALID_BUDGET,
    "channels": ErrorCode.INVALID_BUDGET,
    "thresholds": ErrorCode.INVALID_THRESHOLD,
}
_MESSAGE: Final = re.compile(r"(.*?)(?: - at (`key` in )?`\$\.?([^`]*)`)?", re.S)
_BOUND: Final = re.compile(r"Expected `(?:int|float)` ([<>]=?) (\S+)")
_NAMES: Final = re.compile(r"[A-Za-z_]\w*")


def _at(data: object, path: str) -> list[object]:
    """The values at a msgspec path (``a.b[3]``; ``[...]`` stands for every dict value)."""
    found = [data]
    for part in re.findall(r"\.?([A-Za-z_]\w*)|\[(\d+|\.\.\.)\]", path):
        name, index = part
        step: list[object] = []
        for value in found:
            if name and isinstance(value, dict) and name in value:
                step.append(value[name])
            elif index == "..." and isinstance(value, dict):
                step.extend(value.values())
            elif index.isdigit() and isinstance(value, list) and int(index) < len(value):
                step.append(value[int(index)])
        found = step
    return found


_OPS: Final = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _violates(value: object, op: str, bound: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not _OPS[op](value, bound)


def _error(text: str, data: object) -> InvalidRecord:
    """msgspec's validation error as :class:`InvalidRecord` with a stable code. Its errors
    carry a sentence and a ``$.path``, no machine-readable kind: the sentence picks the
    kind, the field names on the path the code (msgspec is pinned; the bad-input corpus
    and the contract tests pin this mapping)."""
    match = _MESSAGE.fullmatch(text)
    what, is_key, path = match.groups() if match else (text, None, "")
    path = path or ""
    names = _NAMES.findall(path)
    field, top = (names[-1], names[0]) if names else ("", "")
    code = ErrorCode.WRONG_TYPE
    if what.startswith("Object contains unknown field"):
        code = ErrorCode.UNKNOWN_THRESHOLD if top == "thresholds" else ErrorCode.UNKNOWN_FIELD
    elif what.startswith("Object missing required field"):
        code = ErrorCode.MISSING_FIELD
    elif what.startswith("Invalid enum value"):
        code = _ENUM_CODES.get(field, ErrorCode.UNKNOWN_VALUE)
    elif re.match(r"Expected `int( \| null)?`, got `float`", what):
        code = ErrorCode.FLOAT_NOT_ALLOWED
    elif bound := _BOUND.match(what):
        op, limit = bound.group(1), float(bound.group(2))
        culprit = next((v for v in _at(data, path) if _violates(v, op, limit)), -1)
        assert isinstance(culprit, int | float)
        code = ErrorCode.NUMBER_OUT_OF_RANGE
        if not math.isfinite(culprit):
            code = ErrorCode.NON_FINITE_NUMBER
        elif 0 <= culprit <= MAX_MICROS:
            code = _BOUND_CODES.get(top if top == "thresholds" else field, code)
    elif what.startswith("Expected `array` of length"):
        code = ErrorCode.EMPTY_BATCH if ">=" in what else ErrorCode.TOO_MANY_EVENTS
    elif what.startswith("Expected `object` of length"):
        code = _BOUND_CODES.get(field, ErrorCode.WRONG_TYPE)
    elif what.startswith("Expected `str` "):  # a pattern or length (ids have none)
        code = ErrorCode.INVALID_TEXT if is_key else _CODES.get(field, ErrorCode.INVALID_TEXT)
    where = f"{path} key" if is_key else path
    return InvalidRecord(code.value, f"{where}: {what}" if where else what)


def _convert(data: Mapping[str, Any], cls: type[S]) -> S:
    """``data`` as the record ``cls`` or :class:`InvalidRecord`: times and base64 parsed
    by the codec's rules first, then one strict ``msgspec.convert``, then the ids by the
    one id rule (msgspec's pattern would state it in characters; the rule counts bytes)."""
    before, after = _RULES[cls]
    plain = dict(data)
    for name, parse in before:
        if type(value := plain.get(name)) is str:
            plain[name] = parse(value, name)
    try:
        record: S = msgspec.convert(plain, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise _error(str(exc), data) from None
    for name, check in after:
        if (value := getattr(record, name)) is not None:
            check(value, name)
    return record


def _id(
    value: object, where: str, *, campaign: bool = False, max_bytes: int = ids.MAX_ID_BYTES
) -> str:
    """An id by the one id rule (``core.ids``); campaign ids also refuse braces."""
    if not isinstance(value, str):
        _fail(ErrorCode.WRONG_TYPE, where, f"must be a string, got {_json_type(value)}")
    problem = ids.id_problem(value, campaign=campaign, max_bytes=max_bytes)
    if problem is not None:
        _fail(ErrorCode(problem[0]), where, f"{problem[1]}: {_show(value)}")
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
    if len(value) <= 27 and value[10] == "T" and value[-1] == "Z":
        # What nearly every producer writes (upper-case, UTC, at most microseconds),
        # already shaped by the pattern: the C parser reads it to the same instant
        # (tests compare it with the path below); a value it refuses takes that path
        # for the error message.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
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
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        _fail(ErrorCode.INVALID_TIME, where, f"{_show(value)} is not a valid time ({exc})")


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


# --------------------------------------------------------------------------------------
# Per-topic decoders
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
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


def _decode_spend(d: Mapping[str, Any], ctx: _Context) -> SpendRecord | SpendBatchRecord:
    if "events" in d:
        return _decode_batch(d, ctx)
    record = _convert(d, SpendRecord)
    ctx.not_too_old(record.event_time, "event_time")
    ctx.not_in_future(record.event_time, "event_time")
    return record


def _envelope() -> Any:
    """:class:`SpendBatchWire` with its events left as JSON data (each is judged on its
    own by :func:`_batch_event`); the bounds of the list stay the model's."""
    hints = get_type_hints(SpendBatchWire, include_extras=True)
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(SpendBatchWire):
        kind = hints[f.name]
        if f.name == "events":
            kind = Annotated.__class_getitem__((list[Any], *kind.__metadata__))  # type: ignore[attr-defined]
        spec.append((f.name, kind) if f.required else (f.name, kind, f.default))
    return msgspec.defstruct("SpendBatchEnvelope", spec, kw_only=True, forbid_unknown_fields=True)


_ENVELOPE: Final = _envelope()
_RULES: Final[dict[type[Any], tuple[_Rules, _Rules]]] = {
    cls: _rules(cls)
    for cls in (*RECORD_TYPES.values(), _ENVELOPE)
    if issubclass(cls, msgspec.Struct)
}


def _decode_batch(d: Mapping[str, Any], ctx: _Context) -> SpendBatchRecord:
    """The envelope is judged whole (any problem refuses the record); then each event on
    its own, with the checks and codes of a single spend record."""
    envelope = _convert(d, _ENVELOPE)
    campaign_id, source = envelope.campaign_id, envelope.source
    good: list[SpendRecord] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, event in enumerate(envelope.events):
        try:
            good.append(_batch_event(event, campaign_id, source, ctx))
            indexes.append(index)
        except InvalidRecord as exc:
            message = f"events[{index}].{exc.message}"
            rejected.append(RejectedEvent(index, exc.code, message, _ENCODER.encode(event)))
    return SpendBatchRecord(campaign_id, tuple(good), tuple(indexes), tuple(rejected), source)


def _batch_event(event: object, campaign_id: str, source: str | None, ctx: _Context) -> SpendRecord:
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
    record = _decode_spend(
        {**event, "schema_version": SCHEMA_VERSION, "campaign_id": campaign_id}, ctx
    )
    assert isinstance(record, SpendRecord)
    if record.source is None and source is not None:
        return msgspec.structs.replace(record, source=source)
    return record


# --------------------------------------------------------------------------------------
# Typed path of the spend topic: its records parsed straight into their model
# --------------------------------------------------------------------------------------


def _text_times(model: type[msgspec.Struct], name: str, **kinds: Any) -> Any:
    """``model`` with its event time as plain text (parsed by :func:`parse_time`:
    msgspec's own RFC 3339 reading differs from the codec's on fractions, offsets and
    separators) and the field types in ``kinds`` replaced."""
    hints = get_type_hints(model, include_extras=True)
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(model):
        kind = hints[f.name]
        if f.name == "event_time":
            kind = str
        elif f.name in kinds:  # the new type keeps the field's bounds
            kind = Annotated.__class_getitem__(  # type: ignore[attr-defined]
                (kinds[f.name], *getattr(kind, "__metadata__", ()))
            )
        # ``schema_version`` is required here: filled in by default, it would hide a
        # record that lacks it from the key count.
        required = f.required or f.name == "schema_version"
        spec.append((f.name, kind) if required else (f.name, kind, f.default))
    return msgspec.defstruct(name, spec, kw_only=True, forbid_unknown_fields=True)


_TypedEvent: Final = _text_times(SpendEventWire, "TypedSpendEvent")
_TYPED_SINGLE: Final = msgspec.json.Decoder(_text_times(SpendWire, "TypedSpend"))
_TYPED_BATCH: Final = msgspec.json.Decoder(
    _text_times(SpendBatchWire, "TypedSpendBatch", events=list[_TypedEvent])
)
_SPEND_CHECKS: Final = _RULES[SpendRecord][1]
_asdict: Final = msgspec.structs.asdict
_astuple: Final = msgspec.structs.astuple


def _typed_spend(raw: bytes, ctx: _Context) -> SpendRecord | SpendBatchRecord | None:
    """A spend record (single or batch) in one typed msgspec pass, or None when the
    strict path must judge it: anything msgspec refuses or the checks after it refuse,
    an escape, a repeated key or an explicit null (the keys present must be exactly the
    colons outside strings), a batch with any event the decoder would reject. What it
    returns is what the strict path returns for the same bytes (property tests hold the
    two together). Why: the untyped pass and ``msgspec.convert`` after it build every
    object twice, a cost paid per record (docs/streaming.md has the timings)."""
    if b"\\" in raw:
        return None
    batch = b'"events"' in raw
    try:
        wire = (_TYPED_BATCH if batch else _TYPED_SINGLE).decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    keys = _present(wire) + (sum(map(_present, wire.events)) if batch else 0)
    if keys != b"".join(raw.split(b'"')[::2]).count(b":"):
        return None
    try:
        if not batch:
            return _typed_event(wire, wire.campaign_id, ctx)
        campaign_id, source = wire.campaign_id, wire.source
        for name, check in _RULES[_ENVELOPE][1]:
            if (value := getattr(wire, name)) is not None:
                check(value, name)
        events = []
        for event in wire.events:
            own = event.campaign_id
            if own is not None and own != campaign_id:
                return None
            record = _typed_event(event, campaign_id, ctx)
            if record.source is None and source is not None:
                record = msgspec.structs.replace(record, source=source)
            events.append(record)
    except InvalidRecord:
        return None
    return SpendBatchRecord(campaign_id, tuple(events), tuple(range(len(events))), (), source)


def _present(struct: msgspec.Struct) -> int:
    """Fields of a decoded struct that are not None: the keys its object held, when
    no key was written as an explicit null (which the caller's colon count catches)."""
    values = _astuple(struct)
    return len(values) - values.count(None)


def _typed_event(wire: Any, campaign_id: str, ctx: _Context) -> SpendRecord:
    fields_ = _asdict(wire)
    fields_["campaign_id"] = campaign_id
    fields_["event_time"] = event_time = parse_time(wire.event_time, "event_time")
    record = SpendRecord(**fields_)
    for name, check in _SPEND_CHECKS:
        if (value := getattr(record, name)) is not None:
            check(value, name)
    ctx.not_too_old(event_time, "event_time")
    ctx.not_in_future(event_time, "event_time")
    return record


def _decode_budget(d: Mapping[str, Any], ctx: _Context) -> BudgetRecord:
    record = _convert(d, BudgetRecord)
    if record.timezone not in _known_zones():
        _fail(
            ErrorCode.INVALID_TIMEZONE,
            "timezone",
            f"{_show(record.timezone)} is not an IANA time zone",
        )
    record.core_thresholds()
    return record


def _decode_command(d: Mapping[str, Any], ctx: _Context) -> CommandRecord:
    record = _convert(d, CommandRecord)
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
    record = _convert(d, CanSpendRequest)
    ctx.not_too_old(record.requested_at, "requested_at")
    ctx.not_in_future(record.requested_at, "requested_at")
    return record


def _output(cls: type[Any]) -> Callable[[Mapping[str, Any], _Context], Record]:
    """The decoder of a topic without rules beyond its model's (the outputs, the DLQ)."""
    return lambda d, ctx: _convert(d, cls)


_SPECIAL: Final[Mapping[str, Callable[[Mapping[str, Any], _Context], Record]]] = {
    topics.SPEND: _decode_spend,
    topics.BUDGETS: _decode_budget,
    topics.COMMANDS: _decode_command,
    topics.CAN_SPEND_REQUESTS: _decode_request,
}
_DECODERS: Final[Mapping[str, Callable[[Mapping[str, Any], _Context], Record]]] = {
    topic: _SPECIAL.get(topic) or _output(cls) for topic, cls in RECORD_TYPES.items()
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


def _context(now: datetime | None, history_days: int, max_future_skew_s: int) -> _Context:
    if now is None:
        return _NO_CONTEXT
    return _Context(aware(now, what="now"), *_spans(history_days, max_future_skew_s))


@lru_cache(maxsize=8)
def _spans(history_days: int, max_future_skew_s: int) -> tuple[timedelta, timedelta]:
    return timedelta(days=history_days), timedelta(seconds=max_future_skew_s)


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
    raw = _payload_bytes(payload)
    limit = max_bytes
    if topic == topics.SPEND and b'"events"' in raw:  # only a batch may be larger
        limit = max(max_bytes, max_batch_bytes)
    if topic == topics.SPEND and len(raw) <= limit:
        typed = _typed_spend(raw, ctx)
        if typed is not None and len(raw) <= (
            max_batch_bytes if isinstance(typed, SpendBatchRecord) else max_bytes
        ):
            return typed
    data = (_fast_load(raw) if len(raw) <= limit else None) or _load(raw, limit)
    if topic == topics.SPEND:
        allowed = max_batch_bytes if "events" in data else max_bytes
        if len(raw) > allowed:
            _fail(ErrorCode.PAYLOAD_TOO_LARGE, "", f"payload is {len(raw)} bytes > {allowed}")
    return _decode_obj(topic, data, ctx)


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
    try:
        _check_values(dict(data), floats=False)  # a non-finite float: the field's type first
        record = _decode_obj(topic, data, _context(now, history_days, max_future_skew_s))
        _check_values(dict(data))
    except _Odd as exc:
        _fail(exc.code, "", str(exc))
    return record


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
    try:
        return _id(campaign_id, "key", campaign=True), ChannelType(channel)
    except ValueError:
        _fail(ErrorCode.UNKNOWN_CHANNEL, "key", f"unknown channel {_show(channel)}")


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
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += f".{u.microsecond:06d}"
    return text + "Z"


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` (microseconds only when non-zero); naive refused."""
    if not isinstance(value, datetime):
        _fail(ErrorCode.WRONG_TYPE, "", f"expected a datetime, got {type(value).__name__}")
    return _fmt_time(value)


def _wire_value(value: object, where: str) -> object:
    """A record's value as JSON data: enums by value, UTC times, base64 bytes, finite
    floats (msgspec would write NaN as null: refused here, always), mappings and structs
    as objects (see :func:`_struct_dict`)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            _fail(ErrorCode.NON_FINITE_NUMBER, where, f"cannot encode {value}")
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return _wire_value(float(value), where)
    if isinstance(value, datetime):
        return _fmt_time(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return _wire_mapping(value, where)
    if isinstance(value, msgspec.Struct):
        return _struct_dict(value, where)
    _fail(ErrorCode.WRONG_TYPE, where, f"cannot encode {type(value).__name__}")


def _wire_mapping(value: Mapping[object, object], where: str) -> dict[str, object]:
    """A mapping as a JSON object. Plain keys and values (str, int, finite float, None:
    nearly all of them, e.g. a pace snapshot's performance figures) are taken as they
    are, without a call and without building the path of each for an error message."""
    out: dict[str, object] = {}
    for k, v in value.items():
        key = k if type(k) is str else str(_wire_value(k, where))
        kind = type(v)
        if kind is str or kind is int or v is None or (kind is float and math.isfinite(v)):  # type: ignore[arg-type]
            out[key] = v
        else:
            out[key] = _wire_value(v, f"{where}.{k}")
    return out


@lru_cache(maxsize=64)
def _encoding(cls: type[msgspec.Struct]) -> tuple[tuple[str, str, bool], ...]:
    """(field name, wire name, optional) of a struct class, in order: reading them from
    ``msgspec.structs.fields`` resolves every annotation again (hundreds of µs)."""
    return tuple((f.name, f.encode_name, f.default is None) for f in msgspec.structs.fields(cls))


def _struct_dict(struct: msgspec.Struct, where: str = "") -> dict[str, object]:
    """A struct's fields by wire name, in order, without unset ones and without optional
    ones left at ``None`` (or given as an empty mapping)."""
    out: dict[str, object] = {}
    for name, wire_name, optional in _encoding(type(struct)):
        value = getattr(struct, name)
        kind = type(value)
        if kind is str or kind is int:  # the usual field, taken as it is (see _wire_mapping)
            out[wire_name] = value
        elif value is msgspec.UNSET or (optional and (value is None or value == {})):
            continue
        else:
            out[wire_name] = _wire_value(value, f"{where}.{name}" if where else name)
    return out


def to_dict(record: Record) -> dict[str, object]:
    """The JSON object of ``record`` (what :func:`encode` serialises), unvalidated: its
    fields in order, ``schema_version`` first, absent ``None`` values and empty optional
    mappings."""
    if isinstance(record, SpendBatchRecord):
        out: dict[str, object] = {"schema_version": SCHEMA_VERSION}
        out["campaign_id"] = record.campaign_id
        out["events"] = [_batch_event_dict(record, event) for event in record.events]
        if record.source is not None:
            out["source"] = record.source
        return out
    if type(record) is not RECORD_TYPES.get(getattr(record, "topic", "")):
        _fail(ErrorCode.UNKNOWN_TOPIC, "", f"not a record: {type(record).__name__}")
    return _struct_dict(record)


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


def encode(record: Record, *, validate: bool = True) -> bytes:
    """Compact JSON bytes of ``record``.

    With ``validate`` (the default) the object is checked by the very decoder of its
    topic (without time windows) before it is written, so whatever ``encode`` returns
    ``decode`` accepts; a bad field raises :class:`InvalidRecord` with the same code
    ``decode`` would give. ``validate=False`` skips that second pass on hot paths (the
    non-finite-float and naive-time checks stay).
    """
    data = to_dict(record)
    if not validate:
        return _ENCODER.encode(data)
    checked = _decode_obj(record.topic, data, _NO_CONTEXT)
    encoded = _ENCODER.encode(data)
    if isinstance(checked, SpendBatchRecord):
        if checked.rejected:
            raise InvalidRecord(checked.rejected[0].code, checked.rejected[0].message)
        if len(encoded) > MAX_BATCH_BYTES:
            size = f"batch is {len(encoded)} bytes > {MAX_BATCH_BYTES}"
            _fail(ErrorCode.PAYLOAD_TOO_LARGE, "", size)
    return encoded


def _signing_bytes(record: BudgetRecord | CommandRecord) -> bytes:
    data = to_dict(record)
    data.pop("signature", None)
    return _SORTED_ENCODER.encode(data)


def encode_spend(event: SpendEvent, *, source: str | None = None) -> bytes:
    return encode(SpendRecord.from_core(event, source=source))


def encode_spend_batch(
    campaign_id: str, events: Sequence[SpendEvent], *, source: str | None = None
) -> bytes:
    """One batch spend record of ``events`` (all of ``campaign_id``; publish it with key
    ``campaign_id``). Raises :class:`InvalidRecord` for an event a decoder would reject
    (its message names the event's index), no events, more than
    :data:`MAX_BATCH_EVENTS`, or more than :data:`MAX_BATCH_BYTES`."""
    parts = []
    for index, event in enumerate(events):
        try:
            parts.append(encode_batch_event(event, campaign_id))
        except InvalidRecord as exc:
            raise InvalidRecord(exc.code, f"events[{index}].{exc.message}") from None
    return encode_batch(campaign_id, parts, source=source)


def encode_batch_event(event: SpendEvent, campaign_id: str) -> bytes:
    """``event`` as a batch record of ``campaign_id`` carries it (no ``schema_version``;
    its campaign only where it differs, which the check refuses), checked by the rules
    the decoder applies to a batch's event. The pieces :func:`encode_batch` joins: a
    publisher that packs events as they come encodes and checks each one once."""
    data = _struct_dict(SpendRecord.from_core(event))
    del data["schema_version"]
    if event.campaign_id == campaign_id:
        del data["campaign_id"]
    _batch_event(data, campaign_id, None, _NO_CONTEXT)
    return _ENCODER.encode(data)


def encode_batch(campaign_id: str, events: Sequence[bytes], *, source: str | None = None) -> bytes:
    """One batch spend record of events encoded by :func:`encode_batch_event` for
    ``campaign_id``, byte for byte what :func:`encode` writes for the same batch. Raises
    :class:`InvalidRecord` for a campaign id or source the decoder refuses, no events,
    more than :data:`MAX_BATCH_EVENTS`, or more than :data:`MAX_BATCH_BYTES`."""
    envelope: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "campaign_id": campaign_id,
        "events": [None] * len(events),  # the model's bounds on the list, not its items
    }
    if source is not None:
        envelope["source"] = source
    _convert(envelope, _ENVELOPE)
    envelope["events"] = msgspec.Raw(b"[" + b",".join(events) + b"]")
    encoded = _ENCODER.encode(envelope)
    if len(encoded) > MAX_BATCH_BYTES:
        _fail(ErrorCode.PAYLOAD_TOO_LARGE, "", f"batch is {len(encoded)} bytes > {MAX_BATCH_BYTES}")
    return encoded


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
    "AlertRecord",
    "BreakerRecord",
    "BudgetRecord",
    "CanSpendReply",
    "CanSpendRequest",
    "ChannelBudget",
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
    "encode_batch",
    "encode_batch_event",
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
    "threshold_overrides",
    "to_dict",
]
