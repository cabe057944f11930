"""Contract tests of the wire layer: records, topics, JSON Schemas, bad-input corpus.

Shared here: the fixed clock of the corpus, one fully populated and one minimal sample of
every record type, and the loader of ``corpus/bad_inputs.jsonl`` (also usable by other
test suites, e.g. to feed the corpus to a running worker and check the DLQ).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pacer_stream.core.types import (
    AlertType,
    BreakerCause,
    ChannelType,
    CircuitBreakerState,
    Code,
    PacingStrategy,
    Severity,
)
from pacer_stream.wire.records import (
    AlertRecord,
    BreakerRecord,
    BudgetRecord,
    CanSpendReply,
    CanSpendRequest,
    ChannelBudget,
    CommandRecord,
    CommandType,
    DlqRecord,
    PaceRecord,
    Record,
    SpendRecord,
    threshold_overrides,
)

#: The worker clock the corpus is written against.
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CORPUS_FILE = Path(__file__).parent / "corpus" / "bad_inputs.jsonl"


def full_samples() -> list[Record]:
    """One record of every type with every optional field set."""
    t = NOW - timedelta(hours=2)
    return [
        SpendRecord(
            event_id="evt-1",
            campaign_id="cmp-1",
            channel=ChannelType.GOOGLE_ADS,
            amount_micros=1_500_000,
            event_time=t.replace(microsecond=123456),
            clicks=3,
            conversions=1,
            impressions=120,
            revenue_micros=9_990_000,
            reservation_id="rsv-1",
            source="google-connector",
        ),
        BudgetRecord(
            campaign_id="cmp-1",
            timezone="America/New_York",
            strategy=PacingStrategy.ADAPTIVE_HYBRID,
            channels={
                ChannelType.GOOGLE_ADS: ChannelBudget(100_000_000),
                ChannelType.SEARCH: ChannelBudget(
                    50_000_000, PacingStrategy.PERFORMANCE_WEIGHTED
                ),
            },
            updated_at=t,
            thresholds=threshold_overrides({
                "max_hourly_spend_pct": 0.2,
                "breaker_cooldown_s": 120,
                "max_cost_per_click_micros": 2_000_000,
                "target_roas": None,
            }),
            key_id="ops-key-1",
            nonce="n-1",
            expires_at=NOW + timedelta(minutes=5),
            signature="c2lnbmF0dXJl",
        ),
        CommandRecord(
            command_id="cmd-1",
            campaign_id="cmp-1",
            command=CommandType.FORCE_BREAKER,
            reason="manual trip\nsee ticket 42",
            issued_at=t,
            channel=ChannelType.DISPLAY,
            state=CircuitBreakerState.OPEN,
            key_id="ops-key-1",
            nonce="n-2",
            expires_at=NOW + timedelta(minutes=5),
            signature="abcdef0123",
        ),
        CanSpendRequest(
            request_id="req-1",
            campaign_id="cmp-1",
            channel=ChannelType.SEARCH,
            amount_micros=250_000,
            requested_at=NOW - timedelta(milliseconds=20),
            deadline_ms=50,
            reply_to="bidder-7.replies",
        ),
        CanSpendReply(
            request_id="req-1",
            campaign_id="cmp-1",
            channel=ChannelType.SEARCH,
            allowed=True,
            code=Code.OK,
            reason="within pace",
            remaining_micros=49_750_000,
            decided_at=NOW,
            reservation_id="rsv-9",
            expires_at=NOW + timedelta(seconds=60),
            pacing_multiplier=1.25,
        ),
        AlertRecord(
            alert_id="alr-1",
            campaign_id="cmp-1",
            channel=ChannelType.VIDEO,
            alert_type=AlertType.CRITICAL_OVERPACING,
            severity=Severity.HIGH,
            pace_ratio=2.25,
            current_spend_micros=45_000_000,
            budget_consumed_pct=0.45,
            time_elapsed_pct=0.2,
            recommended_action="reduce bids",
            at=NOW,
            thresholds={"pace_critical_threshold": 2.0},
            budget_micros=100_000_000,
            projected_overspend_micros=125_000_000,
        ),
        BreakerRecord(
            campaign_id="cmp:with:colons",
            channel=ChannelType.NATIVE,
            state=CircuitBreakerState.OPEN,
            cause=BreakerCause.RUNAWAY_VELOCITY,
            since=NOW,
            until=NOW + timedelta(minutes=5),
            previous=CircuitBreakerState.CLOSED,
            forced=False,
        ),
        PaceRecord(
            campaign_id="cmp-1",
            channel=ChannelType.SHOPPING,
            at=NOW,
            budget_micros=100_000_000,
            spent_micros=40_000_000,
            reserved_micros=250_000,
            planned_micros=50_000_000,
            pace_ratio=0.8,
            time_elapsed_pct=0.5,
            hour_allowance_micros=4_000_000,
            hour_spent_micros=1_000_000,
            breaker=CircuitBreakerState.CLOSED,
            clicks=1000,
            conversions=30,
            impressions=50_000,
            revenue_micros=90_000_000,
            pacing_multiplier=0.75,
            performance={
                "today": {"conversion_rate": 0.03, "cpa_micros": 1_333_333, "roas": None},
                "baseline": {"conversion_rate": 0.025, "delta": -0.5},
            },
        ),
        DlqRecord(
            source_topic="pacer.spend.v1",
            partition=3,
            offset=12345,
            payload=b"\xff not json",
            error_code="invalid_json",
            error="payload is not UTF-8",
            at=NOW,
            key=b"cmp-1",
            payload_size=11,
            payload_truncated=False,
            batch_index=7,
        ),
    ]


def minimal_samples() -> list[Record]:
    """One record of every type with only the required fields."""
    t = NOW - timedelta(hours=1)
    ch = ChannelType.SEARCH
    return [
        SpendRecord(
            event_id="evt-2", campaign_id="cmp-2", channel=ChannelType.TIKTOK_ADS,
            amount_micros=0, event_time=t, clicks=0, conversions=0,
        ),
        BudgetRecord(
            campaign_id="cmp-2", timezone="UTC", strategy=PacingStrategy.EVEN_DISTRIBUTION,
            channels={ChannelType.FACEBOOK_ADS: ChannelBudget(1)}, updated_at=t,
        ),
        CommandRecord(
            command_id="cmd-2", campaign_id="cmp-2", command=CommandType.EMERGENCY_STOP,
            reason="", issued_at=t,
        ),
        CanSpendRequest(
            request_id="req-2", campaign_id="cmp-2", channel=ChannelType.VIDEO,
            amount_micros=1, requested_at=t, deadline_ms=1,
        ),
        CanSpendReply(
            request_id="req-2", campaign_id="cmp-2", channel=ChannelType.VIDEO, allowed=False,
            code=Code.DAILY_CAP, reason="budget exhausted", remaining_micros=0, decided_at=t,
        ),
        AlertRecord(
            alert_id="alr-2", campaign_id="cmp-2", alert_type=AlertType.UNDERPACING,
            severity=Severity.LOW, pace_ratio=0.0, current_spend_micros=0,
            budget_consumed_pct=0.0, time_elapsed_pct=0.0, recommended_action="raise bids",
            at=t, thresholds={},
        ),
        BreakerRecord(
            campaign_id="cmp-2", channel=ch, state=CircuitBreakerState.CLOSED,
            cause=BreakerCause.TRIAL_PASSED, since=t,
        ),
        PaceRecord(
            campaign_id="cmp-2", channel=ch, at=t, budget_micros=0, spent_micros=0,
            reserved_micros=0, planned_micros=0, pace_ratio=0.0, time_elapsed_pct=0.0,
            hour_allowance_micros=0, hour_spent_micros=0,
            breaker=CircuitBreakerState.HALF_OPEN, clicks=0, conversions=0,
        ),
        DlqRecord(
            source_topic="pacer.budgets.v1", partition=0, offset=0, payload=b"",
            error_code="empty_payload", error="no payload", at=t,
        ),
    ]


@dataclass(frozen=True)
class BadInput:
    name: str
    topic: str
    code: str
    payload: bytes
    note: str


def load_corpus(path: Path = CORPUS_FILE) -> list[BadInput]:
    """The bad-input corpus: each entry must be rejected with ``code``.

    A line holds ``payload`` (UTF-8 text) or ``payload_b64`` (raw bytes), and optionally
    ``pad_to``: the payload is padded with trailing spaces to that many bytes.
    """
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if "payload_b64" in entry:
            payload = base64.b64decode(entry["payload_b64"])
        else:
            payload = entry["payload"].encode("utf-8", "surrogatepass")
        pad_to = entry.get("pad_to")
        if pad_to:
            payload = payload.ljust(pad_to, b" ")
        cases.append(
            BadInput(entry["name"], entry["topic"], entry["code"], payload, entry["note"])
        )
    return cases
