"""Structured logging: stable event names as messages, fields as key=value, secrets redacted.

Only the CLI configures logging; modules just `logging.getLogger(__name__)` and log an event
name with `extra={...}` fields.

Two formats, chosen by `configure(..., fmt=...)`:

* ``text`` (default): ``<asctime> <LEVEL> <logger> <event> key=value ...``; a traceback, if
  any, follows on its own lines.
* ``json``: one JSON object per event, always on one line::

      {"ts": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "bulkops.engine",
       "event": "op_sent", "op": "...", "attempt": 1}

  ``ts`` is UTC with milliseconds; ``level`` is the lower-cased level name; ``event`` is the
  message; every `extra` field is its own key (values JSON cannot hold become strings; an
  extra named like a core field is written as ``extra_<name>``). An exception goes in
  ``error`` as one string (after any ``error`` extra), a stack in ``stack``.

Verbosity applies to bulkops' own loggers only: the root logger (and so every library:
sqlalchemy, aiosqlite, asyncio, aiohttp, alembic, ...) stays at WARNING.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TextIO

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# Keys the JSON format owns; an `extra` field of the same name is renamed `extra_<name>`.
_JSON_CORE = ("ts", "level", "logger", "event")

_REDACTED = "[redacted]"
_MAX_DEPTH = 8  # how deep the redactor walks into containers before treating them as text

# Only for rendering a traceback before redaction; both formatters use the standard rendering.
_EXC_FORMATTER = logging.Formatter()

FORMATS = ("text", "json")


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {name: value for name, value in vars(record).items() if name not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(
            f"{name}={value!r}" if isinstance(value, str) and " " in value else f"{name}={value}"
            for name, value in _extras(record).items()
        )
        return f"{base} {fields}" if fields else base


def _jsonable(value: object) -> object:
    """`value` itself if JSON can carry it faithfully, else its text."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # not serialisable, NaN/inf, circular
        try:
            return str(value)
        except Exception:  # a log line must never fail on a field
            return f"<unprintable {type(value).__name__}>"
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ts, level, logger, event, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for name, value in _extras(record).items():
            payload[f"extra_{name}" if name in _JSON_CORE else name] = _jsonable(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            error = payload.get("error")
            payload["error"] = f"{error}\n{record.exc_text}" if error else record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines, so a traceback stays inside its one line.
        return json.dumps(payload, default=str)


class RedactFilter(logging.Filter):
    """Defence in depth: no log line may carry a secret, whatever a library puts in it.

    Redacts the message, every `extra` field (strings, strings inside containers, and the text
    of any other object), the traceback and the stack, before any formatter sees the record.
    """

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text

    def _leaks(self, text: str) -> bool:
        return any(s in text for s in self._secrets)

    def _redact(self, value: object, depth: int = 0) -> object:
        """`value` with secrets replaced; the very same object when it carried none."""
        if isinstance(value, str):
            return self._scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if depth < _MAX_DEPTH:
            if isinstance(value, dict):
                pairs = [(self._redact(k, depth + 1), self._redact(v, depth + 1))
                         for k, v in value.items()]
                same = all(nk is k and nv is v
                           for (nk, nv), (k, v) in zip(pairs, value.items(), strict=True))
                return value if same else dict(pairs)
            if isinstance(value, list | tuple | set | frozenset):
                items = [self._redact(v, depth + 1) for v in value]
                if all(n is o for n, o in zip(items, value, strict=True)):
                    return value
                return items if isinstance(value, list) else type(value)(items)
        try:
            text = str(value)
        except Exception:  # unprintable: the formatters cannot show it either
            return value
        return self._scrub(text) if self._leaks(text) else value

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format call: the handler reports it, without the secret
            record.msg = self._scrub(str(record.msg))
            record.args = self._redact(record.args)  # type: ignore[assignment]
        else:
            if self._leaks(text):
                record.msg, record.args = self._scrub(text), None
        for name, value in _extras(record).items():
            redacted = self._redact(value)
            if redacted is not value:
                setattr(record, name, redacted)
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self._scrub(record.stack_info)
        return True


def configure(level: int, stream: TextIO, secrets: list[str], *, fmt: str = "text") -> None:
    """Send every log record to `stream` in `fmt` ("text" or "json"), secrets redacted.

    `level` applies to the `bulkops` logger tree only; every other logger (database drivers,
    asyncio, aiohttp, alembic, ...) stays at WARNING, so their warnings still show but their
    debug chatter never floods the output.
    """
    formatter: logging.Formatter
    if fmt == "text":
        formatter = KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("bulkops").setLevel(level)
