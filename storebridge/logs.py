"""Structured logs (structlog): JSON lines by default, with every configured secret masked.

Context bound with structlog.contextvars (the worker binds `request_id` while it processes a webhook
and while it hands that webhook's events on) is merged into every line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]


def _redactor(secrets: list[str]) -> Any:
    def redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        # Belt and braces: secrets are SecretStr and never logged on purpose; this catches accidents.
        for key, value in event_dict.items():
            if isinstance(value, str):
                for secret in secrets:
                    if secret in value:
                        value = value.replace(secret, "**********")
                event_dict[key] = value
        return event_dict

    return redact


def configure_logging(
    level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Configure structlog; lines go to `stream` (default: stderr, as looked up now)."""
    masked = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redactor(masked),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
