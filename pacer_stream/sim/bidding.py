"""A bid engine that applies pacer-stream's pacing multiplier.

The default bid engine of the simulator takes or skips each offered batch (like every
baseline). This one scales its bids by the multiplier ``m`` of the latest can-spend
decision on the channel (``Decision.pacing_multiplier``; when it asked nothing in the
previous minute it polls ``PacingEngine.pacing_multiplier``), on a simple bid
landscape with elasticity ``e`` (:data:`~pacer_stream.sim.scenario.BID_ELASTICITY`,
0.5): a bid scaled by ``m`` wins ``m ** e`` times the clicks at ``m ** (1 - e)`` times
the cost per click, so its expected spend scales by ``m``.

* ``m < 1`` (shaded bids): the engine wins a batch with probability ``m ** e`` (the
  batch's shared uniform draw, common random numbers with the throttle baseline) and
  pays ``m ** (1 - e)`` of its cost for the same clicks and conversions.
* ``m >= 1`` (raised bids): it wins the batch plus extra clicks, Poisson with mean
  ``clicks x (m ** e - 1)``, converting at the batch's own expected rate (Poisson),
  and pays ``m ** (1 - e)`` times the batch's cost per click for all of them.
* ``m == 0``: it bids nothing.

Extra clicks and conversions are drawn from a stream seeded by (seed, campaign) and
used only here, so the run is deterministic by seed and the shared traffic is
untouched. Each batch's amount is asked for (``reserve``) before it is bought.
"""

from __future__ import annotations

import numpy as np

from pacer_stream.sim.scenario import BID_ELASTICITY
from pacer_stream.sim.traffic import Traffic

#: Tag of the bid engine's random stream (independent of traffic and faults).
STREAM_TAG = 8


class BidEngine:
    """One campaign's multiplier-applying bid engine."""

    def __init__(self, traffic: Traffic, c: int) -> None:
        self.cost = traffic.cost[c].tolist()
        self.clicks = traffic.clicks[c].tolist()
        self.conversions = traffic.conversions[c].tolist()
        self.expected = traffic.expected_conversions[c].tolist()
        self.uniform = traffic.uniform[c].tolist()
        self.rng = np.random.default_rng([traffic.seed, STREAM_TAG, c])
        n_h = traffic.n_channels
        #: The multiplier in use per channel (1 before the first decision).
        self.multiplier = [1.0] * n_h
        #: Minute of the latest decision per channel.
        self.last_decided = [-1] * n_h
        self.e = BID_ELASTICITY

    def decided(self, h: int, m: int, multiplier: float) -> None:
        self.multiplier[h] = multiplier
        self.last_decided[h] = m

    def offer(self, h: int, m: int, k: int) -> tuple[int, int, int] | None:
        """What bidding on batch k of minute m would buy at the current multiplier:
        (cost micros, clicks, conversions), or None when nothing is won."""
        x = self.cost[h][m][k]
        mult = self.multiplier[h]
        if not x or mult <= 0.0:
            return None
        n = self.clicks[h][m][k]
        v = self.conversions[h][m][k]
        if mult < 1.0:
            if self.uniform[h][m][k] >= mult**self.e:
                return None  # outbid
            amount = round(x * mult ** (1.0 - self.e))
        elif mult == 1.0:
            amount = x
        else:
            extra = int(self.rng.poisson(n * (mult**self.e - 1.0)))
            if extra:
                rate = self.expected[h][m][k] / n
                v += int(self.rng.poisson(rate * extra))
            amount = round(x * (n + extra) / n * mult ** (1.0 - self.e))
            n += extra
        if amount <= 0:
            return None
        return amount, n, v
