"""Recent activity per campaign, kept by the worker for the operator page.

Why a separate record and not the campaign state: the facts an operator needs to answer
"why is my campaign not spending?" -- which can-spend requests were refused and why, how
the breakers moved, the last alerts -- are
*observability*, not pacing rules. No decision depends on them, so they do not belong in
:class:`~pacer_stream.core.state.CampaignState` (whose every byte is written to the
changelog on each change). They are fed from the processor's outputs as they are
produced and live in memory only:

* a worker that restarts, or takes a campaign over in a rebalance, starts the record
  empty (the page says since when it has been recording); the breaker's *current* state,
  cause and since-time come from the campaign state and survive;
* fast-path (Redis) decisions are taken by the bidders and never reach the worker: only
  can-spend requests answered over Kafka are counted.

Bounds (per campaign, by count *and* time), so a busy or hostile input cannot grow it:

* decisions: counters by (channel, code) in 5-minute buckets (:data:`BUCKET_S`) for the
  last :data:`WINDOW_S` (at most 12 buckets, so "the last hour" moves in 5-minute
  steps), plus the :data:`MAX_RECENT_DENIALS` latest denials with their reasons;
* breaker transitions: the :data:`MAX_TRANSITIONS` latest, none older than
  :data:`HISTORY_S`;
* alerts: the :data:`MAX_ALERTS` latest, none older than :data:`HISTORY_S`;
* campaigns: the :data:`MAX_CAMPAIGNS` most recently active (least recently used are
  forgotten first).

A campaign with every record full takes about 16 KB (measured with tracemalloc), so the
whole record stays under about 80 MB even in that worst case.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pacer_stream.core.types import Alert, BreakerTransition, ChannelType, Decision, Output

#: Window of the decision counters (the page shows "last hour").
WINDOW_S: Final = 3600
#: Oldest breaker transition or alert kept.
HISTORY_S: Final = 24 * 3600
MAX_TRANSITIONS: Final = 20
MAX_ALERTS: Final = 10
MAX_RECENT_DENIALS: Final = 10
MAX_CAMPAIGNS: Final = 5_000
#: Width of one decision counter bucket: "the last hour" is the last 12 buckets.
BUCKET_S: Final = 300


@dataclass(frozen=True, slots=True)
class TransitionEntry:
    at: float
    channel: str
    previous: str
    state: str
    cause: str
    until: float | None
    forced: bool


@dataclass(frozen=True, slots=True)
class AlertEntry:
    at: float
    channel: str | None
    alert_type: str
    severity: str
    pace_ratio: float
    budget_consumed_pct: float
    time_elapsed_pct: float
    recommended_action: str


@dataclass(frozen=True, slots=True)
class DenialEntry:
    at: float
    channel: str
    code: str
    reason: str
    amount_micros: int


@dataclass(slots=True)
class CampaignActivity:
    """What one campaign did recently (see the module docstring for the bounds)."""

    #: [bucket, {(channel, code): count}] oldest first, at most WINDOW_S / BUCKET_S entries.
    buckets: deque[tuple[int, dict[tuple[str, str], int]]] = field(default_factory=deque)
    denials: deque[DenialEntry] = field(default_factory=lambda: deque(maxlen=MAX_RECENT_DENIALS))
    transitions: deque[TransitionEntry] = field(
        default_factory=lambda: deque(maxlen=MAX_TRANSITIONS)
    )
    alerts: deque[AlertEntry] = field(default_factory=lambda: deque(maxlen=MAX_ALERTS))

    def prune(self, now: float) -> None:
        oldest_bucket = int(now // BUCKET_S) - WINDOW_S // BUCKET_S
        while self.buckets and self.buckets[0][0] <= oldest_bucket:
            self.buckets.popleft()
        horizon = now - HISTORY_S
        while self.transitions and self.transitions[0].at < horizon:
            self.transitions.popleft()
        while self.alerts and self.alerts[0].at < horizon:
            self.alerts.popleft()
        while self.denials and self.denials[0].at < now - WINDOW_S:
            self.denials.popleft()


class ActivityLog:
    """Per-campaign :class:`CampaignActivity`, bounded to ``max_campaigns`` (LRU)."""

    def __init__(self, *, started_at: float, max_campaigns: int = MAX_CAMPAIGNS) -> None:
        #: Since when this process has been recording (shown on the page).
        self.started_at = started_at
        self.max_campaigns = max_campaigns
        self._campaigns: OrderedDict[str, CampaignActivity] = OrderedDict()

    def __len__(self) -> int:
        return len(self._campaigns)

    def _get(self, campaign_id: str) -> CampaignActivity:
        act = self._campaigns.get(campaign_id)
        if act is None:
            act = self._campaigns[campaign_id] = CampaignActivity()
            while len(self._campaigns) > self.max_campaigns:
                self._campaigns.popitem(last=False)
        else:
            self._campaigns.move_to_end(campaign_id)
        return act

    def get(self, campaign_id: str) -> CampaignActivity | None:
        return self._campaigns.get(campaign_id)

    # ------------------------------------------------------------------ feeding
    def record_outputs(self, outputs: Iterable[Output]) -> None:
        """Breaker transitions and alerts, as the engine produced them."""
        for o in outputs:
            if isinstance(o, BreakerTransition):
                at = o.since.timestamp()
                transition = TransitionEntry(
                    at=at,
                    channel=o.channel.value,
                    previous=o.previous.value,
                    state=o.state.value,
                    cause=o.cause.value,
                    until=o.until.timestamp() if o.until is not None else None,
                    forced=o.forced,
                )
                act = self._get(o.campaign_id)
                act.transitions.append(transition)
                act.prune(at)
            elif isinstance(o, Alert):
                at = o.at.timestamp()
                alert = AlertEntry(
                    at=at,
                    channel=o.channel.value if o.channel is not None else None,
                    alert_type=o.alert_type.value,
                    severity=o.severity.value,
                    pace_ratio=o.pace_ratio,
                    budget_consumed_pct=o.budget_consumed_pct,
                    time_elapsed_pct=o.time_elapsed_pct,
                    recommended_action=o.recommended_action,
                )
                act = self._get(o.campaign_id)
                act.alerts.append(alert)
                act.prune(at)

    def record_decision(
        self,
        campaign_id: str,
        channel: ChannelType,
        amount_micros: int,
        decision: Decision,
        now: datetime,
    ) -> None:
        """One can-spend answer (allowed ones are counted too: "0 of 500 refused")."""
        ts = now.timestamp()
        act = self._get(campaign_id)
        act.prune(ts)
        bucket = int(ts // BUCKET_S)
        if not act.buckets or act.buckets[-1][0] != bucket:
            act.buckets.append((bucket, {}))
        counts = act.buckets[-1][1]
        key = (channel.value, decision.code.value)
        counts[key] = counts.get(key, 0) + 1
        if not decision.allowed:
            act.denials.append(
                DenialEntry(ts, channel.value, decision.code.value, decision.reason, amount_micros)
            )

    # ------------------------------------------------------------------ reading
    def summary(self, campaign_id: str, now: datetime) -> dict[str, Any]:
        """JSON-able facts of one campaign (times in epoch seconds, newest first)."""
        ts = now.timestamp()
        act = self._campaigns.get(campaign_id) or CampaignActivity()
        oldest_bucket = int(ts // BUCKET_S) - WINDOW_S // BUCKET_S
        by_code: dict[str, dict[str, int]] = {}
        allowed = 0
        for bucket, counts in act.buckets:
            if bucket <= oldest_bucket:
                continue
            for (channel, code), n in counts.items():
                if code == "ok":
                    allowed += n
                    continue
                per = by_code.setdefault(code, {})
                per[channel] = per.get(channel, 0) + n
        last_at: dict[str, float] = {}
        for d in act.denials:
            last_at[d.code] = d.at
        ranked = sorted(by_code.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        codes = [
            {"code": c, "count": sum(p.values()), "channels": p, "last_at": last_at.get(c)}
            for c, p in ranked
        ]
        denied = sum(sum(p.values()) for p in by_code.values())
        horizon = ts - HISTORY_S
        return {
            "recording_since": self.started_at,
            "window_s": WINDOW_S,
            "requests": {"allowed": allowed, "denied": denied},
            "denials_by_code": codes,
            "recent_denials": [_entry(d) for d in reversed(act.denials) if d.at >= ts - WINDOW_S],
            "breaker_timeline": [_entry(t) for t in reversed(act.transitions) if t.at >= horizon],
            "alerts": [_entry(a) for a in reversed(act.alerts) if a.at >= horizon],
        }


def _entry(e: TransitionEntry | AlertEntry | DenialEntry) -> dict[str, Any]:
    return {name: getattr(e, name) for name in e.__slots__}
