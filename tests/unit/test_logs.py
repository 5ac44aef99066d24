"""bulkops.logs: JSON lines, secret redaction in both formats, per-tree verbosity."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from bulkops import logs

SECRET = "sk_live_TOPSECRET123"
THIRD_PARTY = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.pool",
               "aiosqlite", "asyncio", "asyncpg", "aiohttp", "aiohttp.client", "urllib3",
               "alembic", "somelib")
OURS = ("bulkops", "bulkops.engine", "bulkops.runner", "bulkops.wix")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure() rewires the root logger; put it (and the loggers used here) back.

    Loggers start each test pristine (no level, enabled, propagating): another test in the
    same process may have run `logging.config.fileConfig` (alembic's command line does), which
    disables existing loggers and sets levels of its own.
    """
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in (*OURS, *THIRD_PARTY)]
    saved_handlers = root.handlers[:]
    saved_root_level = root.level
    saved = [(logger, logger.level, logger.disabled, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
        logger.propagate = True
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_root_level)
        for logger, level, disabled, propagate in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            logger.propagate = propagate


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def _boom(message: str) -> None:
    raise RuntimeError(message)


# --- JSON format -----------------------------------------------------------------------------


def test_json_line_carries_core_fields_and_extras() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    logging.getLogger("bulkops.engine").info("op_sent", extra={"op": "site-1", "attempt": 2})

    (line,) = _json_lines(stream)
    assert line["event"] == "op_sent"
    assert line["level"] == "info"
    assert line["logger"] == "bulkops.engine"
    assert line["op"] == "site-1"
    assert line["attempt"] == 2
    assert isinstance(line["ts"], str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_json_one_object_per_event() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    log = logging.getLogger("bulkops.engine")
    log.info("op_succeeded", extra={"op": "a", "attempt": 1})
    log.info("op_failed", extra={"op": "b", "code": "NOPE", "status": 409})
    log.warning("breaker_tripped", extra={"reason": "too many\nfailures"})

    lines = _json_lines(stream)
    assert [line["event"] for line in lines] == ["op_succeeded", "op_failed", "breaker_tripped"]
    assert lines[1]["status"] == 409
    assert lines[2]["level"] == "warning"
    assert lines[2]["reason"] == "too many\nfailures"


def test_json_turns_unserialisable_extras_into_strings() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a-thing"

    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    logging.getLogger("bulkops.engine").info(
        "op_retry", extra={"thing": Thing(), "delay": float("nan"), "ok": [1, "x"]})

    (line,) = _json_lines(stream)
    assert line["thing"] == "a-thing"
    assert line["delay"] == "nan"
    assert line["ok"] == [1, "x"]


def test_json_exception_is_one_error_string_on_one_line() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    try:
        _boom("kaput")
    except RuntimeError:
        logging.getLogger("bulkops.runner").exception("lease_renew_failed", extra={"job": "j1"})

    (line,) = _json_lines(stream)  # the traceback did not spill onto lines of its own
    assert line["level"] == "error"
    assert line["job"] == "j1"
    assert isinstance(line["error"], str)
    assert "Traceback" in line["error"]
    assert "RuntimeError: kaput" in line["error"]


def test_json_error_extra_and_exception_share_the_error_field() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    try:
        _boom("kaput")
    except RuntimeError:
        logging.getLogger("bulkops.engine").warning(
            "op_check_failed", extra={"op": "a", "error": "check said no"}, exc_info=True)

    (line,) = _json_lines(stream)
    assert isinstance(line["error"], str)
    assert line["error"].startswith("check said no\n")
    assert "RuntimeError: kaput" in line["error"]


def test_json_extra_named_like_a_core_field_does_not_replace_it() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [], fmt="json")
    logging.getLogger("bulkops.engine").info("op_sent", extra={"event": "x", "level": 3})

    (line,) = _json_lines(stream)
    assert line["event"] == "op_sent"
    assert line["level"] == "info"
    assert line["extra_event"] == "x"
    assert line["extra_level"] == 3


def test_text_format_is_key_value() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [])
    logging.getLogger("bulkops.engine").info(
        "op_failed", extra={"op": "a", "code": "NOPE", "status": 409, "why": "two words"})

    out = stream.getvalue()
    assert " INFO bulkops.engine op_failed " in out
    assert "op=a code=NOPE status=409 why='two words'" in out


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        logs.configure(logging.INFO, io.StringIO(), [], fmt="yaml")


# --- redaction, both formats -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secret_in_message_is_redacted(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [SECRET], fmt=fmt)
    logging.getLogger("bulkops.wix").info("calling with key %s", SECRET)
    logging.getLogger("somelib").warning(f"header Authorization: {SECRET}")

    out = stream.getvalue()
    assert SECRET not in out
    assert out.count("[redacted]") == 2
    if fmt == "json":
        events = [line["event"] for line in _json_lines(stream)]
        assert events == ["calling with key [redacted]", "header Authorization: [redacted]"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secret_in_extra_is_redacted(fmt: str) -> None:
    class Leaky:
        def __str__(self) -> str:
            return f"Leaky({SECRET})"

    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [SECRET], fmt=fmt)
    logging.getLogger("bulkops.wix").info("wix_no_answer", extra={
        "error": f"401 for key {SECRET}",
        "headers": {"Authorization": SECRET, "n": 1},
        "tokens": [SECRET, "ok"],
        "obj": Leaky(),
        "count": 3,
    })

    out = stream.getvalue()
    assert SECRET not in out
    if fmt == "json":
        (line,) = _json_lines(stream)
        assert line["error"] == "401 for key [redacted]"
        assert line["headers"] == {"Authorization": "[redacted]", "n": 1}
        assert line["tokens"] == ["[redacted]", "ok"]
        assert line["obj"] == "Leaky([redacted])"
        assert line["count"] == 3
    else:
        assert "error='401 for key [redacted]'" in out
        assert "count=3" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secret_in_exception_is_redacted(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [SECRET], fmt=fmt)
    try:
        _boom(f"auth failed for {SECRET}")
    except RuntimeError:
        logging.getLogger("bulkops.engine").exception("op_failed", extra={"op": "a"})

    out = stream.getvalue()
    assert SECRET not in out
    assert "RuntimeError: auth failed for [redacted]" in out
    if fmt == "json":
        (line,) = _json_lines(stream)
        assert isinstance(line["error"], str)
        assert "auth failed for [redacted]" in line["error"]


def test_secret_in_json_escaped_extra_is_redacted() -> None:
    secret = 'k"ey\\with/escapes'
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [secret], fmt="json")
    logging.getLogger("bulkops.wix").info("wix_answer", extra={"body": {"key": secret}})

    (line,) = _json_lines(stream)
    assert secret not in json.dumps(line)
    assert line["body"] == {"key": "[redacted]"}


def test_unrelated_extras_are_left_untouched_when_redacting() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, stream, [SECRET], fmt="text")
    logging.getLogger("bulkops.engine").info("op_sent", extra={"pair": (1, 2), "ids": {"a"}})

    out = stream.getvalue()
    assert "pair=(1, 2)" in out
    assert "ids={'a'}" in out


# --- verbosity: bulkops tree only ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_applies_to_bulkops_only(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure(logging.DEBUG, stream, [], fmt=fmt)
    logging.getLogger("sqlalchemy.engine").debug("sqlalchemy_chatter")
    logging.getLogger("sqlalchemy.engine.Engine").info("sqlalchemy_info_chatter")
    logging.getLogger("aiosqlite").debug("aiosqlite_chatter")
    logging.getLogger("asyncio").debug("asyncio_chatter")
    logging.getLogger("bulkops.engine").debug("bulkops_debug_event")

    out = stream.getvalue()
    assert "bulkops_debug_event" in out
    for noise in ("sqlalchemy_chatter", "sqlalchemy_info_chatter", "aiosqlite_chatter",
                  "asyncio_chatter"):
        assert noise not in out


def test_third_party_warnings_still_show() -> None:
    stream = io.StringIO()
    logs.configure(logging.DEBUG, stream, [], fmt="json")
    logging.getLogger("aiohttp.client").warning("aiohttp_warning")
    logging.getLogger("sqlalchemy.pool").error("pool_error")

    lines = _json_lines(stream)
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("aiohttp.client", "aiohttp_warning"), ("sqlalchemy.pool", "pool_error")]


def test_levels_after_configure() -> None:
    logs.configure(logging.DEBUG, io.StringIO(), [])
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("bulkops").level == logging.DEBUG
    assert logging.getLogger("bulkops.engine").getEffectiveLevel() == logging.DEBUG
    for name in THIRD_PARTY:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    for name in OURS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.DEBUG, name


def test_warning_level_hides_bulkops_info() -> None:
    stream = io.StringIO()
    logs.configure(logging.WARNING, stream, [])
    logging.getLogger("bulkops.engine").info("op_sent")
    logging.getLogger("bulkops.engine").warning("breaker_tripped")

    out = stream.getvalue()
    assert "op_sent" not in out
    assert "breaker_tripped" in out
