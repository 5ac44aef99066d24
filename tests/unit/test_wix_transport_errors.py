"""Failures without an answer: did the request certainly never leave (sent=False) or not?"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from bulkops.errors import WixConnectionError, WixTimeout
from bulkops.ratelimit import BudgetSnapshot
from bulkops.wix import WixClient, transport_error


def _connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    "exc",
    [
        _connector_error(),
        aiohttp.ConnectionTimeoutError("Connection timeout to host http://127.0.0.1:9"),
    ],
    ids=["connect-refused", "connect-timeout"],
)
def test_failures_before_a_connection_exists_are_not_sent(exc: BaseException) -> None:
    error = transport_error(exc)
    assert type(error) is WixConnectionError
    assert error.sent is False


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
        ConnectionResetError(104, "reset"),
    ],
    ids=["disconnected", "os-error", "payload", "reset-on-write", "bare-os-error"],
)
def test_failures_after_connecting_may_have_been_sent(exc: BaseException) -> None:
    error = transport_error(exc)
    assert type(error) is WixConnectionError
    assert error.sent is True


@pytest.mark.parametrize(
    "exc",
    [TimeoutError(), TimeoutError(), aiohttp.SocketTimeoutError("Timeout on reading")],
    ids=["asyncio", "builtin", "socket-read"],
)
def test_timeouts_after_connecting_are_wix_timeouts_that_may_have_been_sent(
    exc: BaseException,
) -> None:
    error = transport_error(exc)
    assert isinstance(error, WixTimeout)
    assert error.sent is True


def test_transport_error_message_masks_the_key_and_names_the_cause() -> None:
    cause = aiohttp.ClientOSError(1, "echo secret-key-123")
    error = transport_error(cause, secret="secret-key-123")
    assert "secret-key-123" not in str(error)
    assert "ClientOSError" in str(error)


class _NoBudget:
    async def acquire(self) -> None:
        raise AssertionError("no request expected")

    def on_response(self, status: int | None, retry_after: float | None) -> None:
        raise AssertionError("no request expected")

    def snapshot(self) -> BudgetSnapshot:
        return BudgetSnapshot(1.0, 1.0, 0.0, 0, 0, None)


def test_client_repr_shows_where_it_talks_but_never_the_key() -> None:
    client = WixClient(base_url="https://www.wixapis.com/", api_key="secret-key-123",
                       account_id="acc-1", budget=_NoBudget(), timeout=5)
    assert "secret-key-123" not in repr(client) + str(client)
    assert "https://www.wixapis.com" in repr(client) and "acc-1" in repr(client)
