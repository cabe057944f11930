"""Idempotent topic creation (``pacer-stream topics create``).

Why here: the worker, the CLI, the client and the benchmarks all connect to the same
cluster with the same security settings (SASL/SCRAM, TLS), and every topic of
``topics/topics.yaml`` must exist with one partition count for the inputs to be
co-partitioned. Creating only what is missing and then *checking* the partition counts of
what exists makes the command safe to run on every deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pacer_stream.connection import kafka_options
from pacer_stream.streams.names import TopicNames
from pacer_stream.wire import topics

#: Kafka error code of CreateTopics for a topic that already exists.
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    name: str
    partitions: int
    action: str  # "created", "exists" or "mismatch"
    detail: str = ""


async def create_topics(
    settings: Any,
    *,
    partitions: int | None = None,
    names: TopicNames | None = None,
    timeout_ms: int = 30_000,
) -> list[TopicOutcome]:
    """Create every topic of ``topics.yaml`` that does not exist (with its cleanup policy
    and retention) and report the partition count of those that do.

    ``partitions`` defaults to ``settings.topic_partitions`` for every topic (keeps the
    inputs co-partitioned); topic names get ``settings.topic_prefix``.
    """
    names = names or TopicNames.from_settings(settings)
    count = partitions or int(settings.topic_partitions)
    specs = topics.topic_specs(count)
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {names.actual(s.name): s for s in specs.values()}
        missing = [
            NewTopic(
                name=actual,
                num_partitions=spec.partitions,
                replication_factor=int(settings.topic_replication_factor),
                topic_configs=spec.kafka_config(),
            )
            for actual, spec in wanted.items()
            if actual not in existing
        ]
        errors: dict[str, str] = {}
        if missing:
            response = await admin.create_topics(missing, timeout_ms=timeout_ms)
            for entry in getattr(response, "topic_errors", []):
                name, code = entry[0], entry[1]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    errors[name] = f"error code {code}: {entry[2] if len(entry) > 2 else ''}"
        created = {t.name for t in missing} - set(errors)
        present = await _partition_counts(admin, [a for a in wanted if a not in created])
    finally:
        await admin.close()
    out: list[TopicOutcome] = []
    for actual, spec in wanted.items():
        if actual in errors:
            raise RuntimeError(f"could not create topic {actual}: {errors[actual]}")
        if actual in created:
            out.append(TopicOutcome(actual, spec.partitions, "created"))
            continue
        have = present.get(actual, 0)
        if have != spec.partitions:
            out.append(
                TopicOutcome(
                    actual, have, "mismatch", f"has {have} partitions, expected {spec.partitions}"
                )
            )
        else:
            out.append(TopicOutcome(actual, have, "exists"))
    return out


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    described = await admin.describe_topics(names)
    counts: dict[str, int] = {}
    for t in described:
        name = t.get("topic") if isinstance(t, dict) else None
        if name is not None:
            counts[name] = len(t.get("partitions") or [])
    return counts
