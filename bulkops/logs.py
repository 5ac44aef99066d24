"""Structured logging: stable event names as messages, fields as key=value, secrets redacted.

Only the CLI configures logging; modules just `logging.getLogger(__name__)` and log an event
name with `extra={...}` fields.
"""

from __future__ import annotations

import logging
from typing import TextIO

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(
            f"{name}={value!r}" if isinstance(value, str) and " " in value else f"{name}={value}"
            for name, value in vars(record).items()
            if name not in _STANDARD
        )
        return f"{base} {fields}" if fields else base


class RedactFilter(logging.Filter):
    """Defence in depth: no log line may carry a secret, whatever a library puts in it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if any(s in text for s in self._secrets):
            for secret in self._secrets:
                text = text.replace(secret, "[redacted]")
            record.msg, record.args = text, None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                for secret in self._secrets:
                    value = value.replace(secret, "[redacted]")
                setattr(record, name, value)
        return True


def configure(level: int, stream: TextIO, secrets: list[str]) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log and client internals are noise at INFO.
    logging.getLogger("aiohttp").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
