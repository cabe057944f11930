"""Actual topic names of one deployment: the logical names of ``topics.yaml`` behind an
optional prefix (``settings.topic_prefix``).

Why: integration tests and benchmarks run against a shared broker and must not see each
other's records, and several deployments may share one cluster. Everything that decodes
a record keys on the *logical* name (``records.decode`` knows ``pacer.spend.v1``), and
everything that produces or consumes uses the *actual* name; this class maps both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import topics

#: Default of ``settings.reply_topic_pattern``: the shared replies topic and per-client
#: topics beside it (``pacer.can-spend.replies.<client>``), behind the prefix.
DEFAULT_REPLY_PATTERN = "pacer.can-spend.replies.*"
#: DLQ code of a can-spend request whose ``reply_to`` the worker will not write to.
REPLY_TO_NOT_ALLOWED = "reply_to_not_allowed"


@dataclass(frozen=True, slots=True)
class TopicNames:
    prefix: str = ""
    #: Glob (after the prefix) a request's ``reply_to`` must match.
    reply_pattern: str = DEFAULT_REPLY_PATTERN
    #: The worker's application id: its changelog and internal topics start with it.
    app_id: str = "pacer-stream"

    @classmethod
    def from_settings(cls, settings: Any) -> TopicNames:
        return cls(
            str(getattr(settings, "topic_prefix", "") or ""),
            str(getattr(settings, "reply_topic_pattern", DEFAULT_REPLY_PATTERN)),
            str(getattr(settings, "app_id", "pacer-stream")),
        )

    def reply_topic(self, reply_to: str | None) -> str:
        """Where to write a can-spend reply: the replies topic, or the request's
        ``reply_to`` when it names a reply topic this deployment allows.

        The worker writes replies with its own credentials, so a sender must not be able
        to aim them at any other topic: an input, output or DLQ topic, the table's
        changelog or faust's internal topics (``<app_id>-...``), or Kafka's own
        (``__consumer_offsets``...). Refused requests go to the DLQ with
        ``reply_to_not_allowed``; nothing is produced on the sender's say-so."""
        if reply_to is None:
            return self.replies
        name = self._reply_pattern_name(reply_to)
        if (
            name is None
            or (name in topics.ALL_TOPICS and name != topics.CAN_SPEND_REPLIES)
            or reply_to.startswith(("_", self.app_id))
        ):
            raise InvalidRecord(
                REPLY_TO_NOT_ALLOWED,
                f"reply_to {reply_to!r} is not an allowed reply topic "
                f"(allowed: {self.prefix}{self.reply_pattern})",
            )
        return reply_to

    def is_client_reply_topic(self, actual: str) -> bool:
        """Whether ``actual`` is a per-client reply topic (allowed by the reply
        pattern, not one of the deployment's own topics): a topic the worker only writes
        to because a request named it, so it may not exist."""
        # Every output goes through here: the deployment's own topics (a set lookup)
        # are ruled out before the pattern is matched.
        if self.logical(actual) is not None:
            return False
        return self._reply_pattern_name(actual) is not None

    def _reply_pattern_name(self, actual: str) -> str | None:
        """The name after the prefix when ``actual`` has the prefix and matches the
        reply pattern, else None."""
        if not actual.startswith(self.prefix):
            return None
        name = actual[len(self.prefix) :]
        return name if fnmatchcase(name, self.reply_pattern) else None

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
