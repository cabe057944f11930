"""Kafka topics of pacer-stream: names, declarations and JSON Schemas.

The names are constants so every component spells them the same way. The full
declarations (partitions, cleanup policy, retention, key, schema file, direction) live in
``topics/topics.yaml`` at the repository root; :func:`load_topics` reads and checks that
file. An installed package may not ship the repository's ``topics/`` folder, so
:func:`topic_specs` falls back to :data:`BUILTIN_SPECS`, which mirror the yaml (a contract
test keeps the two identical).

All input topics are keyed by ``campaign_id`` and share one partition count, so one worker
owns a campaign's whole state; the output topics use the same count so a campaign's
outputs keep the order in which they were produced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

SPEND: Final = "pacer.spend.v1"
BUDGETS: Final = "pacer.budgets.v1"
COMMANDS: Final = "pacer.commands.v1"
CAN_SPEND_REQUESTS: Final = "pacer.can-spend.requests.v1"
CAN_SPEND_REPLIES: Final = "pacer.can-spend.replies.v1"
ALERTS: Final = "pacer.alerts.v1"
BREAKERS: Final = "pacer.breakers.v1"
PACE: Final = "pacer.pace.v1"
DLQ: Final = "pacer.dlq.v1"

#: Topics the worker consumes (co-partitioned, keyed by ``campaign_id``).
INPUT_TOPICS: Final = (SPEND, BUDGETS, COMMANDS, CAN_SPEND_REQUESTS)
#: Topics the worker produces.
OUTPUT_TOPICS: Final = (CAN_SPEND_REPLIES, ALERTS, BREAKERS, PACE, DLQ)
ALL_TOPICS: Final = INPUT_TOPICS + OUTPUT_TOPICS

DEFAULT_PARTITIONS: Final = 8

Direction = Literal["in", "out"]
CleanupPolicy = Literal["delete", "compact"]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS

#: Where the declarations live when running from a checkout (``topics/`` at repo root).
TOPICS_DIR: Final = Path(__file__).resolve().parents[2] / "topics"
TOPICS_FILE: Final = TOPICS_DIR / "topics.yaml"
#: Where an installed package may carry copies of the schemas (package data).
_PACKAGE_SCHEMAS_DIR: Final = Path(__file__).resolve().parents[1] / "schemas"

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_KEYS: Final = frozenset({"campaign_id", "campaign_id:channel", "source_key"})


class TopicConfigError(ValueError):
    """``topics.yaml`` is malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """Declaration of one topic.

    ``retention_ms`` is ``None`` for compacted topics (the latest value per key is kept
    forever). ``key`` names the record key: ``campaign_id``, ``campaign_id:channel``
    (breaker states) or ``source_key`` (the DLQ keeps the failed record's original key).
    ``schema`` is the JSON Schema file, relative to the topics folder.
    """

    name: str
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    key: str
    schema: str
    direction: Direction

    @property
    def compacted(self) -> bool:
        return self.cleanup_policy == "compact"

    def kafka_config(self) -> dict[str, str]:
        """Topic-level Kafka configuration (for the admin client / ``topics create``)."""
        config: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


def _spec(
    name: str,
    direction: Direction,
    *,
    key: str = "campaign_id",
    cleanup_policy: CleanupPolicy = "delete",
    retention_ms: int | None,
) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=DEFAULT_PARTITIONS,
        cleanup_policy=cleanup_policy,
        retention_ms=retention_ms,
        key=key,
        schema=f"schemas/{name}.json",
        direction=direction,
    )


#: Built-in declarations, identical to ``topics/topics.yaml`` (checked by a contract test).
BUILTIN_SPECS: Final[tuple[TopicSpec, ...]] = (
    _spec(SPEND, "in", retention_ms=7 * _DAY_MS),
    _spec(BUDGETS, "in", cleanup_policy="compact", retention_ms=None),
    _spec(COMMANDS, "in", retention_ms=7 * _DAY_MS),
    _spec(CAN_SPEND_REQUESTS, "in", retention_ms=_HOUR_MS),
    _spec(CAN_SPEND_REPLIES, "out", retention_ms=_HOUR_MS),
    _spec(ALERTS, "out", retention_ms=7 * _DAY_MS),
    _spec(BREAKERS, "out", key="campaign_id:channel", cleanup_policy="compact", retention_ms=None),
    _spec(PACE, "out", retention_ms=3 * _DAY_MS),
    _spec(DLQ, "out", key="source_key", retention_ms=30 * _DAY_MS),
)


def is_valid_topic_name(name: str) -> bool:
    """Kafka's rule for topic names: 1-249 of ``[A-Za-z0-9._-]``."""
    return bool(_TOPIC_NAME.fullmatch(name)) and name not in {".", ".."}


def load_topics(path: Path | str | None = None) -> tuple[TopicSpec, ...]:
    """Read and check ``topics.yaml`` (default: the repository's ``topics/topics.yaml``).

    Raises ``FileNotFoundError`` when the file does not exist and
    :class:`TopicConfigError` when it is malformed: unknown or missing keys, bad types,
    duplicate names, input topics with different partition counts, a compacted topic with
    a retention, or a delete topic without one.
    """
    import yaml  # local import: only needed when the file is read

    file = Path(path) if path is not None else TOPICS_FILE
    with file.open("r", encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    if not isinstance(document, Mapping):
        raise TopicConfigError(f"{file}: top level must be a mapping")
    unknown = set(document) - {"defaults", "topics"}
    if unknown:
        raise TopicConfigError(f"{file}: unknown top-level keys {sorted(unknown)}")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, Mapping) or set(defaults) - {"partitions"}:
        raise TopicConfigError(f"{file}: 'defaults' may only set 'partitions'")
    default_partitions = defaults.get("partitions", DEFAULT_PARTITIONS)
    entries = document.get("topics")
    if not isinstance(entries, list) or not entries:
        raise TopicConfigError(f"{file}: 'topics' must be a non-empty list")
    specs = tuple(_parse_entry(entry, default_partitions, file) for entry in entries)
    _check_specs(specs, str(file))
    return specs


def _parse_entry(entry: object, default_partitions: object, file: Path) -> TopicSpec:
    if not isinstance(entry, Mapping):
        raise TopicConfigError(f"{file}: every topic must be a mapping, got {entry!r}")
    allowed = {"name", "partitions", "cleanup_policy", "retention_ms", "key", "schema",
               "direction"}
    unknown = set(entry) - allowed
    if unknown:
        raise TopicConfigError(f"{file}: unknown keys {sorted(unknown)} in {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not is_valid_topic_name(name):
        raise TopicConfigError(f"{file}: invalid topic name {name!r}")
    where = f"{file}: topic {name}"
    partitions = entry.get("partitions", default_partitions)
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise TopicConfigError(f"{where}: partitions must be a positive integer")
    cleanup = entry.get("cleanup_policy", "delete")
    if cleanup not in ("delete", "compact"):
        raise TopicConfigError(f"{where}: cleanup_policy must be 'delete' or 'compact'")
    retention = entry.get("retention_ms")
    if retention is not None and (
        isinstance(retention, bool) or not isinstance(retention, int) or retention < 1
    ):
        raise TopicConfigError(f"{where}: retention_ms must be a positive integer or null")
    key = entry.get("key", "campaign_id")
    if key not in _KEYS:
        raise TopicConfigError(f"{where}: key must be one of {sorted(_KEYS)}")
    schema = entry.get("schema", f"schemas/{name}.json")
    if not isinstance(schema, str) or not schema:
        raise TopicConfigError(f"{where}: schema must be a relative file name")
    direction = entry.get("direction")
    if direction not in ("in", "out"):
        raise TopicConfigError(f"{where}: direction must be 'in' or 'out'")
    return TopicSpec(
        name=name,
        partitions=partitions,
        cleanup_policy=cleanup,
        retention_ms=retention,
        key=key,
        schema=schema,
        direction=direction,
    )


def _check_specs(specs: Iterable[TopicSpec], origin: str) -> None:
    seen: set[str] = set()
    input_partitions: set[int] = set()
    for spec in specs:
        if spec.name in seen:
            raise TopicConfigError(f"{origin}: topic {spec.name} declared twice")
        seen.add(spec.name)
        if spec.compacted and spec.retention_ms is not None:
            raise TopicConfigError(f"{origin}: compacted topic {spec.name} has a retention")
        if not spec.compacted and spec.retention_ms is None:
            raise TopicConfigError(f"{origin}: topic {spec.name} needs retention_ms")
        if spec.direction == "in":
            if spec.key != "campaign_id":
                raise TopicConfigError(f"{origin}: input topic {spec.name} must be keyed "
                                       "by campaign_id")
            input_partitions.add(spec.partitions)
    if len(input_partitions) > 1:
        raise TopicConfigError(
            f"{origin}: input topics must be co-partitioned, got partition counts "
            f"{sorted(input_partitions)}"
        )


def topic_specs(
    partitions: int | None = None, *, path: Path | str | None = None
) -> dict[str, TopicSpec]:
    """Every topic declaration by name, from ``topics.yaml`` when it can be found, else
    from :data:`BUILTIN_SPECS`.

    ``partitions`` overrides the partition count of *every* topic (e.g. from the
    ``PACER_TOPIC_PARTITIONS`` setting), which keeps the input topics co-partitioned.
    """
    if partitions is not None and (
        isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
    ):
        raise ValueError(f"partitions must be a positive integer, got {partitions!r}")
    file = Path(path) if path is not None else TOPICS_FILE
    specs = load_topics(file) if (path is not None or file.is_file()) else BUILTIN_SPECS
    if partitions is not None:
        specs = tuple(replace(spec, partitions=partitions) for spec in specs)
    return {spec.name: spec for spec in specs}


def schema_path(topic: str, *, specs: Mapping[str, TopicSpec] | None = None) -> Path:
    """The JSON Schema file of ``topic``: the repository's ``topics/`` folder first, then
    a copy shipped inside the package (``pacer_stream/schemas/``), if any.

    Raises ``KeyError`` for an unknown topic and ``FileNotFoundError`` when no file exists.
    """
    all_specs = specs if specs is not None else topic_specs()
    spec = all_specs[topic]
    candidates = (TOPICS_DIR / spec.schema, _PACKAGE_SCHEMAS_DIR / Path(spec.schema).name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no JSON Schema found for topic {topic} ({spec.schema})")


def load_schema(topic: str) -> dict[str, Any]:
    """The parsed JSON Schema (draft 2020-12) of ``topic``."""
    with schema_path(topic).open("r", encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


__all__ = [
    "ALERTS",
    "ALL_TOPICS",
    "BREAKERS",
    "BUDGETS",
    "BUILTIN_SPECS",
    "CAN_SPEND_REPLIES",
    "CAN_SPEND_REQUESTS",
    "COMMANDS",
    "DEFAULT_PARTITIONS",
    "DLQ",
    "INPUT_TOPICS",
    "OUTPUT_TOPICS",
    "PACE",
    "SPEND",
    "TOPICS_DIR",
    "TOPICS_FILE",
    "TopicConfigError",
    "TopicSpec",
    "is_valid_topic_name",
    "load_schema",
    "load_topics",
    "schema_path",
    "topic_specs",
]
