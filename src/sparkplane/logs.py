"""Structured logging: structlog for sparkplane's own events (stable `event`
key, an `action` field), with the standard library's loggers (uvicorn,
alembic) rendered the same way."""

from __future__ import annotations

import logging
import sys

import structlog

from sparkplane.security.keys import redact


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up logging for the process (the CLI calls this once per command)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_keys,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Migration chatter on every start helps nobody; and database drivers log query
    # parameters (device API keys among them) at debug level: never let them.
    for name in ("alembic", "aiosqlite", "asyncpg", "sqlalchemy", "multipart"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _redact_keys(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Mask anything shaped like a sparkplane key, wherever it slipped in."""
    for name, value in event.items():
        if isinstance(value, str) and "sp-" in value:
            event[name] = redact(value)
    return event
