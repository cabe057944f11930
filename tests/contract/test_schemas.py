"""Topic declarations (topics.yaml vs pacer_stream.wire.topics) and JSON Schemas vs the codec."""

from __future__ import annotations

import json
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

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
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import CommandType, decode, encode

from . import NOW, full_samples, load_corpus, minimal_samples

SCHEMA_DIR = topics.TOPICS_DIR / "schemas"

# jsonschema only checks "date-time" when an optional RFC 3339 package is installed; check
# it with the codec's own parser so the test never silently skips formats.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=InvalidRecord)  # type: ignore[untyped-decorator]
def _date_time(instance: object) -> bool:
    if isinstance(instance, str):
        records.parse_time(instance)
    return True


def _validator(topic: str) -> Draft202012Validator:
    return Draft202012Validator(topics.load_schema(topic), format_checker=FORMATS)


def _errors(topic: str, instance: Any) -> list[str]:
    return [e.message for e in _validator(topic).iter_errors(instance)]


def _shapes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The record shapes a topic's schema allows (spend: a single event, then a batch)."""
    shapes: list[dict[str, Any]] = schema.get("oneOf", [schema])
    return shapes


# ----------------------------------------------------------------------- topics.yaml


def test_yaml_and_constants_agree() -> None:
    specs = topics.load_topics()
    assert [s.name for s in specs] == list(topics.ALL_TOPICS)
    assert specs == topics.BUILTIN_SPECS
    assert {s.name for s in specs if s.direction == "in"} == set(topics.INPUT_TOPICS)
    assert {s.name for s in specs if s.direction == "out"} == set(topics.OUTPUT_TOPICS)
    assert topics.SPEND == "pacer.spend.v1"
    assert topics.CAN_SPEND_REQUESTS == "pacer.can-spend.requests.v1"
    assert topics.CAN_SPEND_REPLIES == "pacer.can-spend.replies.v1"
    assert topics.DLQ == "pacer.dlq.v1"


def test_topic_properties() -> None:
    specs = topics.topic_specs()
    inputs = [specs[name] for name in topics.INPUT_TOPICS]
    assert {s.partitions for s in inputs} == {topics.DEFAULT_PARTITIONS}
    assert all(s.key == "campaign_id" for s in inputs)
    assert specs[topics.BUDGETS].compacted and specs[topics.BREAKERS].compacted
    assert specs[topics.BUDGETS].kafka_config() == {"cleanup.policy": "compact"}
    assert specs[topics.BREAKERS].key == "campaign_id:channel"
    assert not specs[topics.SPEND].compacted
    dlq = specs[topics.DLQ]
    assert dlq.retention_ms is not None
    assert dlq.retention_ms >= 30 * 24 * 3600 * 1000
    assert all(dlq.retention_ms >= (s.retention_ms or 0) for s in specs.values())
    assert dlq.kafka_config() == {"cleanup.policy": "delete", "retention.ms": "2592000000"}
    for spec in specs.values():
        assert topics.is_valid_topic_name(spec.name)
        assert spec.name.endswith(".v1")


def test_every_topic_has_a_schema_and_every_schema_a_topic() -> None:
    for topic in topics.ALL_TOPICS:
        path = topics.schema_path(topic)
        assert path == SCHEMA_DIR / f"{topic}.json"
        schema = topics.load_schema(topic)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(topic)
        for shape in _shapes(schema):
            assert shape["properties"]["schema_version"]["const"] == 1
            assert "schema_version" in shape["required"]
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == {
        f"{t}.json" for t in topics.ALL_TOPICS
    }


def test_topic_specs_partitions_override_and_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = topics.topic_specs(partitions=3)
    assert {s.partitions for s in specs.values()} == {3}
    with pytest.raises(ValueError):
        topics.topic_specs(partitions=0)
    # installed package without the topics/ folder: built-in declarations
    monkeypatch.setattr(topics, "TOPICS_FILE", tmp_path / "missing.yaml")
    fallback = topics.topic_specs()
    assert tuple(fallback.values()) == topics.BUILTIN_SPECS
    assert {s.partitions for s in topics.topic_specs(partitions=12).values()} == {12}
    with pytest.raises(FileNotFoundError):
        topics.topic_specs(path=tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topics: []", "non-empty"),
        ("- a", "mapping"),
        ("topics:\n  - {name: a.in, direction: in, retention_ms: 1}\n"
         "  - {name: b.in, direction: in, retention_ms: 1, partitions: 4}", "co-partitioned"),
        ("topics:\n  - {name: a, direction: out, cleanup_policy: compact, retention_ms: 5}",
         "compacted"),
        ("topics:\n  - {name: a, direction: out}", "retention_ms"),
        ("topics:\n  - {name: a, direction: out, retention_ms: 1}\n"
         "  - {name: a, direction: out, retention_ms: 1}", "twice"),
        ("topics:\n  - {name: 'bad name', direction: out, retention_ms: 1}", "invalid topic"),
        ("topics:\n  - {name: a, direction: sideways, retention_ms: 1}", "direction"),
        ("topics:\n  - {name: a, direction: out, retention_ms: 1, colour: red}", "unknown"),
        ("topics:\n  - {name: a, direction: in, retention_ms: 1, key: event_id}", "key"),
        ("defaults: {partitions: 8, replicas: 3}\ntopics:\n  - {name: a, direction: out, "
         "retention_ms: 1}", "defaults"),
        ("topics:\n  - {name: a, direction: out, retention_ms: 1, partitions: true}",
         "partitions"),
    ],
)
def test_load_topics_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    with pytest.raises(topics.TopicConfigError, match=message):
        topics.load_topics(path)


# ---------------------------------------------------------------- schemas vs the codec

SAMPLES = full_samples() + minimal_samples()


@pytest.mark.parametrize("record", SAMPLES, ids=[f"{type(r).__name__}-{i}"
                                                 for i, r in enumerate(SAMPLES)])
def test_encoder_output_validates(record: records.Record) -> None:
    assert _errors(record.topic, json.loads(encode(record))) == []


def test_core_helper_output_validates() -> None:
    req = full_samples()[3]
    assert isinstance(req, records.CanSpendRequest)
    from pacer_stream.core.types import Decision

    reply = records.encode_reply(req, Decision(True, Code.OK, "ok", 5), decided_at=NOW)
    assert _errors(topics.CAN_SPEND_REPLIES, json.loads(reply)) == []
    dlq = records.encode_dlq(topics.SPEND, 0, 1, None, b"\x00" * 10, "invalid_json", "x", NOW)
    assert _errors(topics.DLQ, json.loads(dlq)) == []


@pytest.mark.parametrize("record", full_samples(), ids=lambda r: type(r).__name__)
def test_schema_properties_match_decoder(record: records.Record) -> None:
    """Every declared property is emitted by the full sample; removing a required one is
    ``missing_field`` for both; removing an optional one is fine for both; an unknown field
    is rejected by both on input topics and accepted by both on output topics."""
    topic = record.topic
    schema = _shapes(topics.load_schema(topic))[0]
    data = json.loads(encode(record))
    assert set(data) == set(schema["properties"]), "full sample must set every field"
    required = set(schema["required"])
    for name in schema["properties"]:
        partial = {k: v for k, v in data.items() if k != name}
        payload = json.dumps(partial).encode()
        cross_required = topic == topics.COMMANDS and name in {"channel", "state"}
        if name in required or cross_required:
            assert _errors(topic, partial), name
            with pytest.raises(InvalidRecord) as info:
                decode(topic, payload)
            assert info.value.code == "missing_field", name
        else:
            assert _errors(topic, partial) == [], name
            decode(topic, payload)
    extended = {**data, "zz_unknown": 1}
    strict = topic in topics.INPUT_TOPICS
    assert schema["additionalProperties"] is (not strict)
    assert bool(_errors(topic, extended)) is strict
    if strict:
        with pytest.raises(InvalidRecord, match="zz_unknown"):
            decode(topic, json.dumps(extended).encode())
    else:
        decode(topic, json.dumps(extended).encode())


def _enums(node: Any) -> dict[str, list[Any]]:
    """property name -> enum list, anywhere in the schema."""
    found: dict[str, list[Any]] = {}
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and "enum" in sub:
                found[name] = [v for v in sub["enum"] if v is not None]
        for value in node.values():
            found.update({k: v for k, v in _enums(value).items() if k not in found})
    elif isinstance(node, list):
        for value in node:
            found.update(_enums(value))
    return found


ENUMS: dict[str, type[Enum]] = {
    "channel": ChannelType,
    "strategy": PacingStrategy,
    "command": CommandType,
    "state": CircuitBreakerState,
    "previous": CircuitBreakerState,
    "breaker": CircuitBreakerState,
    "cause": BreakerCause,
    "code": Code,
    "alert_type": AlertType,
    "severity": Severity,
}


@pytest.mark.parametrize("topic", topics.ALL_TOPICS)
def test_schema_enums_match_python_enums(topic: str) -> None:
    for name, values in _enums(topics.load_schema(topic)).items():
        assert values == [m.value for m in ENUMS[name]], (topic, name)


def test_budget_channels_and_thresholds_match_core() -> None:
    schema = topics.load_schema(topics.BUDGETS)
    channels = schema["properties"]["channels"]
    assert channels["propertyNames"]["enum"] == [c.value for c in ChannelType]
    props = schema["properties"]["thresholds"]["properties"]
    assert list(props) == [f.name for f in fields(Thresholds)], (
        "Thresholds changed: update topics/schemas/pacer.budgets.v1.json"
    )
    for f in fields(Thresholds):
        parts = {part.strip() for part in str(f.type).split("|")}  # e.g. "float | None"
        kinds = props[f.name]["type"]
        kinds = kinds if isinstance(kinds, list) else [kinds]
        assert kinds[0] == ("integer" if parts - {"None"} == {"int"} else "number"), f.name
        assert ("null" in kinds) is ("None" in parts), f.name
    defaults = {f.name: getattr(Thresholds(), f.name) for f in fields(Thresholds)}
    assert _errors(topics.BUDGETS, {**json.loads(encode(minimal_samples()[1])),
                                    "thresholds": defaults}) == []
    decode(topics.BUDGETS, json.dumps({**json.loads(encode(minimal_samples()[1])),
                                       "thresholds": defaults}).encode())


# Corpus cases a JSON Schema cannot see: byte-level problems, integral floats (JSON Schema
# calls 1.0 and 1.5e6 integers), clock-relative windows, the IANA zone lookup and
# cross-field threshold rules. Everything else in the corpus the schemas reject too.
SCHEMA_BLIND = {
    "duplicate_key": "last duplicate wins once parsed",
    "duplicate_key_nested": "last duplicate wins once parsed",
    "batch_duplicate_key": "last duplicate wins once parsed",
    "float_integral_amount": "JSON Schema treats 1500000.0 as an integer",
    "float_clicks": "JSON Schema treats 3.0 as an integer",
    "exponent_amount": "JSON Schema treats 1.5e6 as an integer",
    "schema_version_float": "const 1 equals 1.0 in JSON Schema",
    "far_future": "relative to the worker clock",
    "far_past": "relative to the worker clock",
    "command_from_future": "relative to the worker clock",
    "request_from_future": "relative to the worker clock",
    "budget_bad_timezone": "IANA lookup",
    "budget_inconsistent_thresholds": "cross-field rule",
    "oversized": "size limit is a transport rule",
    "empty_payload": "no JSON at all",
}


@pytest.mark.parametrize("case", load_corpus(), ids=lambda c: c.name)
def test_schema_rejects_corpus_where_it_can(case: Any) -> None:
    try:
        instance = json.loads(case.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        assert case.code in {"invalid_json", "empty_payload"}
        return
    errors = _errors(case.topic, instance)
    if case.name in SCHEMA_BLIND:
        assert errors == [], f"{case.name} is now caught by the schema: update SCHEMA_BLIND"
    else:
        assert errors, f"schema accepts {case.name} ({case.note})"
