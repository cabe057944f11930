"""The wire shape of every pacer-stream topic record, defined once as msgspec ``Struct``s.

These models are the single definition of each topic's fields, types, bounds and
descriptions: ``topics/schemas/*.json`` are generated from them (see
:mod:`pacer_stream.wire.schemas`), and they decode a payload in one C pass with strict
types (``1.0`` is not an integer, ``"1"`` is not a number). Input topics forbid unknown
fields; output topics ignore them, so readers keep working when v1 output gains a field.

The record classes of :mod:`pacer_stream.wire.records` subclass these models and add methods
only. Ids, times and base64 state their pattern here for the schema; the codec checks
them by its own rules (ids in bytes, RFC 3339 stricter than msgspec's datetime parser).

Enumerations come from the core's enums (``ChannelType``, ``Code``, ...), never copies.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, get_type_hints

import msgspec
from msgspec import Meta

from pacer_stream.core.ids import MAX_ID_BYTES, MAX_TOKEN_BYTES
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import (
    AlertType,
    BreakerCause,
    ChannelType,
    CircuitBreakerState,
    Code,
    PacingStrategy,
    Severity,
    Thresholds,
)
from pacer_stream.core.validation import FRACTIONS, POSITIVE, POSITIVE_INTS
from pacer_stream.wire import topics

MAX_TEXT_LENGTH: Final = 4096
MAX_DEADLINE_MS: Final = 86_400_000
MAX_PARTITION: Final = 2**31 - 1
#: Most events one batch spend record may carry.
MAX_BATCH_EVENTS: Final = 1000
#: Largest accepted batch spend record in bytes (single records keep their own limit).
MAX_BATCH_BYTES: Final = 256 * 1024
_MICROS_NOTE: Final = "Integer micros (1 unit = 1,000,000), written without fraction or exponent."
_TIME_NOTE: Final = "RFC 3339 with an explicit offset (Z or +HH:MM)."
#: Non-blank, no C0/C1 control characters.
_ID_CHARS: Final = (
    "\\u0000-\\u001f\\u007f-\\u00a0\\u00ad\\u1680\\u180e\\u2000-\\u200f"
    "\\u2028-\\u202f\\u205f-\\u206f\\u3000\\ufeff"
)
#: Non-blank, no control, format or non-ASCII space characters (``core.ids`` checks the
#: byte length and is the rule; the schema states it in characters).
ID_PATTERN: Final = f"^(?=.*\\S)[^{_ID_CHARS}]+$"
#: Campaign ids also refuse braces (they would change the Redis hash tag).
CAMPAIGN_ID_PATTERN: Final = f"^(?=.*\\S)[^{_ID_CHARS}{{}}]+$"
#: Free text: tabs and newlines allowed, other C0 controls, DEL and lone surrogates not.
TEXT_PATTERN: Final = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f\\ud800-\\udfff]*$"
TIME_PATTERN: Final = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?"
    "([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
TOPIC_PATTERN: Final = "^[A-Za-z0-9._-]{1,249}$"
B64_PATTERN: Final = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class CommandType(StrEnum):
    """What an operator command does (``pacer.commands.v1``)."""

    EMERGENCY_STOP = "emergency_stop"
    RESUME = "resume"
    REALLOCATE = "reallocate"
    FORCE_BREAKER = "force_breaker"


#: Every enumeration a topic uses.
ENUMS: Final = (
    AlertType,
    BreakerCause,
    ChannelType,
    CircuitBreakerState,
    Code,
    CommandType,
    PacingStrategy,
    Severity,
)


def _values(enum: type[Enum]) -> list[Any]:
    return [m.value for m in enum]


def _d(text: str) -> Meta:
    return Meta(description=text)


# Field types shared by the topics; a field adds its description with ``_d``.
Version = Annotated[Literal[1], _d("Wire format version; only 1 exists.")]


def _id(pattern: str, max_length: int = MAX_ID_BYTES) -> Meta:
    """An id's rule, stated in the schema only: the codec checks ids by the one id rule
    (``core.ids``, which counts bytes) after msgspec, so msgspec need not check them."""
    return Meta(extra_json_schema={"minLength": 1, "maxLength": max_length, "pattern": pattern})


Id = Annotated[str, _id(ID_PATTERN)]
CampaignId = Annotated[str, _id(CAMPAIGN_ID_PATTERN)]
#: Ids the worker composes from others (alert ids, reservation ids) may be longer.
Token = Annotated[str, _id(ID_PATTERN, MAX_TOKEN_BYTES)]
Text = Annotated[str, Meta(max_length=MAX_TEXT_LENGTH, pattern=TEXT_PATTERN)]
Count = Annotated[int, Meta(ge=0, le=MAX_MICROS)]
Micros = Annotated[int, Meta(ge=0, le=MAX_MICROS)]
PositiveMicros = Annotated[int, Meta(ge=1, le=MAX_MICROS)]
Ratio = Annotated[float, Meta(ge=0)]
#: An aware time. On the wire it is RFC 3339 text, parsed by ``records.parse_time``
#: before msgspec sees the object (msgspec's own parser is laxer: it accepts a space for
#: ``T``, ``+0100``, more than nine fraction digits, and rounds fractions).
Time = Annotated[
    datetime, Meta(tz=True, extra_json_schema={"pattern": TIME_PATTERN, "format": "date-time"})
]
TopicName = Annotated[str, Meta(pattern=TOPIC_PATTERN)]
#: Bytes; base64 text on the wire, decoded by ``records`` before msgspec sees the object.
B64 = Annotated[bytes, Meta(extra_json_schema={"pattern": B64_PATTERN})]
Signature = Annotated[str, Meta(max_length=1024, pattern=TEXT_PATTERN)]
MetricName = Annotated[str, Meta(max_length=64)]


def _m(text: str) -> Meta:
    return _d(f"{text} {_MICROS_NOTE}")


def _t(text: str) -> Meta:
    return _d(f"{text} {_TIME_NOTE}")


# The signature fields of signed topics (budgets, commands); verified by the worker's
# command-authentication layer, not by the codec.
KeyId = Annotated[Id, _d("Id of the HMAC key that signed this record.")]
Nonce = Annotated[Id, _d("Single-use value against replays.")]
SignatureExpiry = Annotated[Time, _t("The signature is not valid after this time.")]
RecordSignature = Annotated[
    Signature,
    _d(
        "HMAC-SHA256 signature over the record's canonical bytes "
        "(docs/streaming.md: signed commands)."
    ),
]


class WireRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every topic model: ``schema_version`` first, the topic it travels on, the
    schema's title and description (generated into ``topics/schemas``)."""

    topic: ClassVar[str]
    title: ClassVar[str]
    about: ClassVar[str]
    #: Extra JSON Schema keywords a type cannot express (cross-field rules).
    schema_extra: ClassVar[dict[str, Any]] = {}

    schema_version: Version = 1


class InputRecord(WireRecord, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Input topics reject unknown fields: a typo must not be silently ignored."""


class OutputRecord(WireRecord, frozen=True, kw_only=True):
    """Output topics are read tolerantly: v1 output may gain fields."""


class SpendWire(InputRecord, frozen=True, kw_only=True):
    topic = topics.SPEND
    title = "SpendTransaction"
    about = "One spend fact reported by an ad platform; key campaign_id."

    event_id: Annotated[Id, _d("Producer-assigned unique id; duplicates are ignored.")]
    campaign_id: Annotated[CampaignId, _d("Campaign (also the record key).")]
    channel: Annotated[ChannelType, _d("Channel.")]
    amount_micros: Annotated[
        Micros, _m("Amount spent; 0 for click/conversion-only events.")
    ]
    event_time: Annotated[Time, _t("When the spend happened (event time).")]
    clicks: Annotated[Count, _d("Clicks in this event.")]
    conversions: Annotated[Count, _d("Conversions in this event.")]
    impressions: Annotated[Count, _d("Impressions in this event.")] | None = None
    revenue_micros: Annotated[Micros, _m("Conversion value.")] | None = None
    reservation_id: Annotated[Token, _d("Reservation this spend settles.")] | None = None
    source: Annotated[Id, _d("Name of the reporter; informational.")] | None = None


def _batch_event(model: type[msgspec.Struct]) -> Any:
    """One event of a batch: ``model``'s fields without ``schema_version``, with
    ``campaign_id`` optional (an event may repeat the batch's, and only that)."""
    hints = get_type_hints(model, include_extras=True)
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(model):
        if f.name == "campaign_id":
            spec.append((f.name, hints[f.name] | None, None))
        elif f.name != "schema_version":
            spec.append((f.name, hints[f.name]) if f.required else (f.name, hints[f.name], None))
    return msgspec.defstruct(
        "SpendEventWire", spec, kw_only=True, frozen=True, forbid_unknown_fields=True
    )


#: An event of a batch spend record (see :class:`SpendBatchWire`).
SpendEventWire: Any = _batch_event(SpendWire)
SpendEventWire.__doc__ = (
    "One spend event of a batch: the fields of a single spend record without "
    "schema_version; campaign_id may be omitted and, when present, must equal the batch's."
)


class SpendBatchWire(InputRecord, frozen=True, kw_only=True):
    topic = topics.SPEND
    title = "SpendTransaction batch"
    about = (
        f"Up to {MAX_BATCH_EVENTS} spend events of one campaign in one record "
        f"(at most {MAX_BATCH_BYTES // 1024} KiB); key campaign_id. Each event is judged "
        "on its own: a malformed one is dead-lettered with its index, the others apply."
    )

    campaign_id: Annotated[CampaignId, _d("Campaign of every event (also the record key).")]
    events: Annotated[
        list[SpendEventWire],
        Meta(min_length=1, max_length=MAX_BATCH_EVENTS),
        _d("The events, in the order they apply."),
    ]
    source: Annotated[
        Id, _d("Name of the reporter, for the events that do not name their own.")
    ] | None = None


class ChannelBudget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    daily_budget_micros: Annotated[PositiveMicros, _m("Daily budget of the channel.")]
    strategy: Annotated[PacingStrategy, _d("Strategy for this channel.")] | None = None


#: Bounds of the tunables, from the core's own range lists (the core checks them again,
#: with cross-field rules); a tunable not listed gets the default bounds of its type
#: (see ``_threshold_type``).
THRESHOLD_BOUNDS: Final[dict[str, Meta]] = {
    **{name: Meta(ge=0, le=1) for name in FRACTIONS},
    **{name: Meta(gt=0) for name in POSITIVE},
    **{name: Meta(ge=1, le=MAX_MICROS) for name in (*POSITIVE_INTS, "max_cost_per_click_micros")},
}


def _threshold_type(name: str, annotation: object) -> Any:
    """The wire type of one ``Thresholds`` field: integers stay integers, floats accept
    any JSON number, ``X | None`` tunables accept ``null`` (switched off)."""
    parts = {p.strip() for p in str(getattr(annotation, "__name__", annotation)).split("|")}
    base: Any = int if parts - {"None"} == {"int"} else float
    bounds = THRESHOLD_BOUNDS.get(name) or (
        Meta(ge=0, le=MAX_MICROS) if base is int else Meta(ge=0)
    )
    kind: Any = Annotated[base, bounds]
    return (kind | None) if "None" in parts else kind


#: Every tunable of the core's ``Thresholds``, all optional (overrides only).
ThresholdsWire: Any = msgspec.defstruct(
    "ThresholdsWire",
    [(f.name, _threshold_type(f.name, f.type), msgspec.UNSET) for f in fields(Thresholds)],
    frozen=True,
    forbid_unknown_fields=True,
)
ThresholdsWire.__doc__ = (
    "Overrides of the pacing tunables by name (the others keep their defaults). "
    "Integer tunables must be integers."
)


class BudgetWire(InputRecord, frozen=True, kw_only=True):
    topic = topics.BUDGETS
    title = "Campaign configuration"
    about = (
        "Daily budgets per channel, strategy, time zone and thresholds of one campaign; "
        "key campaign_id, compacted (the latest record wins)."
    )

    campaign_id: Annotated[CampaignId, _d("Campaign (also the record key).")]
    timezone: Annotated[str, Meta(min_length=1), _d("IANA time zone of the campaign's day.")]
    strategy: Annotated[PacingStrategy, _d("Default pacing strategy.")]
    channels: Annotated[
        dict[ChannelType, ChannelBudget],
        Meta(min_length=1, extra_json_schema={"propertyNames": {"enum": _values(ChannelType)}}),
        _d("Budget per channel."),
    ]
    thresholds: ThresholdsWire | None = None
    updated_at: Annotated[Time, _t("When the configuration was written.")]
    key_id: KeyId | None = None
    nonce: Nonce | None = None
    expires_at: SignatureExpiry | None = None
    signature: RecordSignature | None = None


class CommandWire(InputRecord, frozen=True, kw_only=True):
    topic = topics.COMMANDS
    title = "Operator command"
    about = (
        "emergency_stop, resume, reallocate or force_breaker for one campaign; key "
        "campaign_id. force_breaker needs channel and state; state is only allowed there."
    )
    schema_extra = {
        "if": {"properties": {"command": {"const": "force_breaker"}}, "required": ["command"]},
        "then": {
            "required": ["channel", "state"],
            "properties": {"channel": {"type": "string"}, "state": {"type": "string"}},
        },
        "else": {"properties": {"state": {"type": "null"}}},
    }

    command_id: Annotated[Id, _d("Unique id of the command.")]
    campaign_id: Annotated[CampaignId, _d("Campaign (also the record key).")]
    command: Annotated[CommandType, _d("What to do.")]
    channel: Annotated[ChannelType, _d("Channel the command applies to.")] | None = None
    state: Annotated[CircuitBreakerState, _d("Breaker state to force.")] | None = None
    reason: Annotated[Text, _d("Why (audit log).")]
    issued_at: Annotated[Time, _t("When the command was issued.")]
    key_id: KeyId | None = None
    nonce: Nonce | None = None
    expires_at: SignatureExpiry | None = None
    signature: RecordSignature | None = None


class CanSpendRequestWire(InputRecord, frozen=True, kw_only=True):
    topic = topics.CAN_SPEND_REQUESTS
    title = "Can-spend request"
    about = "A bid engine asks whether it may spend amount_micros; key campaign_id."

    request_id: Annotated[Id, _d("Correlation id, echoed in the reply.")]
    campaign_id: Annotated[CampaignId, _d("Campaign (also the record key).")]
    channel: Annotated[ChannelType, _d("Channel.")]
    amount_micros: Annotated[PositiveMicros, _m("Amount to reserve; must be positive.")]
    requested_at: Annotated[Time, _t("When the request was sent (only for the deadline).")]
    deadline_ms: Annotated[
        int,
        Meta(ge=1, le=MAX_DEADLINE_MS),
        _d("Drop the request if not answered within this many milliseconds of requested_at."),
    ]
    reply_to: Annotated[
        TopicName, _d(f"Topic for the reply (default {topics.CAN_SPEND_REPLIES}).")
    ] | None = None


class CanSpendReplyWire(OutputRecord, frozen=True, kw_only=True):
    topic = topics.CAN_SPEND_REPLIES
    title = "Can-spend reply"
    about = "The decision for one can-spend request; key campaign_id."

    request_id: Annotated[Id, _d("The request's id.")]
    campaign_id: Annotated[CampaignId, _d("Campaign.")]
    channel: Annotated[ChannelType, _d("Channel.")]
    allowed: Annotated[bool, _d("Whether the amount may be spent (and is reserved).")]
    code: Annotated[Code, _d("Stable machine code of the decision.")]
    reason: Annotated[Text, _d("Human-readable reason.")]
    reservation_id: Annotated[Token, _d("Reservation to name in the spend event.")] | None = None
    expires_at: Annotated[
        Time, _t("When the reservation is released if not settled.")
    ] | None = None
    remaining_micros: Annotated[
        Micros, _m("Daily budget minus spend and active reservations after this decision.")
    ]
    decided_at: Annotated[Time, _t("Worker clock at the decision.")]
    pacing_multiplier: Annotated[
        Ratio, _d("Bid/throttle multiplier for the bid engine.")
    ] | None = None


class AlertWire(OutputRecord, frozen=True, kw_only=True):
    topic = topics.ALERTS
    title = "PacingAlert"
    about = (
        "A pacing alert, emitted once per type per campaign/channel per state change; "
        "key campaign_id."
    )

    alert_id: Annotated[Token, _d("Unique event id of the alert (stable across replays).")]
    campaign_id: Annotated[CampaignId, _d("Campaign.")]
    channel: Annotated[ChannelType, _d("Channel, absent for campaign-wide alerts.")] | None = (
        None
    )
    alert_type: Annotated[AlertType, _d("Kind of alert.")]
    severity: Annotated[Severity, _d("Severity.")]
    pace_ratio: Annotated[Ratio, _d("Actual spend / planned spend by now.")]
    current_spend_micros: Annotated[Micros, _m("Spend so far today.")]
    budget_consumed_pct: Annotated[Ratio, _d("Spend / daily budget (0..1, may exceed 1).")]
    time_elapsed_pct: Annotated[Ratio, _d("Share of the campaign's day elapsed (0..1).")]
    recommended_action: Annotated[Text, _d("What an operator should do.")]
    at: Annotated[Time, _t("When the alert fired.")]
    thresholds: Annotated[
        dict[MetricName, Ratio], _d("The configured thresholds that fired, by name.")
    ]
    budget_micros: Annotated[Micros, _m("Daily budget.")] | None = None
    projected_overspend_micros: Annotated[
        Micros, _m("Projected spend above budget by day end.")
    ] | None = None


class BreakerWire(OutputRecord, frozen=True, kw_only=True):
    topic = topics.BREAKERS
    title = "Circuit breaker state"
    about = (
        "Latest circuit breaker state of one campaign/channel; key campaign_id:channel, "
        "compacted."
    )

    campaign_id: Annotated[CampaignId, _d("Campaign.")]
    channel: Annotated[ChannelType, _d("Channel.")]
    state: Annotated[CircuitBreakerState, _d("Breaker state.")]
    cause: Annotated[BreakerCause, _d("Why the breaker is in this state.")]
    since: Annotated[Time, _t("When the state began.")]
    until: Annotated[Time, _t("When an open breaker may go half-open.")] | None = None
    previous: Annotated[CircuitBreakerState, _d("State before this transition.")] | None = None
    forced: Annotated[bool, _d("A forced state never changes by itself.")] | None = None


class PaceWire(OutputRecord, frozen=True, kw_only=True):
    topic = topics.PACE
    title = "Pace snapshot"
    about = "Periodic pace snapshot of one campaign/channel for dashboards; key campaign_id."

    campaign_id: Annotated[CampaignId, _d("Campaign.")]
    channel: Annotated[ChannelType, _d("Channel.")]
    at: Annotated[Time, _t("Snapshot time.")]
    budget_micros: Annotated[Micros, _m("Daily budget.")]
    spent_micros: Annotated[Micros, _m("Spend today.")]
    reserved_micros: Annotated[Micros, _m("Active reservations.")]
    planned_micros: Annotated[Micros, _m("Planned cumulative spend by now.")]
    pace_ratio: Annotated[Ratio, _d("Actual / planned spend.")]
    time_elapsed_pct: Annotated[Ratio, _d("Share of the day elapsed (0..1).")]
    hour_allowance_micros: Annotated[Micros, _m("Allowance of the current hour.")]
    hour_spent_micros: Annotated[Micros, _m("Spend in the current hour.")]
    breaker: Annotated[CircuitBreakerState, _d("Breaker state.")]
    clicks: Annotated[Count, _d("Clicks today.")]
    conversions: Annotated[Count, _d("Conversions today.")]
    impressions: Annotated[Count, _d("Impressions today.")] | None = None
    revenue_micros: Annotated[Micros, _m("Conversion value today.")] | None = None
    pacing_multiplier: Annotated[Ratio, _d("Bid/throttle multiplier.")] | None = None
    performance: Annotated[
        dict[MetricName, dict[MetricName, int | float | None]],
        _d(
            "Derived metrics by window (today, 7 days, baseline, ...): "
            "name -> number or null."
        ),
    ] | None = None


class DlqWire(OutputRecord, frozen=True, kw_only=True):
    topic = topics.DLQ
    title = "Dead letter"
    about = (
        "A record that could not be accepted, with its original bytes and the error; "
        "key: the original record's key."
    )

    source_topic: Annotated[TopicName, _d("Topic the record came from.")]
    partition: Annotated[
        int, Meta(ge=-1, le=MAX_PARTITION), _d("Partition it came from (-1 if unknown).")
    ]
    offset: Annotated[
        int, Meta(ge=-1, le=MAX_MICROS), _d("Offset it came from (-1 if unknown).")
    ]
    key: Annotated[B64, _d("Original key, base64.")] | None = msgspec.field(
        default=None, name="key_b64"
    )
    payload: Annotated[
        B64, _d("Original payload bytes (possibly truncated), base64.")
    ] = msgspec.field(name="payload_b64")
    payload_size: Annotated[Count, _d("Size of the original payload in bytes.")] | None = None
    payload_truncated: Annotated[
        bool, _d("Only the first bytes of the payload are kept.")
    ] | None = None
    error_code: Annotated[
        str, Meta(max_length=64, pattern=TEXT_PATTERN), _d("Stable error code (records.ErrorCode).")
    ]
    error: Annotated[Text, _d("Human-readable error.")]
    at: Annotated[Time, _t("When the record was rejected.")]
    batch_index: Annotated[
        int,
        Meta(ge=0, le=MAX_BATCH_EVENTS - 1),
        _d("Position of the rejected event in its batch record (absent for a whole record)."),
    ] | None = None


#: Topic name -> its model.
MODELS: Final[dict[str, type[WireRecord]]] = {
    m.topic: m
    for m in (
        SpendWire,
        BudgetWire,
        CommandWire,
        CanSpendRequestWire,
        CanSpendReplyWire,
        AlertWire,
        BreakerWire,
        PaceWire,
        DlqWire,
    )
}
#: Topic name -> the other record shapes it accepts (the schema is a ``oneOf``).
VARIANTS: Final[dict[str, tuple[type[WireRecord], ...]]] = {topics.SPEND: (SpendBatchWire,)}
