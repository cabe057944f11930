"""How long a channel's platform takes to report spend, and the grace that follows from it.

A reservation that expires before its spend is reported keeps counting against the
daily cap for a *grace* period: the platform has probably spent the money already and
will report it late. A fixed grace is wrong both ways: too short for a platform that
reports minutes late (the cap forgets money already spent and authorises it again:
overspend beyond one in-flight event), too long for one that reports at once (unused
holds block budget for nothing). So the grace follows the channel's *observed* report
lag: each spend that settles a reservation records ``settled_at - reserved_at``; the
grace after expiry is a high percentile of the recent lags, with headroom, minus the
reservation's lifetime, bounded. Until enough lags are known the configured
``report_grace_s`` applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pacer_stream.core.compact import FloatQueue
from pacer_stream.core.types import Thresholds

#: Recent lags kept per channel (bounded state; recent behaviour matters most).
LAG_SAMPLES = 64
#: Fewer lags than this: the configured ``report_grace_s`` applies.
MIN_LAG_SAMPLES = 8
#: The percentile of the recent lags the grace covers ...
LAG_PERCENTILE = 0.95
#: ... times this headroom, plus this margin (a platform a little slower than usual).
LAG_HEADROOM = 1.5
LAG_MARGIN_S = 60.0
#: Bounds of the grace after expiry: never shorter than a minute, never longer than a day.
MIN_GRACE_S = 60.0
MAX_GRACE_S = 86_400.0


class Lags(FloatQueue):
    """The last :data:`LAG_SAMPLES` report lags of a channel, oldest first (a compact
    ``deque(maxlen=LAG_SAMPLES)``: nothing allocated until the first lag is known)."""

    __slots__ = ()
    maxlen = LAG_SAMPLES


def new_lags(values: Iterable[float] = ()) -> Lags:
    return Lags(values)


def record_lag(lags: Lags, lag: float) -> None:
    """Remember one observed report lag (seconds; negative or non-finite ones count 0)."""
    lags.append(lag if lag > 0 and math.isfinite(lag) else 0.0)


def report_grace(lags: Lags, t: Thresholds) -> float:
    """Seconds an expired, unreported reservation keeps counting against the cap."""
    if len(lags) < MIN_LAG_SAMPLES:
        return float(t.report_grace_s)
    ordered = sorted(lags)
    high = ordered[min(len(ordered) - 1, math.ceil(LAG_PERCENTILE * len(ordered)) - 1)]
    grace = high * LAG_HEADROOM + LAG_MARGIN_S - t.reservation_ttl_s
    return min(MAX_GRACE_S, max(MIN_GRACE_S, grace))
