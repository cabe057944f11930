"""JSON Schemas of the topics, generated from :mod:`pacer_stream.wire.models`.

``msgspec.json.schema`` describes each model; :func:`topic_schema` turns that into the
self-contained draft 2020-12 document committed as ``topics/schemas/<topic>.json``:
references inlined (one file per topic, readable without a resolver), ``X | None`` written
as ``"type": [X, "null"]``, enumerations in the order of the core's enums, and the
record's title, description and strictness. ``pacer-stream schemas export`` writes the
files; a contract test checks the committed files equal the generated ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Final

import msgspec

from pacer_stream.wire import topics
from pacer_stream.wire.models import ENUMS, MODELS, VARIANTS, InputRecord, WireRecord

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
_STRICT: Final = "Unknown fields are rejected."
_TOLERANT: Final = (
    "Readers must ignore unknown fields (output topics may gain fields within v1)."
)
#: msgspec lists enum values sorted; the schemas keep the declaration order of the enum.
_ENUMS: Final[Mapping[str, type[Enum]]] = {cls.__name__: cls for cls in ENUMS}


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by its definition and ``anyOf [X, null]``
    folded into ``X`` with a nullable type."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            name = value.rsplit("/", 1)[-1]
            target = dict(_inline(defs[name], defs))
            target.pop("title", None)
            if name in _ENUMS:
                target = {"type": "string", "enum": [m.value for m in _ENUMS[name]]}
            out.update({k: v for k, v in target.items() if k not in out or k != "description"})
        elif key in ("title", "default") or (key == "required" and not value):
            continue
        else:
            out[key] = _inline(value, defs)
    options = out.pop("anyOf", None)
    if options is not None:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) != 1 or len(options) != 2:
            out["anyOf"] = options
            return out
        merged = {**rest[0], **out}
        if "enum" in merged:
            merged.pop("type", None)
            merged["enum"] = [*merged["enum"], None]
        else:
            merged["type"] = [merged["type"], "null"]
        return _ordered(merged)
    return _ordered(out)


_KEY_ORDER: Final = ("description", "type", "const", "enum")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Description and type first, so a reader of the file sees them before bounds."""
    head: dict[str, Any] = {k: node[k] for k in _KEY_ORDER if k in node}
    return {**head, **{k: v for k, v in node.items() if k not in head}}


def topic_schema(model: type[WireRecord]) -> dict[str, Any]:
    """The JSON Schema document of ``model``'s topic."""
    raw = msgspec.json.schema(model)
    defs = raw["$defs"]
    body = _inline(defs[model.__name__], defs)
    props = body["properties"]
    props["schema_version"] = {
        "description": props["schema_version"]["description"],
        "type": "integer",
        "const": 1,
    }
    strict = issubclass(model, InputRecord)
    return {
        "$schema": DRAFT,
        "$id": f"urn:pacer-stream:topic:{model.topic}",
        "title": model.title,
        "description": f"{model.about} {_STRICT if strict else _TOLERANT}",
        "type": "object",
        "required": ["schema_version", *body["required"]],
        "properties": props,
        "additionalProperties": not strict,
        **model.schema_extra,
    }


def document(topic: str) -> dict[str, Any]:
    """``topic``'s schema: its model's, or a ``oneOf`` of every shape the topic accepts
    (``pacer.spend.v1``: a single event or a batch)."""
    main = topic_schema(MODELS[topic])
    variants = VARIANTS.get(topic, ())
    if not variants:
        return main
    shapes = [main, *(topic_schema(v) for v in variants)]
    head = {k: main[k] for k in ("$schema", "$id")}
    return {
        **head,
        "title": " | ".join(s["title"] for s in shapes),
        "description": "One of: " + " ".join(f"({i}) {s['title']}." for i, s in
                                             enumerate(shapes, 1)),
        "oneOf": [{k: v for k, v in s.items() if k not in head} for s in shapes],
    }


def render(topic: str) -> str:
    """The file text of ``topic``'s schema (2-space indent, trailing newline)."""
    return json.dumps(document(topic), indent=2, ensure_ascii=False) + "\n"


def export(directory: Path | None = None) -> list[Path]:
    """Write every topic's schema into ``directory`` (default ``topics/schemas``); returns
    the files written."""
    target = directory if directory is not None else topics.TOPICS_DIR / "schemas"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in topics.ALL_TOPICS:
        path = target / f"{topic}.json"
        path.write_text(render(topic), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path | None = None) -> list[str]:
    """Topics whose file in ``directory`` differs from the generated schema (or is
    missing)."""
    target = directory if directory is not None else topics.TOPICS_DIR / "schemas"
    result = []
    for topic in topics.ALL_TOPICS:
        path = target / f"{topic}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(topic):
            result.append(topic)
    return result
