"""The HTTP server's connections: a deadline on receiving a request's headers.

Uvicorn waits for headers without limit: its keep-alive timeout covers only the idle time
between two requests, and any byte received resets it. A client that opens a connection and
sends nothing, or trickles a request's headers a byte at a time, holds a socket and its
buffers for as long as it likes; a few thousand of them exhaust the process's file
descriptors (slowloris). Middleware cannot help, since the app only sees a request once its
headers are complete. So the protocol itself gets the deadline: ``header_timeout_s`` from a
connection's opening, or from the first byte of each later request on it, to the end of
that request's headers; then it answers 408 and closes. Headers over ``MAX_HEADER_BYTES``
are answered 431 and the connection closed, since httptools keeps them all in memory. The
body has its own deadline in the app (app/api/admission.py), where a 408 can name what was
late.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings

log = logging.getLogger(__name__)

# Request line and headers together: nginx's default buffers hold 32 KiB, browsers send a few.
MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\n"
    b"connection: close\r\n\r\n"
    b"request headers over 64 KiB sent"
)
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 36\r\n"
    b"connection: close\r\n\r\n"
    b"request headers not received in time"
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol (its default where httptools is installed, as the
    ``standard`` extra does) with a deadline on each request's headers."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is held to the deadline too

    def data_received(self, data: bytes) -> None:
        pending = self._header_deadline
        super().data_received(data)
        # The same deadline still armed: all these bytes went to headers not yet complete.
        # httptools keeps every header uvicorn is handed, without a cap: bound them, as the
        # deadline bounds time.
        if pending is not None and self._header_deadline is pending:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._disarm()
                self.transport.write(_TOO_LARGE_ANSWER)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expired(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request arriving behind one still being answered: that answer
            # must not be cut off; the next request's deadline starts when it is sent.
            self._arm()
            return
        _note_closed()
        self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """What to pass uvicorn as ``http``: the protocol class with this service's deadline.

    A ``functools.partial`` of a module-level class: uvicorn only calls it, and it pickles
    by reference for worker processes.
    """
    made = functools.partial(HeaderDeadlineProtocol, header_timeout_s=settings.header_timeout_s)
    return cast("type[asyncio.Protocol]", made)


# One log line per minute at most, with the count since the last one: a slowloris sends
# thousands of these, and the log must stay readable.
_closed = 0
_last_note = float("-inf")
_NOTE_EVERY_S = 60.0


def _note_closed() -> None:
    global _closed, _last_note
    _closed += 1
    now = time.monotonic()
    if now - _last_note >= _NOTE_EVERY_S:
        log.warning(
            "closed %d connection(s) that did not send a request's headers in time", _closed
        )
        _closed, _last_note = 0, now
