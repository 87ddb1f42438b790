"""structlog set-up: JSON lines for machines, or readable console lines for people.

Nothing Puerta logs carries a secret: hook payloads are logged redacted, URLs without their
query string, and tokens never.
"""

from __future__ import annotations

import logging

import structlog

from puerta.settings import LogFormat


def configure_logging(level: str = "info", fmt: LogFormat = "json") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(),  # the current sys.stdout at each call
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def quiet_logging() -> None:
    """For CLI commands that run Puerta in-process: only errors reach the terminal."""
    configure_logging("error", "console")
