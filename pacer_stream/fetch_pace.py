"""How long the broker may hold a consumer's next fetch, and for how many bytes: short
and fuller while records flow, long and answered at the first record while idle. The
worker's Kafka client thread and the client's replies consumer are paced this way.

Why: the Kafka client keeps one fetch in flight per broker. Answered at its first new
record (a minimum of 1 byte), a fetch at 1,000 can-spend requests/s nearly always
carries one record, and each costs a round of the Kafka client (request, response and,
in the worker, the hand-over from its client thread to the event loop): most of the
worker's CPU per request at that rate. Asking the broker for a few records' worth while
records flow (with a wait of a few milliseconds, so a lone record is not held long)
answers the same traffic in fewer, fuller fetches. Idle, the same short wait would send
an empty fetch every few milliseconds; so the first fetch that comes back empty switches
back to the idle pace (minimum 1 byte, the longer wait), and the next record is answered
at once.

The Kafka client reads its minimum and wait each time it builds a fetch request; the
pace sets them when each fetch response has been processed (see docs/streaming.md, "The
broker's fetch pace").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FetchPace:
    """The fetch minimum and wait while records flow (``busy_*``) and while idle."""

    idle_wait_ms: int
    busy_min_bytes: int = 1
    busy_wait_ms: int = 0

    @property
    def adaptive(self) -> bool:
        """Whether a busy fetch differs from an idle one (minimum above 1 byte)."""
        return self.busy_min_bytes > 1

    def after(self, fetcher: Any, got_records: bool) -> None:
        """Set ``fetcher``'s next fetch from what the last one brought."""
        if got_records:
            fetcher._fetch_min_bytes = self.busy_min_bytes
            fetcher._fetch_max_wait_ms = self.busy_wait_ms
        else:
            fetcher._fetch_min_bytes = 1
            fetcher._fetch_max_wait_ms = self.idle_wait_ms

    def attach(self, fetcher: Any) -> None:
        """Make ``fetcher`` (aiokafka's ``Fetcher`` of a started consumer) follow this
        pace from its next fetch on: each processed fetch response (the result says
        whether records arrived) sets the next request's minimum and wait."""
        if not self.adaptive:
            return
        process: Callable[..., Awaitable[bool]] = fetcher._proc_fetch_request

        async def paced(*args: Any, **kwargs: Any) -> bool:
            got_records = await process(*args, **kwargs)
            self.after(fetcher, bool(got_records))
            return got_records

        fetcher._proc_fetch_request = paced
