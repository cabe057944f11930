"""Wire decode benchmark: the spend record through the shipped decoder, msgspec and
pydantic v2, with the error mapping each library allows.

Why this exists: the wire contract is meant to move from hand-written checks
(``pacer_stream.wire.records``) to typed models that also generate the JSON Schemas. Two
libraries fit; this module measures, on the hottest record (``pacer.spend.v1``), what
matters for the choice:

- decode cost per valid record (bytes -> typed record, including the id rule), and
- how many cases of the bad-input corpus (``tests/contract/corpus``) each library's
  structured errors map to the stable DLQ code the contract names, with a mapper of the
  kind production code would keep (no per-case rules), and which ones they miss.

Both candidate models check exactly what the shipped decoder checks for a spend
record (types, integer micros in 0 .. 2**53-1, aware RFC 3339 times, channel enum,
``schema_version`` 1, unknown fields refused, the one id rule, the clock window). Run
``python -m pacer_stream.bench.wire_bench`` (needs the ``bench`` extra for msgspec);
docs/streaming.md quotes the figures and the decision.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from pacer_stream.core import ids
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import ChannelType
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, topics

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
VALID = (
    b'{"schema_version":1,"event_id":"evt-000123","campaign_id":"camp-42",'
    b'"channel":"google_ads","amount_micros":1500000,"event_time":"2026-03-02T10:00:00Z",'
    b'"clicks":3,"conversions":1,"impressions":120,"revenue_micros":4000000,'
    b'"reservation_id":null,"source":"gads-connector"}'
)
#: The contract's bad-input corpus (in the repository, beside the contract tests).
CORPUS = Path(__file__).resolve().parents[2] / "tests/contract/corpus/bad_inputs.jsonl"

Code = str
Decoder = Callable[[bytes], object]


def _window(event_time: datetime) -> None:
    """The clock window every candidate applies last, as ``records.decode`` does."""
    if event_time < NOW - timedelta(days=records.DEFAULT_HISTORY_DAYS):
        raise InvalidRecord("time_too_old", "event_time too old")
    if event_time > NOW + timedelta(seconds=records.DEFAULT_MAX_FUTURE_SKEW_S):
        raise InvalidRecord("time_in_future", "event_time in the future")


def _prechecks(payload: bytes) -> None:
    """Size limits: the same cheap guard in front of every candidate."""
    if not payload:
        raise InvalidRecord("empty_payload", "empty payload")
    if len(payload) > records.DEFAULT_MAX_PAYLOAD_BYTES:
        raise InvalidRecord("payload_too_large", "payload too large")


# --- msgspec ---------------------------------------------------------------------------

Micros = Annotated[int, msgspec.Meta(ge=0, le=MAX_MICROS)]
Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class MsgspecSpend(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    schema_version: Literal[1]
    event_id: str
    campaign_id: str
    channel: ChannelType
    amount_micros: Micros
    event_time: Aware
    clicks: Micros
    conversions: Micros
    impressions: Micros | None = None
    revenue_micros: Micros | None = None
    reservation_id: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into ValidationError(message): the code can
        # only travel inside the message text.
        for name, campaign, size in _ID_FIELDS:
            value = getattr(self, name)
            if value is not None and (
                p := ids.id_problem(value, campaign=campaign, max_bytes=size)
            ):
                raise ValueError(f"{p[0]}: {name} {p[1]}")


_ID_FIELDS = (
    ("event_id", False, ids.MAX_ID_BYTES),
    ("campaign_id", True, ids.MAX_ID_BYTES),
    ("reservation_id", False, ids.MAX_TOKEN_BYTES),
    ("source", False, ids.MAX_ID_BYTES),
)
_MSGSPEC_DECODER = msgspec.json.Decoder(MsgspecSpend)
_MSGSPEC_RULES: tuple[tuple[re.Pattern[str], Code], ...] = tuple(
    (re.compile(pattern), code)
    for pattern, code in (
        (r"^(empty_id|invalid_id): ", ""),  # the code is the message's first word
        (r"unknown field", "unknown_field"),
        (r"missing required field", "missing_field"),
        (r"Expected `int`, got `float`", "float_not_allowed"),
        (r"Expected `int` [<>]=", "number_out_of_range"),
        (r"Invalid enum value .* `\$\.schema_version`", "unknown_schema_version"),
        (r"Invalid enum value .* `\$\.channel`", "unknown_channel"),
        (r"RFC3339|timezone component", "invalid_time"),
        (r"Expected `object`", "invalid_json"),
        (r"Expected `", "wrong_type"),
    )
)


def msgspec_code(exc: Exception) -> Code:
    """A stable code from msgspec's error, which is a message plus a ``$.path``."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return "invalid_json"
    text = str(exc)
    for pattern, code in _MSGSPEC_RULES:
        if pattern.search(text):
            return code or text.split(":", 1)[0]
    return "unmapped"


def decode_msgspec(payload: bytes) -> MsgspecSpend:
    _prechecks(payload)
    try:
        record = _MSGSPEC_DECODER.decode(payload)
    except UnicodeDecodeError as exc:  # not a msgspec error: bytes that are not UTF-8
        raise InvalidRecord("invalid_json", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRecord(msgspec_code(exc), str(exc)) from None
    _window(record.event_time)
    return record


# --- pydantic v2 -----------------------------------------------------------------------


def _id_rule(campaign: bool, size: int) -> AfterValidator:
    def check(value: str) -> str:
        if p := ids.id_problem(value, campaign=campaign, max_bytes=size):
            # The code travels as the error's machine-readable ``type``.
            raise PydanticCustomError(p[0], "{why}", {"why": p[1]})
        return value

    return AfterValidator(check)


Id = Annotated[str, _id_rule(False, ids.MAX_ID_BYTES)]
CampaignId = Annotated[str, _id_rule(True, ids.MAX_ID_BYTES)]
Token = Annotated[str, _id_rule(False, ids.MAX_TOKEN_BYTES)]
PMicros = Annotated[int, Field(ge=0, le=MAX_MICROS)]


class PydanticSpend(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: Literal[1]
    event_id: Id
    campaign_id: CampaignId
    channel: ChannelType
    amount_micros: PMicros
    event_time: pydantic.AwareDatetime
    clicks: PMicros
    conversions: PMicros
    impressions: PMicros | None = None
    revenue_micros: PMicros | None = None
    reservation_id: Token | None = None
    source: Id | None = None


class PydanticSpendFromDict(PydanticSpend):
    """Strict mode refuses text for an enum or a time when the input is a dict rather
    than JSON, so these two fields are lax here (which also lets an epoch number in)."""

    channel: Annotated[ChannelType, Field(strict=False)]
    event_time: Annotated[pydantic.AwareDatetime, Field(strict=False)]


_PYDANTIC_TYPES: dict[str, Code] = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "model_type": "invalid_json",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "less_than_equal": "number_out_of_range",
    "greater_than_equal": "number_out_of_range",
    "datetime_parsing": "invalid_time",
    "datetime_type": "wrong_type",
    "timezone_aware": "invalid_time",
    "empty_id": "empty_id",
    "invalid_id": "invalid_id",
}
_PYDANTIC_LOC: dict[tuple[str, str], Code] = {
    ("literal_error", "schema_version"): "unknown_schema_version",
    ("enum", "channel"): "unknown_channel",
}


def pydantic_code(exc: pydantic.ValidationError) -> Code:
    """A stable code from pydantic's first error: ``type`` plus ``loc`` (and the input,
    to tell ``1.0`` from ``"1"`` where both are ``int_type``)."""
    errors = exc.errors()
    # The version is reported before anything else, as the contract asks.
    first = next((e for e in errors if e["loc"][:1] == ("schema_version",)), errors[0])
    kind, field = first["type"], str(first["loc"][0]) if first["loc"] else ""
    if code := _PYDANTIC_LOC.get((kind, field)) or _PYDANTIC_TYPES.get(kind):
        return code
    if kind in ("int_type", "int_from_float"):
        return "float_not_allowed" if isinstance(first["input"], float) else "wrong_type"
    if kind.startswith(("datetime", "date_")):
        return "invalid_time"
    if kind.endswith("_type"):
        return "wrong_type"
    return "unmapped"


def decode_pydantic(payload: bytes) -> PydanticSpend:
    _prechecks(payload)
    try:
        record = PydanticSpend.model_validate_json(payload)
    except pydantic.ValidationError as exc:
        raise InvalidRecord(pydantic_code(exc), str(exc)) from None
    _window(record.event_time)
    return record


def _strict_json(payload: bytes) -> dict[str, Any]:
    """The hand-written JSON layer (duplicate keys, NaN, integer range, depth) and the
    version check that comes before any field error: what neither library does."""
    data = records._load(payload, records.DEFAULT_MAX_PAYLOAD_BYTES)
    version = data.get("schema_version")
    if "schema_version" in data and (type(version) is not int or version != 1):
        raise InvalidRecord("unknown_schema_version", f"schema_version {version!r}")
    return data


def decode_strict_msgspec(payload: bytes) -> MsgspecSpend:
    data = _strict_json(payload)
    try:
        record = msgspec.convert(data, MsgspecSpend, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidRecord(msgspec_code(exc), str(exc)) from None
    _window(record.event_time)
    return record


def decode_strict_pydantic(payload: bytes) -> PydanticSpend:
    data = _strict_json(payload)
    try:
        record = PydanticSpendFromDict.model_validate(data)
    except pydantic.ValidationError as exc:
        raise InvalidRecord(pydantic_code(exc), str(exc)) from None
    _window(record.event_time)
    return record


def decode_shipped(payload: bytes) -> object:
    return records.decode(topics.SPEND, payload, now=NOW)


CANDIDATES: dict[str, Decoder] = {
    "records.decode (shipped)": decode_shipped,
    "msgspec Struct": decode_msgspec,
    "pydantic v2 strict model": decode_pydantic,
    "strict JSON + msgspec.convert": decode_strict_msgspec,
    "strict JSON + pydantic validate": decode_strict_pydantic,
}


# --- measurement -----------------------------------------------------------------------


def cost_us(decoder: Decoder, payload: bytes = VALID, n: int = 50_000, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean decode cost of one valid spend record, in microseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            decoder(payload)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def spend_corpus(path: Path | None = None) -> list[tuple[str, Code, bytes]]:
    """``(name, expected code, payload)`` of the corpus's single-record spend cases (the
    batch envelope cases, ``batch_*``, are not a candidate's business); none when the
    corpus is not there (an installed package without the repository's tests)."""
    cases: list[tuple[str, Code, bytes]] = []
    path = path or CORPUS
    if not path.exists():
        return cases
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line) if line.strip() else None
        if entry is None or entry["topic"] != topics.SPEND or entry["name"].startswith("batch_"):
            continue
        if "payload_b64" in entry:
            payload = base64.b64decode(entry["payload_b64"])
        else:
            payload = entry["payload"].encode("utf-8", "surrogatepass")
        if entry.get("pad_to"):
            payload = payload.ljust(entry["pad_to"], b" ")
        cases.append((entry["name"], entry["code"], payload))
    return cases


def corpus_misses(decoder: Decoder) -> list[tuple[str, Code, Code]]:
    """``(case, expected, got)`` for each spend corpus case not refused with its code
    (``got`` is ``accepted`` when the candidate let the bad record through)."""
    misses = []
    for name, expected, payload in spend_corpus():
        try:
            decoder(payload)
            got = "accepted"
        except InvalidRecord as exc:
            got = exc.code
        if got != expected:
            misses.append((name, expected, got))
    return misses


def batch_payload(events: int = records.MAX_BATCH_EVENTS) -> bytes:
    """A batch spend record of ``events`` copies of :data:`VALID`'s event (ids differ)."""
    event = json.loads(VALID)
    del event["schema_version"], event["campaign_id"]
    batch = [{**event, "event_id": f"evt-{i}"} for i in range(events)]
    return json.dumps(
        {"schema_version": 1, "campaign_id": "camp-42", "events": batch}, separators=(",", ":")
    ).encode()


def batch_cost_us(events: int = records.MAX_BATCH_EVENTS) -> float:
    """Cost per event of ``records.decode`` on one batch of ``events`` events."""
    payload = batch_payload(events)
    return cost_us(decode_shipped, payload, n=max(1, 20_000 // events)) / events


def run() -> dict[str, Any]:
    """Cost and corpus agreement of every candidate, as one report."""
    total = len(spend_corpus())
    report: dict[str, Any] = {
        "spend_corpus_cases": total,
        "candidates": {},
        "batch_us_per_event": round(batch_cost_us(), 2),
    }
    for label, decoder in CANDIDATES.items():
        decoder(VALID)  # the valid record decodes under every candidate
        misses = corpus_misses(decoder)
        report["candidates"][label] = {
            "us_per_record": round(cost_us(decoder), 2),
            "corpus_codes_matched": total - len(misses),
            "misses": misses,
        }
    return report


def show(report: dict[str, Any], out: Callable[[str], object] = print) -> None:
    """Print the report: cost per record, corpus agreement and each miss."""
    total = report["spend_corpus_cases"]
    out(f"pacer.spend.v1 decode, {sys.implementation.name} {sys.version.split()[0]}")
    if not total:
        out(f"(no bad-input corpus at {CORPUS}: error mapping not compared)")
    for label, row in report["candidates"].items():
        out(
            f"{label:32} {row['us_per_record']:6.2f} us/record   "
            f"corpus codes {row['corpus_codes_matched']}/{total}"
        )
        for name, expected, got in row["misses"]:
            out(f"    {name}: expected {expected}, got {got}")
    out(
        f"{'records.decode, batch of ' + str(records.MAX_BATCH_EVENTS):32} "
        f"{report['batch_us_per_event']:6.2f} us/event"
    )


if __name__ == "__main__":
    show(run())
