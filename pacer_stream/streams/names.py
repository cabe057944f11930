"""Actual topic names of one deployment: the logical names of ``topics.yaml`` behind an
optional prefix (``settings.topic_prefix``).

Why: integration tests and benchmarks run against a shared broker and must not see each
other's records, and several deployments may share one cluster. Everything that decodes
a record keys on the *logical* name (``records.decode`` knows ``pacer.spend.v1``), and
everything that produces or consumes uses the *actual* name; this class maps both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pacer_stream import topics


@dataclass(frozen=True, slots=True)
class TopicNames:
    prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> TopicNames:
        return cls(str(getattr(settings, "topic_prefix", "") or ""))

    def actual(self, logical: str) -> str:
        return self.prefix + logical

    def logical(self, actual: str) -> str | None:
        """The logical name of an actual topic name, or None if it is not one of ours."""
        if not actual.startswith(self.prefix):
            return None
        name = actual[len(self.prefix) :]
        return name if name in topics.ALL_TOPICS else None

    @property
    def spend(self) -> str:
        return self.prefix + topics.SPEND

    @property
    def budgets(self) -> str:
        return self.prefix + topics.BUDGETS

    @property
    def commands(self) -> str:
        return self.prefix + topics.COMMANDS

    @property
    def requests(self) -> str:
        return self.prefix + topics.CAN_SPEND_REQUESTS

    @property
    def replies(self) -> str:
        return self.prefix + topics.CAN_SPEND_REPLIES

    @property
    def alerts(self) -> str:
        return self.prefix + topics.ALERTS

    @property
    def breakers(self) -> str:
        return self.prefix + topics.BREAKERS

    @property
    def pace(self) -> str:
        return self.prefix + topics.PACE

    @property
    def dlq(self) -> str:
        return self.prefix + topics.DLQ

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.prefix + t for t in topics.INPUT_TOPICS)
