"""The pacing engine: applies events and commands to campaign state.

Every adapter (``BudgetPacer``, the faust agents, the Redis publisher, the simulator)
calls these methods; no pacing rule lives anywhere else. The engine is synchronous and
pure apart from mutating the state passed in: no I/O, and time is always the ``now``
argument (the worker's clock, never a time supplied by a bidder).

Time-based transitions (day roll-over, reservation expiry, breaker cooldown) are applied
lazily whenever a channel is touched, so correctness never depends on a timer firing;
:meth:`PacingEngine.tick` only makes them visible promptly.

This module is the path of a request or a spend event and of operator commands; the
rules it consults live beside it: lazy time in ``day`` (with how a reservation ends in
``holds``), the day's plan in ``planning``, and when an alert fires and what it says in
``alerting``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from msgspec import Struct
from msgspec import field as msgspec_field

from pacer_stream.core import alerting, planning, policy
from pacer_stream.core.allocation import AllocationStrategy, default_registry
from pacer_stream.core.breaker import UNAUTHORISED_TRIP_SHARE, UNAUTHORISED_WINDOW_S
from pacer_stream.core.calendar import from_ts, zone
from pacer_stream.core.compact import NO_OUTPUTS, own
from pacer_stream.core.day import awaits_time, touch
from pacer_stream.core.history import CONVERSIONS, SPEND
from pacer_stream.core.holds import mark_answer, unused_trial
from pacer_stream.core.ids import check_campaign_id, check_id
from pacer_stream.core.money import MAX_MICROS, check_micros
from pacer_stream.core.multiplier import pacing_multiplier
from pacer_stream.core.pacing import (
    PlannedAtInstant,
    hour_lines,
    pace_ratio,
    planned_at,
    rate_limit,
    released_allowance,
    slot_allowance,
    velocity_limit,
)
from pacer_stream.core.performance import Metrics, PerformanceSnapshot, performance_snapshot
from pacer_stream.core.planning import UNMET_HORIZON_S, UNMET_WINDOW_S
from pacer_stream.core.reallocation import (
    ChannelBooks,
    ChannelPerformance,
    cover_overruns,
    plan_moves,
    rescue_moves,
)
from pacer_stream.core.report_lag import record_lag
from pacer_stream.core.state import (
    Answer,
    AnswerStatus,
    CampaignState,
    ChannelState,
    Reservation,
)
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerCause,
    BudgetMove,
    CampaignConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    Decision,
    Output,
    PaceSnapshot,
    PacingStrategy,
    SpendEvent,
    shared_thresholds,
)
from pacer_stream.core.validation import epoch_s
from pacer_stream.core.windows import UNAUTHORISED, UNMET, VELOCITY
from pacer_stream.errors import InvalidArgument, InvalidTime, WrongType

_DAY_S = 86400.0
#: Refusals that are evidence of demand the hour could have absorbed (not breaker,
#: stop or invalid-request ones).
_DEMAND_CODES = frozenset({Code.HOURLY_CAP, Code.VELOCITY, Code.DAILY_CAP})
#: No reallocation in the last three hours of the day: moved budget would be stranded.
REALLOCATION_CUTOFF_S = 10800
#: Excess (money a channel's remaining hours are not expected to absorb) still moves
#: until this long before the day's end: left where it is, it is lost at midnight.
#: Measured in the simulator (seeds 0-9, docs/simulation.md section 14): utilisation
#: 0.9968 with excess stopped at 21:00 like every other move, 0.9975 at 23:00.
EXCESS_CUTOFF_S = 1800
#: Bound on remembered request ids (idempotent reservation retries), by count ...
MAX_ANSWERED = 10_000
#: ... and by age: a request id older than a day is no longer a retry (it is decided
#: afresh by every rule, so forgetting it never authorises anything by itself).
ANSWER_RETENTION_S = 86_400


class SpendResult(Struct, frozen=True):
    """What one spend event did (a struct, not a dataclass: one is built per event)."""

    applied: bool
    duplicate: bool
    #: "today", "earlier_day" (history only) or "duplicate".
    placement: str
    outputs: list[Output] = msgspec_field(default_factory=list)


@dataclass
class PacingEngine:
    """Stateless rules over :class:`CampaignState`; holds only the strategy registry
    and a memo of the plan at the current instant (:class:`PlannedAtInstant`)."""

    strategies: Mapping[PacingStrategy, AllocationStrategy] = field(
        default_factory=default_registry
    )
    #: The plan at the instant of the spend being applied (a batch's events share it).
    _planned: PlannedAtInstant = field(
        default_factory=PlannedAtInstant, init=False, repr=False, compare=False
    )

    # ------------------------------------------------------------------ configuration
    def new_campaign(self, campaign_id: str) -> CampaignState:
        check_campaign_id(campaign_id)
        return CampaignState(campaign_id=campaign_id)

    def configure(
        self, state: CampaignState | None, config: CampaignConfig, now: datetime
    ) -> tuple[CampaignState, list[Output]]:
        """Apply a campaign configuration (budgets, strategy, time zone, thresholds).

        Changing a budget mid-day re-plans the rest of the day from what was spent.
        """
        ts = epoch_s(now, what="now")
        check_campaign_id(config.campaign_id)
        zone(config.timezone)
        if state is None:
            state = CampaignState(campaign_id=config.campaign_id)
        elif state.campaign_id != config.campaign_id:
            raise InvalidArgument(
                f"config for {config.campaign_id!r} applied to state of {state.campaign_id!r}"
            )
        tz_changed = state.timezone != config.timezone
        state.timezone = config.timezone
        state.strategy = config.strategy
        state.thresholds = shared_thresholds(config.thresholds)
        state.configured = True
        outputs: list[Output] = []
        for channel, cc in config.channels.items():
            check_micros(cc.daily_budget_micros, what=f"daily budget of {channel.value}")
            ch = self._channel(state, channel)
            delta = ch.budget - ch.base_budget  # keep today's reallocation
            if ch.base_budget == 0 and cc.daily_budget_micros > 0 and ch.spent_total == 0:
                ch.active_from = ts
            ch.base_budget = cc.daily_budget_micros
            ch.budget = max(0, cc.daily_budget_micros + delta) if ch.day else ch.base_budget
            ch.strategy = cc.strategy
            if tz_changed:
                ch.day = None
            had_plan = ch.plan is not None and ch.active_from != ts
            outputs += self._touch(state, ch, ts)
            if had_plan:
                planning.rebase(state, ch, ts, self.strategies)
            else:
                planning.replan(state, ch, self.strategies)
        for channel, ch in state.channels.items():
            if channel not in config.channels and ch.base_budget:
                ch.base_budget = 0
                ch.budget = 0
                planning.rebase(state, ch, ts, self.strategies)
        return state, outputs

    # ------------------------------------------------------------------ spend
    def record_spend(self, state: CampaignState, event: SpendEvent, now: datetime) -> SpendResult:
        """Apply one spend event, idempotently by ``event_id``.

        A late event of today lands in its own hour; one of an earlier day (within the
        history horizon) only updates the hourly history. Events older than the horizon
        or further in the future than the allowed skew raise ``InvalidTime`` (code
        ``time_too_old`` / ``time_in_future``) and change nothing.
        """
        ts = epoch_s(now, what="now")
        _check_spend(event)
        t = state.thresholds
        ets = epoch_s(event.event_time, what="event_time")
        if ets > ts + t.max_future_skew_s:
            raise InvalidTime(
                f"event_time {event.event_time.isoformat()} is more than "
                f"{t.max_future_skew_s}s in the future",
                code="time_in_future",
            )
        if ets < ts - t.history_days * _DAY_S:
            raise InvalidTime(
                f"event_time {event.event_time.isoformat()} is older than the "
                f"{t.history_days}-day history horizon",
                code="time_too_old",
            )
        if state.dedupe.seen(event.event_id, ts):
            return SpendResult(False, True, "duplicate")
        ch = self._channel(state, event.channel)
        # Lazy-time outputs go to the outbox first: an event refused below must not
        # swallow a transition that was due anyway.
        due = touch(state, ch, ts, self.strategies)
        if due:
            self._defer(state, due)
        amount = event.amount_micros
        impressions = event.impressions or 0
        revenue = event.revenue_micros or 0
        # A reservation authorises spend once, up to its amount, on its own channel:
        # the first spend naming it uses it up (settled); anything beyond it, and any
        # spend naming a used, foreign or unknown id, is unauthorised.
        rid = event.reservation_id
        live = ch.reservations.get(rid) if rid is not None else None
        late = ch.unreported.get(rid) if rid is not None and live is None else None
        hold = live or late
        authorised = hold.amount if hold is not None else 0
        unauthorised = max(0, amount - authorised)
        # Spend that settles a reservation happened after the reservation was made: a
        # bidder clock behind (or local time written as UTC) cannot file today's
        # authorised spend under an earlier day, where the daily cap never sees it.
        earliest = hold.created_at if hold is not None else ets
        place_ts = min(max(ets, earliest), ts)  # a slightly-future event counts now
        day = ch.day
        assert day is not None
        today = place_ts >= day.start
        _check_totals(ch, int(ets // 3600), event, today)
        # Nothing above changed the campaign (bar lazy time); from here the event applies.
        outputs = self._take_outbox(state)
        state.dedupe.add(event.event_id, ts)
        if rid is not None and hold is not None:
            if live is not None:
                del ch.reservations[rid]
                ch.reserved_total -= live.amount
                if live.created_at >= ch.breaker.since:  # writes only while HALF_OPEN
                    ch.breaker.settle_trial(live.amount)
            else:
                del ch.unreported[rid]
                ch.unreported_total -= authorised
            mark_answer(state, rid, AnswerStatus.SETTLED)
        if rid is not None:
            reserved_at = hold.created_at if hold is not None else _reserved_at(state, rid, ch)
            if reserved_at is not None:
                record_lag(ch.own_report_lags(), ts - reserved_at)
        ch.history.add(
            int(ets // 3600), amount, event.clicks, event.conversions, impressions, revenue
        )
        if not today:
            ch.baseline_cache = (-1, 0, 0)  # history before today changed
            ch.capacity_cache = (-1, None)
            return SpendResult(True, False, "earlier_day", outputs)
        slot = day.slot_of(place_ts)
        ch.add_spent(slot, amount)
        ch.spent_total += amount
        ch.clicks_today += event.clicks
        ch.conversions_today += event.conversions
        ch.impressions_today += impressions
        ch.revenue_today += revenue
        if unauthorised and unauthorised == amount:  # all of it: the rings stay equal
            ch.ring_add_both(VELOCITY, UNAUTHORISED, place_ts, amount)
        else:
            ch.ring_add(VELOCITY, place_ts, amount)
            if unauthorised:
                ch.ring_add(UNAUTHORISED, place_ts, unauthorised)
        if ch.budget <= 0:
            if not ch.alert_active(AlertType.UNBUDGETED_SPEND):
                ch.active_alerts.add(AlertType.UNBUDGETED_SPEND)
                outputs.append(alerting.alert(state, ch, AlertType.UNBUDGETED_SPEND, ts))
            return SpendResult(True, False, "today", outputs)
        outputs += self._after_spend(state, ch, ts, slot, unauthorised, unnamed=rid is None)
        return SpendResult(True, False, "today", outputs)

    def _after_spend(
        self,
        state: CampaignState,
        ch: ChannelState,
        ts: float,
        slot: int,
        unauthorised: int,
        *,
        unnamed: bool = False,
    ) -> list[Output]:
        """Breaker violations, trial evidence and alerts after a spend was applied.

        Only *unauthorised* spend (no reservation, or beyond the reserved amount) can
        count as runaway or repeated overspend: authorised spend already passed the
        hourly and velocity rules, so tripping on it would punish the pacer's own plan.
        ``unnamed``: the event named no reservation at all (not a late or oversized
        report of one that was granted).
        """
        t = state.thresholds
        out: list[Output] = []
        violation: BreakerCause | None = None
        day = ch.day
        assert day is not None
        if (
            unauthorised
            and slot == day.slot_of(ts)
            and ch.spent[slot] > slot_allowance(ch, slot)  # the hour's, after rollover
        ):
            times = ch.own_overspend_times()
            times.append(ts)
            need = t.overspend_events_to_trip
            if times.keep_recent(ts - t.overspend_window_s, need) >= need:
                violation = BreakerCause.REPEATED_OVERSPEND
        recent = ch.count_unauthorised(
            ts if unauthorised else None, ts - t.velocity_window_s, t.velocity_trip_min_events
        )
        planned = self._planned(ch, ts)
        # Runaway = unauthorised spend far above the planned rate. For a campaign that
        # reserves, any such burst counts; for one that never reserves (in-process callers
        # that only record spend) all spend is "unauthorised", so a burst must also put
        # the channel ahead of plan: a delayed batch report catching up is no runaway.
        # (Cheapest conditions first: this runs for every spend event.)
        reserves = bool(state.answered)
        if recent >= t.velocity_trip_min_events and (reserves or ch.spent_total > planned):
            window = ch.ring_total(UNAUTHORISED, ts, t.velocity_window_s)
            if window > ch.budget * t.velocity_trip_min_pct:
                _, allowance, _, span_s = hour_lines(ch, ts, t)
                if window > rate_limit(allowance, span_s, t, t.velocity_trip_multiple):
                    violation = BreakerCause.RUNAWAY_VELOCITY
        if (
            unauthorised
            and reserves
            and ch.ring_total(UNAUTHORISED, ts, UNAUTHORISED_WINDOW_S)
            > min(ch.budget, ch.base_budget) * UNAUTHORISED_TRIP_SHARE
        ):
            # However few the events: a channel that reserves may not accumulate more
            # than a small share of its daily budget in spend nobody authorised (the
            # configured budget, or today's if reallocation cut it: budget a receiver
            # got is no licence for more unasked spend).
            violation = violation or BreakerCause.RUNAWAY_VELOCITY
        if unauthorised and unnamed and reserves and ch.spent_total + ch.reserved_total >= planned:
            # The first clearly unasked report: spend naming no reservation, from a
            # campaign that asks, that brings the channel's spend (this event included)
            # and live holds to its plan or past it. The plan had no room for it, and a
            # broken bidder sends the next such event within a second, so waiting for
            # the share above to fill is paying for more of them (on a thin channel
            # each can be several % of the budget).
            violation = violation or BreakerCause.RUNAWAY_VELOCITY
        if unauthorised and reserves and ch.breaker.state is CircuitBreakerState.HALF_OPEN:
            # Trial spends must be authorised ones: a bidder that spends without asking
            # while the breaker is testing recovery is the fault coming back.
            violation = violation or BreakerCause.TRIAL_FAILED
        emergency = alerting.emergency_alert(state, ch, ts)
        if emergency or ch.alert_active(AlertType.EMERGENCY_STOP_REQUIRED):
            out += emergency
            violation = violation or BreakerCause.OVERSPEND_AHEAD_OF_PLAN
        if violation is not None:
            # Every rule above that trips a campaign that reserves does so on spend
            # nobody asked for, bar the emergency (ahead of plan) one.
            unasked = (
                reserves
                and ch.ring_total(UNAUTHORISED, ts, UNAUTHORISED_WINDOW_S) > 0
                and violation is not BreakerCause.OVERSPEND_AHEAD_OF_PLAN
            )
            tr = ch.own_breaker().trip(ts, violation, t, unasked=unasked)
            if tr is not None:
                out += alerting.transition_outputs(state, ch, tr)
        elif ch.breaker.state is CircuitBreakerState.HALF_OPEN:  # its own: it left CLOSED
            on_pace = pace_ratio(ch, ts) <= t.pace_warning_threshold
            tr = ch.breaker.on_spend(ts, on_pace, t)
            if tr is not None:
                out += alerting.transition_outputs(state, ch, tr)
        out += alerting.pace_alerts(state, ch, ts, planned)
        out += alerting.performance_thresholds(state, ch, ts)
        return out

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        state: CampaignState | None,
        channel: ChannelType,
        amount: int,
        now: datetime,
        *,
        with_multiplier: bool = True,
    ) -> Decision:
        """Pure check: would ``amount`` be authorised now? Reserves nothing.

        ``with_multiplier=False`` skips the pacing multiplier (about a quarter of the
        cost) for callers that only need the verdict, like ``BudgetPacer.can_spend``."""
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel) if state is not None else None
        if state is not None and ch is not None:
            due = touch(state, ch, ts, self.strategies)
            if due:
                self._defer(state, due)
        v = policy.evaluate(state, ch, amount, ts)
        if state is None or ch is None:
            return Decision(v.allowed, v.code, v.reason, 0)
        m = pacing_multiplier(state, ch, ts) if with_multiplier else 0.0
        return Decision(v.allowed, v.code, v.reason, ch.remaining, pacing_multiplier=m)

    def reserve(
        self,
        state: CampaignState | None,
        channel: ChannelType,
        amount: int,
        request_id: str,
        now: datetime,
    ) -> tuple[Decision, list[Output]]:
        """Authorise and hold ``amount`` for the reservation TTL.

        Idempotent by ``request_id``: a retried request gets the original reservation
        back instead of a second hold. A spend event naming the reservation settles it
        (the actual amount may differ); expiry releases it.
        """
        ts = epoch_s(now, what="now")
        check_id(request_id, "request_id")
        ch = state.channels.get(channel) if state is not None else None
        outputs: list[Output] = []
        if state is not None:
            outputs = self._take_outbox(state)
            if ch is not None:
                outputs += self._touch(state, ch, ts)
            answer = state.answered.get(request_id)
            if answer is not None:
                return self._retry(state, ch, answer, channel, amount, ts), outputs
        v = policy.evaluate(state, ch, amount, ts)
        if state is None or ch is None:
            return Decision(False, v.code, v.reason, 0), outputs
        if v.code is Code.HOURLY_CAP or v.code is Code.VELOCITY:
            ch.ring_add(UNMET, ts, amount)
        if v.code in _DEMAND_CODES:
            ch.own_unmet_hours().add(int(ts // 3600), amount)
        if not v.allowed:
            m = pacing_multiplier(state, ch, ts)
            return Decision(False, v.code, v.reason, ch.remaining, pacing_multiplier=m), outputs
        t = state.thresholds
        rid = f"res-{request_id}"
        expires = ts + t.reservation_ttl_s
        ch.reservations = own(ch.reservations)
        ch.reservations[rid] = Reservation(rid, amount, expires, ts)
        ch.reserved_total += amount
        ch.breaker.admit_trial(amount)  # writes only while HALF_OPEN (an own breaker)
        self._remember_answer(state, request_id, Answer(channel, amount, rid, ts), ts)
        m = pacing_multiplier(state, ch, ts)
        return Decision(True, Code.OK, v.reason, ch.remaining, rid, from_ts(expires), m), outputs

    def _retry(
        self,
        state: CampaignState,
        ch: ChannelState | None,
        answer: Answer,
        channel: ChannelType,
        amount: int,
        ts: float,
    ) -> Decision:
        """The answer to a request id seen before: the same hold while it exists and
        nothing is blocking; never a new authorisation."""
        remaining = ch.remaining if ch is not None else 0
        rid = answer.reservation_id
        if ch is None or answer.channel is not channel or answer.amount != amount:
            return Decision(
                False,
                Code.IDEMPOTENCY_CONFLICT,
                f"request_id was already used for {answer.amount} micros on "
                f"{answer.channel.value}; a new request needs a new request_id",
                remaining,
            )
        blocked = policy.blocked(state, ch)
        if blocked is not None:
            return Decision(False, blocked.code, blocked.reason, remaining)
        m = pacing_multiplier(state, ch, ts)
        res = ch.reservations.get(rid) if answer.status is AnswerStatus.LIVE else None
        if res is not None:
            return Decision(
                True,
                Code.OK,
                "spend authorised (retried request: same reservation)",
                remaining,
                rid,
                from_ts(res.expires_at),
                m,
            )
        code, why = _ENDED[answer.status]
        return Decision(False, code, why, remaining, rid, pacing_multiplier=m)

    @staticmethod
    def _remember_answer(state: CampaignState, request_id: str, answer: Answer, ts: float) -> None:
        answered = state.answered = own(state.answered)
        answered[request_id] = answer
        while answered:
            oldest = next(iter(answered.values()))
            if len(answered) <= MAX_ANSWERED and oldest.answered_at > ts - ANSWER_RETENTION_S:
                break
            del answered[next(iter(answered))]

    def release(
        self, state: CampaignState, channel: ChannelType, reservation_id: str, now: datetime
    ) -> bool:
        """Give a reservation back unused. True when something was released."""
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel)
        if ch is None:
            return False
        self._defer(state, self._touch(state, ch, ts))
        res = ch.reservations.pop(reservation_id, None)
        if res is None:
            return False
        ch.reserved_total -= res.amount
        unused_trial(ch, res)
        mark_answer(state, reservation_id, AnswerStatus.RELEASED)
        return True

    # ------------------------------------------------------------------ commands
    def first_time(self, state: CampaignState, kind: str, input_id: str, now: datetime) -> bool:
        """True the first time an input of ``kind`` (e.g. "command") with ``input_id`` is
        seen within the dedupe window, recording it; False for a repeat. Operator commands
        use it so a producer retry of, say, ``reallocate`` does not move budget twice."""
        ts = epoch_s(now, what="now")
        check_id(input_id, f"{kind} id")
        key = _input_key(kind, input_id)
        if state.dedupe.seen(key, ts):
            return False
        state.dedupe.add(key, ts)
        return True

    def forget_input(self, state: CampaignState, kind: str, input_id: str) -> None:
        """Undo :meth:`first_time` for an input whose effect could not be applied, so a
        retry of it is not taken for a repeat (the stream worker shares the dedupe
        window between a campaign and the copy a command is tried on)."""
        state.dedupe.forget(_input_key(kind, input_id))

    def emergency_stop(self, state: CampaignState, reason: str, now: datetime) -> list[Output]:
        """Force every channel OPEN until :meth:`resume`."""
        ts = epoch_s(now, what="now")
        if not isinstance(reason, str):
            raise WrongType(f"reason must be a string, got {type(reason).__name__}")
        state.emergency_stopped = True
        state.stop_reason = reason or "emergency stop"
        out: list[Output] = []
        for ch in state.channels.values():
            out += self._touch(state, ch, ts)
            if ch.breaker.state is CircuitBreakerState.OPEN and ch.breaker.forced:
                continue
            tr = ch.own_breaker().force(CircuitBreakerState.OPEN, ts, BreakerCause.EMERGENCY_STOP)
            out += alerting.transition_outputs(state, ch, tr)
        return out

    def resume(self, state: CampaignState, now: datetime) -> list[Output]:
        """End an emergency stop; forced-open channels go HALF_OPEN and must prove
        they are on pace before they close."""
        ts = epoch_s(now, what="now")
        state.emergency_stopped = False
        state.stop_reason = ""
        out: list[Output] = []
        for ch in state.channels.values():
            out += self._touch(state, ch, ts)
            tr = ch.breaker.resume(ts)  # writes only a forced breaker (an own one)
            if tr is not None:
                out += alerting.transition_outputs(state, ch, tr)
        return out

    def force_breaker(
        self,
        state: CampaignState,
        channel: ChannelType,
        target: CircuitBreakerState,
        now: datetime,
    ) -> list[Output]:
        ts = epoch_s(now, what="now")
        ch = self._channel(state, channel)
        out = self._touch(state, ch, ts)
        tr = ch.own_breaker().force(target, ts, BreakerCause.FORCED)
        return out + alerting.transition_outputs(state, ch, tr)

    def reallocate(
        self, state: CampaignState, now: datetime
    ) -> tuple[dict[ChannelType, int], list[Output]]:
        """Move unused budget toward efficient channels (sum of deltas == 0)."""
        ts = epoch_s(now, what="now")
        out: list[Output] = []
        for ch in state.channels.values():
            out += self._touch(state, ch, ts)
        cover = cover_overruns(
            {
                c: ChannelBooks(ch.budget, ch.spent_total + ch.reserved_total + ch.unreported_total)
                for c, ch in state.channels.items()
                if ch.day is not None
            }
        )
        if cover:
            # Unasked spend took a channel past its budget (reallocation had cut it):
            # the campaign's other channels absorb it, at any hour.
            for c, d in cover.items():
                state.channels[c].budget += d
                planning.rebase(state, state.channels[c], ts, self.strategies)
            out.append(BudgetMove(state.campaign_id, dict(cover), from_ts(ts), "overrun"))
        perf: dict[ChannelType, ChannelPerformance] = {}
        late: dict[ChannelType, ChannelPerformance] = {}
        for c, ch in state.channels.items():
            if ch.budget <= 0 or ch.day is None:
                continue
            start = int(ch.day.start // 3600)
            past = ch.history.totals(start - 7 * 24, start)
            if ch.day.end - ts < EXCESS_CUTOFF_S:
                continue  # too late in the day even for excess
            capacity = None
            if state.answered:  # the campaign reserves: demand is observable
                unmet = ch.ring_total(UNMET, ts, UNMET_WINDOW_S)
                capacity = int(unmet * UNMET_HORIZON_S / UNMET_WINDOW_S)
            headroom = planning.day_headroom(state, ch, ts)
            if headroom is not None:
                capacity = headroom if capacity is None else min(capacity, headroom)
            # too late in the day for efficiency moves (the receiver's money would be
            # stranded); excess, stranded anyway where it is, may still move
            book = late if ch.day.end - ts < REALLOCATION_CUTOFF_S else perf
            book[c] = ChannelPerformance(
                budget=ch.budget,
                spent=ch.spent_total,
                # expired-but-unreported holds are money a late platform has probably
                # spent: a donor must not give it away (it would overspend on arrival)
                reserved=ch.reserved_total + ch.unreported_total,
                conversions=ch.conversions_today + past[CONVERSIONS],
                spend_for_efficiency=ch.spent_total + past[SPEND],
                capacity=capacity,
                excess=planning.day_excess(state, ch, ts),
                keep=ch.cum_plan[-1] - planned_at(ch, ch.day.end - REALLOCATION_CUTOFF_S)
                if ch.cum_plan
                else 0,
            )
        # Money a channel cannot spend by midnight goes first; efficiency moves wait for
        # the next run (one move per run keeps each move's inputs its own).
        deltas = rescue_moves(perf | late)
        reason = "excess"
        if not deltas:
            deltas, reason = plan_moves(perf, state.thresholds), "performance"
        if not deltas:
            return cover, out
        for c, d in deltas.items():
            ch = state.channels[c]
            ch.budget += d
            if d > 0:
                planning.receive(state, ch, ts, d, self.strategies)
            else:
                planning.rebase(state, ch, ts, self.strategies)
        out.append(BudgetMove(state.campaign_id, dict(deltas), from_ts(ts), reason))
        for c, d in cover.items():
            deltas[c] = deltas.get(c, 0) + d
        return {c: d for c, d in deltas.items() if d}, out

    # ------------------------------------------------------------------ time
    def tick(self, state: CampaignState, now: datetime) -> list[Output]:
        """Apply due time-based transitions and evaluate pace alerts for every channel."""
        ts = epoch_s(now, what="now")
        out: list[Output] = self._take_outbox(state)
        for ch in state.channels.values():
            out += self._touch(state, ch, ts)
            if ch.budget > 0:
                out += alerting.emergency_alert(state, ch, ts)
                out += alerting.pace_alerts(state, ch, ts, planned_at(ch, ts))
                out += alerting.performance_thresholds(state, ch, ts)
        return out

    @staticmethod
    def awaits_time(state: CampaignState) -> bool:
        """Whether time alone will soon change the campaign in a way others must see
        promptly (:func:`pacer_stream.core.day.awaits_time`): how often a timer should
        :meth:`tick` it."""
        return awaits_time(state)

    def expired(self, state: CampaignState, now: datetime) -> bool:
        """A campaign that only exists because spend arrived for it (never budgeted,
        not stopped) and whose last spend is older than the history horizon carries
        nothing anyone can use: it may leave the table."""
        if state.configured or state.emergency_stopped:
            return False
        oldest = epoch_s(now, what="now") - state.thresholds.history_days * _DAY_S
        return all(
            (ch.history.newest + 1) * 3600 <= oldest and not ch.reservations
            for ch in state.channels.values()
        )

    # ------------------------------------------------------------------ read models
    def snapshot(self, state: CampaignState, channel: ChannelType, now: datetime) -> PaceSnapshot:
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel)
        if ch is None:
            ch = self._channel(state, channel)
        self._defer(state, self._touch(state, ch, ts))
        day = ch.day
        assert day is not None
        slot, allowance, _ = released_allowance(ch, ts, state.thresholds)
        return PaceSnapshot(
            campaign_id=state.campaign_id,
            channel=channel,
            at=from_ts(ts),
            budget_micros=ch.budget,
            spent_micros=ch.spent_total,
            reserved_micros=ch.reserved_total,
            planned_micros=planned_at(ch, ts),
            pace_ratio=pace_ratio(ch, ts),
            time_elapsed_pct=day.elapsed_fraction(ts),
            hour_allowance_micros=allowance,
            hour_spent_micros=ch.spent[slot],
            breaker=ch.breaker.state,
            clicks=ch.clicks_today,
            conversions=ch.conversions_today,
            impressions=ch.impressions_today,
            revenue_micros=ch.revenue_today,
            pacing_multiplier=pacing_multiplier(state, ch, ts),
            performance=self._performance_dict(ch),
        )

    def performance(
        self, state: CampaignState, channel: ChannelType, now: datetime
    ) -> PerformanceSnapshot:
        """Today / last 7 days / 28-day baseline metrics and today's hourly view."""
        ts = epoch_s(now, what="now")
        ch = self._channel(state, channel)
        self._defer(state, self._touch(state, ch, ts))
        day = ch.day
        assert day is not None
        return performance_snapshot(
            ch.history, int(day.start // 3600), int((day.end + 3599) // 3600)
        )

    def pacing_multiplier(self, state: CampaignState, channel: ChannelType, now: datetime) -> float:
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel)
        if ch is None:
            return 0.0
        self._defer(state, self._touch(state, ch, ts))
        return pacing_multiplier(state, ch, ts)

    @staticmethod
    def _performance_dict(ch: ChannelState) -> dict[str, dict[str, float | int | None]]:
        day = ch.day
        if day is None:
            return {}
        start = int(day.start // 3600)
        snap = performance_snapshot(ch.history, start, start)
        today = Metrics(
            ch.spent_total,
            ch.impressions_today,
            ch.clicks_today,
            ch.conversions_today,
            ch.revenue_today,
        )
        return {
            "today": today.as_dict(),
            "last_7_days": snap.last_7_days.as_dict(),
            "baseline": snap.baseline.as_dict(),
        }

    def current_alert(
        self, state: CampaignState, channel: ChannelType, now: datetime
    ) -> tuple[float, Alert | None]:
        """(pace ratio, alert for the current condition or None), without changing any
        de-duplication state: what ``check_pace`` reports to a caller who asks."""
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel)
        if ch is None:
            return 0.0, None
        self._defer(state, self._touch(state, ch, ts))
        return alerting.current_condition(state, ch, ts)

    def allowance(
        self, state: CampaignState, channel: ChannelType, now: datetime, slice_s: float
    ) -> int:
        """What may be spent in the next ``slice_s`` seconds under every rule (for the
        Redis fast path). Conservative: uses the allowance released by the *start* of
        the slice plus the slice's own release, and 0 unless the breaker is CLOSED."""
        ts = epoch_s(now, what="now")
        ch = state.channels.get(channel)
        if ch is None or not state.configured or state.emergency_stopped or ch.budget <= 0:
            return 0
        self._defer(state, self._touch(state, ch, ts))
        if ch.breaker.state is not CircuitBreakerState.CLOSED:
            return 0
        t = state.thresholds
        daily = ch.remaining
        slot, allowance, released_end = released_allowance(ch, ts + slice_s, t)
        day = ch.day
        assert day is not None
        if not day.contains(ts + slice_s):
            slot, allowance, released_end = released_allowance(ch, ts, t)
        hourly = released_end - ch.spent[slot] - ch.reserved_total
        window = ch.ring_total(VELOCITY, ts, t.velocity_window_s)
        velocity = velocity_limit(ch, slot, allowance, t, t.velocity_multiple) - window
        velocity -= ch.reserved_total
        return max(0, min(daily, hourly, velocity))

    def hourly_plan(
        self, state: CampaignState, channel: ChannelType, now: datetime
    ) -> ChannelState:
        """The channel state with today's plan computed (for allocation reports)."""
        ts = epoch_s(now, what="now")
        ch = self._channel(state, channel)
        self._defer(state, self._touch(state, ch, ts))
        return ch

    # ------------------------------------------------------------------ internals
    def _channel(self, state: CampaignState, channel: ChannelType) -> ChannelState:
        if not isinstance(channel, ChannelType):
            raise WrongType(f"channel must be a ChannelType, got {channel!r}")
        ch = state.channels.get(channel)
        if ch is None:
            ch = ChannelState(channel=channel)
            state.channels[channel] = ch
        return ch

    @staticmethod
    def _take_outbox(state: CampaignState) -> list[Output]:
        if not state.outbox:
            return []
        out, state.outbox = state.outbox, NO_OUTPUTS
        return out

    @staticmethod
    def _defer(state: CampaignState, outputs: list[Output]) -> None:
        """Queue lazy-time outputs for the next call that returns outputs (the outbox
        stays the shared empty list until there is something to queue)."""
        if outputs:
            if state.outbox:
                state.outbox += outputs
            else:
                state.outbox = list(outputs)

    def _touch(self, state: CampaignState, ch: ChannelState, ts: float) -> list[Output]:
        """Lazy time (see :mod:`pacer_stream.core.day`) with this engine's strategies."""
        return touch(state, ch, ts, self.strategies)


def _reserved_at(state: CampaignState, reservation_id: str, ch: ChannelState) -> float | None:
    """When a reservation no longer held was made (its request's answer): a spend that
    arrives after the grace dropped the hold is still a report lag to learn from, or the
    grace could never grow past its starting value."""
    answer = state.answered.get(reservation_id[4:]) if reservation_id.startswith("res-") else None
    if answer is None or answer.reservation_id != reservation_id or answer.channel != ch.channel:
        return None
    return answer.answered_at


#: How a retried request whose reservation has ended is answered.
_ENDED: Mapping[AnswerStatus, tuple[Code, str]] = {
    AnswerStatus.SETTLED: (
        Code.RESERVATION_SETTLED,
        "reservation already settled by reported spend; nothing new is authorised",
    ),
    AnswerStatus.EXPIRED: (
        Code.RESERVATION_EXPIRED,
        "reservation expired unused; ask again with a new request_id",
    ),
    AnswerStatus.RELEASED: (
        Code.RESERVATION_RELEASED,
        "reservation was released; ask again with a new request_id",
    ),
    AnswerStatus.LIVE: (
        Code.RESERVATION_EXPIRED,
        "reservation no longer held; ask again with a new request_id",
    ),
}


def _check_totals(ch: ChannelState, hour: int, event: SpendEvent, today: bool) -> None:
    """Refuse (code ``total_overflow``) an event that would take a stored total past
    the largest exact JSON integer: totals are money and must never wrap or turn into
    something the table cannot store."""
    amount, clicks, conversions = event.amount_micros, event.clicks, event.conversions
    impressions, revenue = event.impressions or 0, event.revenue_micros or 0
    bucket = ch.history.get(hour)
    # Plain comparisons, not a generator over zip: this runs for every spend event.
    if bucket is not None and (
        bucket[0] + amount > MAX_MICROS
        or bucket[1] + clicks > MAX_MICROS
        or bucket[2] + conversions > MAX_MICROS
        or bucket[3] + impressions > MAX_MICROS
        or bucket[4] + revenue > MAX_MICROS
    ):
        raise InvalidArgument("an hourly history total would overflow", code="total_overflow")
    if today and (
        ch.spent_total + amount > MAX_MICROS
        or ch.clicks_today + clicks > MAX_MICROS
        or ch.conversions_today + conversions > MAX_MICROS
        or ch.impressions_today + impressions > MAX_MICROS
        or ch.revenue_today + revenue > MAX_MICROS
    ):
        raise InvalidArgument("today's channel total would overflow", code="total_overflow")


def _check_spend(event: SpendEvent) -> None:
    check_id(event.event_id, "event_id")
    check_campaign_id(event.campaign_id)
    if not isinstance(event.channel, ChannelType):
        raise WrongType(f"channel must be a ChannelType, got {event.channel!r}")
    check_micros(event.amount_micros, what="amount_micros")
    clicks, conversions = event.clicks, event.conversions
    impressions, revenue = event.impressions, event.revenue_micros
    if (  # the usual case in one expression; the loop below names what is wrong
        type(clicks) is int
        and type(conversions) is int
        and 0 <= clicks <= MAX_MICROS
        and 0 <= conversions <= MAX_MICROS
        and (impressions is None or (type(impressions) is int and 0 <= impressions <= MAX_MICROS))
        and (revenue is None or (type(revenue) is int and 0 <= revenue <= MAX_MICROS))
    ):
        return
    for name in ("clicks", "conversions", "impressions", "revenue_micros"):
        v = getattr(event, name)
        if v is None and name in ("impressions", "revenue_micros"):
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_MICROS:
            raise InvalidArgument(f"{name} must be an integer from 0 to {MAX_MICROS}, got {v!r}")


def _input_key(kind: str, input_id: str) -> str:
    """Dedupe-window key of a non-spend input (kept apart from event ids by the kind)."""
    return f"{kind}:{input_id}"
