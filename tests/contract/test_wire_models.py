"""The wire models are the single definition of the topics: the committed JSON Schemas
are exactly what ``pacer-stream schemas export`` generates from them, and the models decode
the codec's own output strictly (input topics) or tolerantly (output topics)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from pacer_stream.cli import app
from pacer_stream.core.types import Code
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, schemas, topics
from pacer_stream.wire.models import MODELS, CanSpendReplyWire, SpendWire
from pacer_stream.wire.records import Record, encode

from . import full_samples, minimal_samples

SCHEMA_DIR = topics.TOPICS_DIR / "schemas"


@pytest.mark.parametrize("topic", topics.ALL_TOPICS)
def test_committed_schema_equals_generated(topic: str) -> None:
    committed = (SCHEMA_DIR / f"{topic}.json").read_text(encoding="utf-8")
    assert committed == schemas.render(topic), "run: pacer-stream schemas export"


def test_every_topic_has_one_model() -> None:
    assert set(MODELS) == set(topics.ALL_TOPICS)


def test_export_command_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    stale = runner.invoke(app, ["schemas", "export", "--check", "--out", str(tmp_path)])
    assert stale.exit_code == 1
    assert "stale: pacer.spend.v1" in stale.output
    wrote = runner.invoke(app, ["schemas", "export", "--out", str(tmp_path)])
    assert wrote.exit_code == 0, wrote.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{t}.json" for t in topics.ALL_TOPICS
    )
    assert runner.invoke(app, ["schemas", "export", "--check", "--out", str(tmp_path)]
                         ).exit_code == 0
    (tmp_path / "pacer.dlq.v1.json").write_text("{}")
    assert schemas.stale(tmp_path) == [topics.DLQ]


def test_reply_codes_come_from_the_core_enum() -> None:
    enum = schemas.topic_schema(CanSpendReplyWire)["properties"]["code"]["enum"]
    assert enum == [c.value for c in Code]
    assert "reservation_limit" in enum


SAMPLES = full_samples() + minimal_samples()


@pytest.mark.parametrize("record", SAMPLES, ids=[f"{type(r).__name__}-{i}"
                                                 for i, r in enumerate(SAMPLES)])
def test_models_decode_codec_output(record: Record) -> None:
    model = MODELS[record.topic]
    decoded = msgspec.json.decode(encode(record), type=model)
    assert decoded.schema_version == 1


def _spend() -> dict[str, object]:
    return json.loads(encode(full_samples()[0]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount_micros": 1.0}, "Expected `int`, got `float` - at `$.amount_micros`"),
        ({"clicks": "3"}, "Expected `int`, got `str` - at `$.clicks`"),
        ({"amount_micros": 2**53}, "Expected `int` <= 9007199254740991"),
        ({"event_time": "2026-03-02T10:00:00"}, "Expected `datetime` with a timezone"),
        ({"channel": "radio"}, "Invalid enum value 'radio'"),
        ({"schema_version": 2}, "Invalid enum value 2"),
        ({"zz_unknown": 1}, "Object contains unknown field `zz_unknown`"),
    ],
)
def test_spend_model_is_strict(change: dict[str, object], message: str) -> None:
    payload = json.dumps({**_spend(), **change}).encode()
    with pytest.raises(msgspec.ValidationError, match=message.replace("$", r"\$")
                       .replace("(", r"\(").replace("[", r"\[")):
        msgspec.json.decode(payload, type=SpendWire)


def test_output_models_ignore_unknown_fields() -> None:
    reply = json.loads(encode(full_samples()[4]))
    decoded = msgspec.json.decode(json.dumps({**reply, "zz_new": 1}).encode(),
                                  type=CanSpendReplyWire)
    assert decoded.request_id == reply["request_id"]


# ------------------------------- records.decode (msgspec first) agrees with the strict path

_SPEND_TEXT = encode(full_samples()[0]).decode()
_REQUEST_TEXT = encode(full_samples()[3]).decode()
_VARIANTS = [
    (topics.SPEND, _SPEND_TEXT),
    (topics.SPEND, encode(minimal_samples()[0]).decode()),
    (topics.CAN_SPEND_REQUESTS, _REQUEST_TEXT),
    # explicit nulls, whitespace before the colon, '":' inside a value
    (topics.SPEND, encode(minimal_samples()[0]).decode()[:-1] + ',"source":null}'),
    (topics.SPEND, _SPEND_TEXT.replace('"clicks":', '"clicks" :')),
    (topics.SPEND, _SPEND_TEXT.replace('"evt-1"', '"evt\\":1"')),
    # duplicate keys, also hidden behind whitespace
    (topics.SPEND, _SPEND_TEXT[:-1] + ',"clicks":4}'),
    (topics.SPEND, _SPEND_TEXT[:-1] + ',"clicks" :4}'),
    (topics.CAN_SPEND_REQUESTS, _REQUEST_TEXT[:-1] + ', "amount_micros"\t: 1}'),
    # times the models' pattern lets through for the strict parser to judge
    (topics.SPEND, _SPEND_TEXT.replace("T10:00:00.123456Z", "t10:00:00.123456789z")),
    (topics.SPEND, _SPEND_TEXT.replace("T10:00:00.123456Z", "T10:00:00.9999999+01:00")),
    (topics.SPEND, _SPEND_TEXT.replace("T10:00:00.123456Z", "T10:00:60Z")),
    (topics.SPEND, _SPEND_TEXT.replace("T10:00:00.123456Z", "T25:00:00Z")),
    (topics.SPEND, _SPEND_TEXT.replace("T10:00:00.123456Z", "T10:00:00+24:00")),
    (topics.CAN_SPEND_REQUESTS,
     _REQUEST_TEXT.replace('"amount_micros":', '"x":0,"amount_micros":')),
]


def _strict(topic: str, payload: bytes) -> object:
    try:
        return records._decode_obj(topic, records._load(payload, 1 << 16), records._NO_CONTEXT)
    except InvalidRecord as exc:
        return exc.code


def _outcome(topic: str, payload: bytes) -> object:
    try:
        return records.decode(topic, payload)
    except InvalidRecord as exc:
        return exc.code


@pytest.mark.parametrize(("topic", "text"), _VARIANTS)
def test_decode_equals_strict_path(topic: str, text: str) -> None:
    payload = text.encode()
    assert _outcome(topic, payload) == _strict(topic, payload)


@pytest.mark.parametrize("topic", topics.ALL_TOPICS)
def test_records_are_their_models(topic: str) -> None:
    """Each record class is its topic's model plus methods: the fields are defined once."""
    record, model = records.RECORD_TYPES[topic], MODELS[topic]
    assert issubclass(record, model)
    assert record.__struct_fields__ == model.__struct_fields__
