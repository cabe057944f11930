"""Bounds a worker keeps on what hostile or buggy inputs can make it hold or emit.

Neither is a pacing rule (those live in :mod:`pacer_stream.core`): they protect the
worker itself.

* :class:`CampaignQuota` -- campaigns that exist only because spend arrived for them
  (no budget yet). A producer bug that invents campaign ids would otherwise grow the
  table without limit; past the quota such spend goes to the DLQ with
  ``unbudgeted_campaign_limit``. Such campaigns also expire once their last spend is
  older than the history horizon (:meth:`PacingEngine.expired`).
* :class:`AlertLimiter` -- alerts per campaign/channel in a sliding window. The engine
  already emits an alert once per change of condition; this caps a condition that
  flaps (the breaker transition records themselves are never limited).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

#: DLQ code of spend for a new, unbudgeted campaign beyond the worker's quota.
UNBUDGETED_CAMPAIGN_LIMIT = "unbudgeted_campaign_limit"


@dataclass
class CampaignQuota:
    """How many unbudgeted campaigns this worker holds, at most ``limit``."""

    limit: int
    unbudgeted: set[str] = field(default_factory=set)

    def admit(self, campaign_id: str) -> bool:
        """May spend create state for this unbudgeted campaign? (Counts it if so.)"""
        if campaign_id in self.unbudgeted:
            return True
        if len(self.unbudgeted) >= self.limit:
            return False
        self.unbudgeted.add(campaign_id)
        return True

    def budgeted(self, campaign_id: str) -> None:
        """The campaign got a budget (or was removed): it no longer counts."""
        self.unbudgeted.discard(campaign_id)

    def reset(self, campaign_ids: set[str]) -> None:
        """Recount from the table (after recovery or a rebalance)."""
        self.unbudgeted = set(campaign_ids)


@dataclass
class AlertLimiter:
    """At most ``burst`` alerts per campaign/channel within ``window_s`` seconds.

    Memory is bounded too: at most ``max_keys`` campaign/channels are tracked (the
    least recently alerting are forgotten first, which can only let an alert through).
    """

    burst: int = 10
    window_s: float = 300.0
    max_keys: int = 100_000
    _recent: OrderedDict[tuple[str, str], deque[float]] = field(default_factory=OrderedDict)

    def allow(self, campaign_id: str, channel: str, ts: float) -> bool:
        key = (campaign_id, channel)
        times = self._recent.get(key)
        if times is None:
            times = self._recent[key] = deque()
            while len(self._recent) > self.max_keys:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        while times and times[0] <= ts - self.window_s:
            times.popleft()
        if len(times) >= self.burst:
            return False
        times.append(ts)
        return True

    def __len__(self) -> int:
        return len(self._recent)
