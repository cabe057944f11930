"""Structured JSON logging for every pacer-stream process.

Why: logs are shipped to a log store and queried by field (``event``, ``level``,
``logger``, ``campaign_id``...), so each line is one JSON object with an ISO-8601 UTC
timestamp. Libraries we do not control (faust, aiokafka, mode, redis) log through the
stdlib ``logging`` module; their records are routed through the same structlog
processors, so a worker's output is uniformly JSON instead of a mix of formats.

Usage::

    from pacer_stream.observability.logging import configure_logging, get_logger

    configure_logging(settings.log_level)
    log = get_logger(__name__)
    log.info("partitions_assigned", count=4)

faust's worker installs its own log handlers when it starts; the worker should pass
``loghandlers=[]`` / call :func:`configure_logging` after the app is created (it is
idempotent: calling it again replaces only the handler it installed).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "get_logger"]

_HANDLER_NAME = "pacer-stream-json"


def _drop_formatter_leftovers(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop attributes another handler's formatter left on a stdlib record.

    When a record also goes through a plain ``logging.Formatter`` (pytest's capture, a
    file handler), it gains ``message``/``asctime`` attributes that ``ExtraAdder`` would
    otherwise copy next to ``event`` and ``timestamp``.
    """
    event.pop("message", None)
    event.pop("asctime", None)
    return event


def _shared_processors() -> list[Any]:
    """Processors applied to both structlog and stdlib records, in order."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(level: str | int = "INFO", *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines handler at ``level``.

    ``level`` is a name (``"DEBUG"``, ``"info"``) or a ``logging`` constant; ``stream``
    defaults to ``sys.stderr`` (tests pass a ``StringIO``). Calling it again reconfigures
    cleanly, which is what tests and the CLI need.
    """
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {level!r}")
        level = numeric

    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging() (tests, CLI) must take effect on
        # loggers created earlier at import time.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_formatter_leftovers],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Unknown objects (Decimal, datetime, enums) are logged as their str().
            structlog.processors.JSONRenderer(default=str, separators=(",", ":")),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in list(root.handlers):
        # Replace our previous handler and any plain console handler (basicConfig,
        # faust/mode defaults) so every console line is JSON; keep the rest (files,
        # pytest's capture handler, which writes to its own buffer).
        console = isinstance(old, logging.StreamHandler) and getattr(old, "stream", None) in (
            sys.stderr,
            sys.stdout,
        )
        if old.get_name() == _HANDLER_NAME or console:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger bound to the stdlib logger ``name``."""
    return structlog.stdlib.get_logger(name)
