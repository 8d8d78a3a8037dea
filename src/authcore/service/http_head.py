"""Bounded request heads for the servers authcore starts (uvicorn with httptools).

httptools has no limit on a request head's size and uvicorn none on the time to receive it:
two connections sending 64 MiB of unfinished header lines took ``authcore serve`` from 38 to
169 MiB RSS, and connections that sent nothing stayed open for good (issue 26, finding 1).
:class:`HeadBoundedProtocol` keeps the fast parser and adds both bounds:

- **size**: a head (request line, header names and values) larger than
  :attr:`HeadLimits.max_bytes` is answered ``431`` (problem+json) and the connection closed.
  The parser's own callbacks count what it has parsed exactly; the bytes of a head still
  arriving are counted as they are read, so an unfinished head is held to the bound plus at most
  one read (asyncio reads 256 KiB at a time).
- **time**: a head must be complete :attr:`HeadLimits.timeout` seconds after the connection
  opens or after its first byte arrives (whichever applies); otherwise the connection is closed.
  Between requests uvicorn's keep-alive timeout applies, as before.

What happens once a head is complete (pipelining, keep-alive, bodies) is uvicorn's own.
"""

from __future__ import annotations

import json
from asyncio import TimerHandle, Transport
from typing import Any, Final

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from authcore.service.head_limits import HeadLimits

__all__ = ["HeadBoundedProtocol", "ServerConfig"]

# What a head costs beyond the names and values the parser reports: the method, " ", " HTTP/1.1"
# and CRLF of the request line; ": " and CRLF per header.
_REQUEST_LINE_OVERHEAD: Final = 16
_HEADER_OVERHEAD: Final = 4


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, serving HTTP/1.1 with :class:`HeadBoundedProtocol`.

    A class of its own (not an attribute set on a ``uvicorn.Config``) so that the bounds travel
    with the configuration to the worker processes of ``authcore serve --workers``.
    """

    def __init__(self, app: Any, *, head_limits: HeadLimits | None = None, **options: Any) -> None:
        super().__init__(app, http=HeadBoundedProtocol, **options)
        self.head_limits = head_limits if head_limits is not None else HeadLimits()


class _HeadTooLargeError(Exception):
    """Raised from a parser callback to stop parsing a head over the bound."""


def _head_too_large_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    code = "request_head_too_large"
    body = json.dumps(
        {
            "type": f"urn:authcore:problem:{code}",
            "title": "Request header fields too large.",
            "status": 431,
            "code": code,
        },
        separators=(",", ":"),
    ).encode()
    lines = [b"HTTP/1.1 431 Request Header Fields Too Large"]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/problem+json",
        b"content-length: " + str(len(body)).encode(),
        b"cache-control: no-store",
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class HeadBoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on a request head's size and arrival time.

    Reads its bounds from :class:`ServerConfig` (the defaults with any other configuration).
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = getattr(config, "head_limits", None)
        self.head_limits: HeadLimits = limits if isinstance(limits, HeadLimits) else HeadLimits()
        # Between a request's end (or the connection's start) and its head's end.
        self._reading_head = True
        # Bytes read while a head was unfinished; what the parser reported of it (exact).
        self._head_received = 0
        self._head_parsed = 0
        self._head_refused = False
        self._head_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override] # uvicorn's
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # (Nothing arrives after a refusal: closing the transport stops reading.)
        self._unset_keepalive_if_required()
        head_was_arriving = self._reading_head
        if head_was_arriving:
            self._head_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._head_refused:
                self._refuse_head()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if not self._reading_head:
            return
        if self._head_received > self.head_limits.max_bytes:
            self._refuse_head()
        elif data and (head_was_arriving or self._head_parsed):
            # Bytes of a head arrived (not just the end of the previous request's body: the
            # app may take its time to answer that one): the head has its time from now.
            self._arm_head_timer()

    # Parser callbacks: count what the parser reports, refuse as soon as it is too much.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed = _REQUEST_LINE_OVERHEAD

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + _HEADER_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_received = self._head_parsed = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._head_received = 0

    def _count(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.head_limits.max_bytes:
            self._head_refused = True
            raise _HeadTooLargeError

    def _refuse_head(self) -> None:
        self._head_refused = True
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_head_too_large_response(self.server_state.default_headers))
            self.transport.close()

    # The time bound.

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_limits.timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self.transport.close()
