"""The wire decode comparison behind the choice of msgspec (docs/streaming.md).

These tests pin the findings the decision rests on, so a library upgrade that changes
them fails here instead of silently invalidating the documented choice: the chosen
layering (strict JSON layer, then ``msgspec.convert``) gives every spend corpus case its
stable code and the same record as the shipped decoder, while either library alone
lets a duplicate key through.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pacer_stream.bench import wire_bench
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records


def test_the_spend_corpus_is_found() -> None:
    cases = wire_bench.spend_corpus()
    assert len(cases) >= 60
    assert {name for name, _, _ in cases} >= {"duplicate_key", "nan_amount", "leap_second"}


def test_strict_json_then_msgspec_maps_every_spend_corpus_case() -> None:
    assert wire_bench.corpus_misses(wire_bench.decode_strict_msgspec) == []


def test_the_shipped_decoder_is_the_reference() -> None:
    assert wire_bench.corpus_misses(wire_bench.decode_shipped) == []


@pytest.mark.parametrize(
    "decoder",
    [wire_bench.decode_msgspec, wire_bench.decode_pydantic],
    ids=["msgspec", "pydantic"],
)
def test_either_library_alone_accepts_a_duplicate_key(decoder: wire_bench.Decoder) -> None:
    misses = {name: got for name, _, got in wire_bench.corpus_misses(decoder)}
    assert misses["duplicate_key"] == "accepted"


def test_every_candidate_decodes_the_valid_record_to_the_same_values() -> None:
    reference = records.decode(records.topics.SPEND, wire_bench.VALID, now=wire_bench.NOW)
    assert isinstance(reference, records.SpendRecord)
    expected = msgspec.structs.asdict(reference)
    del expected["schema_version"]
    for decoder in wire_bench.CANDIDATES.values():
        got = decoder(wire_bench.VALID)
        values = {name: getattr(got, name) for name in expected}
        assert values == expected


def test_msgspec_carries_the_id_rule_code_in_its_message() -> None:
    payload = wire_bench.VALID.replace(b'"camp-42"', b'"a{b}"')
    with pytest.raises(InvalidRecord) as caught:
        wire_bench.decode_strict_msgspec(payload)
    assert caught.value.code == "invalid_id"
    with pytest.raises(InvalidRecord) as caught:
        wire_bench.decode_pydantic(payload)
    assert caught.value.code == "invalid_id"


def test_report_lists_cost_and_agreement_per_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire_bench, "cost_us", lambda decoder, *args, **kw: 1.0)
    report = wire_bench.run()
    rows = report["candidates"]
    assert set(rows) == set(wire_bench.CANDIDATES)
    total = report["spend_corpus_cases"]
    for row in rows.values():
        assert row["corpus_codes_matched"] == total - len(row["misses"])
    lines: list[str] = []
    wire_bench.show(report, lines.append)
    assert any("duplicate_key: expected duplicate_key, got accepted" in line for line in lines)
    assert report["batch_us_per_event"] == round(1.0 / records.MAX_BATCH_EVENTS, 2)
    assert any("batch of 1000" in line and "us/event" in line for line in lines)


def test_the_batch_measured_is_a_full_well_formed_batch() -> None:
    batch = records.decode(records.topics.SPEND, wire_bench.batch_payload(), now=wire_bench.NOW)
    assert isinstance(batch, records.SpendBatchRecord)
    assert len(batch.events) == records.MAX_BATCH_EVENTS
    assert batch.rejected == ()
    assert len({e.event_id for e in batch.events}) == records.MAX_BATCH_EVENTS


def test_without_the_corpus_only_the_cost_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(wire_bench, "CORPUS", tmp_path / "absent.jsonl")
    monkeypatch.setattr(wire_bench, "cost_us", lambda decoder, *args, **kw: 1.0)
    report = wire_bench.run()
    assert report["spend_corpus_cases"] == 0
    assert all(row["us_per_record"] == 1.0 for row in report["candidates"].values())
    lines: list[str] = []
    wire_bench.show(report, lines.append)
    assert any("no bad-input corpus" in line for line in lines)
