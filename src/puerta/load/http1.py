"""A minimal HTTP/1.1 keep-alive client: one request at a time per connection, body discarded.

Why not httpx (which Puerta already uses for everything else)? Measured on the 2-core machine
against nginx on loopback, in a closed loop: httpx 0.28 under uvloop answered about 1,000
requests/s on one connection and *fewer* with more (about 650/s with 10 connections, 190/s with
50: its connection pool gets slower as it grows), where Debian's ``hey`` reached about 22,000/s
at 50 connections. The load gate must keep a canary busy at 1,000 requests/s from inside Puerta's
own process without eating its event loop, and the benchmark asks for at least half of ``hey``'s
ceiling. A load generator needs very little of HTTP: it sends the same pre-built request bytes
over and over, and from the answer it needs only the status code and where the answer ends
(``Content-Length``, chunked encoding or the connection closing), plus whether the connection
may be reused. This module does exactly that on ``asyncio.Protocol`` callbacks (no streams, no
per-request task), so a request costs a few microseconds of Python.

What it does not do (none of it is needed to generate load): redirects, cookies, decompression,
proxies, HTTP/2, pipelining, ``Expect: 100-continue``, response bodies (they are counted and
dropped).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Final, cast

__all__ = ["ConnectError", "Connection", "ProtocolError", "ReadError", "ResponseParser", "connect"]

#: A response head larger than this is not a sane HTTP answer; treat it as a protocol error.
MAX_HEAD_BYTES: Final = 64 * 1024
#: Same for one chunk-size or trailer line.
MAX_LINE_BYTES: Final = 8 * 1024

_CRLF: Final = b"\r\n"
_END_OF_HEAD: Final = b"\r\n\r\n"

# Parser states.
_HEAD: Final = 0
_LENGTH: Final = 1
_CHUNK_SIZE: Final = 2
_CHUNK_DATA: Final = 3
_CHUNK_CRLF: Final = 4
_TRAILERS: Final = 5
_UNTIL_CLOSE: Final = 6
_DONE: Final = 7


class ProtocolError(Exception):
    """The target's answer is not valid HTTP/1.x (counted as a ``read`` error)."""


class ReadError(Exception):
    """The connection broke before the answer was complete (counted as a ``read`` error)."""

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        #: Whether any byte of the answer had arrived. A reused keep-alive connection that the
        #: server closed while idle fails with ``received=False``; that request may be retried.
        self.received = received


class ConnectError(Exception):
    """No connection could be opened: refused, unreachable, DNS or TLS failure."""


class ResponseParser:
    """Incremental parser for one HTTP/1.x response at a time; the body is counted, not kept.

    ``feed`` returns True once the response is complete; then ``status`` and ``keep_alive`` are
    set. Bytes after the end of the response (the server answering what was never asked, since
    this client does not pipeline) make ``keep_alive`` False so the connection is dropped.
    """

    __slots__ = (
        "_buf",
        "_head_request",
        "_remaining",
        "_state",
        "keep_alive",
        "received",
        "status",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._head_request = False
        self.status = 0
        self.keep_alive = True
        self.received = False

    def reset(self, *, head_request: bool = False) -> None:
        """Get ready for the answer to the next request (``HEAD`` answers have no body)."""
        self._buf.clear()
        self._state = _HEAD
        self._remaining = 0
        self._head_request = head_request
        self.status = 0
        self.keep_alive = True
        self.received = False

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bool:
        """Consume bytes from the socket; True when the response is complete."""
        if data:
            self.received = True
        if self._state == _DONE:
            if data:
                self.keep_alive = False
            return True
        buf = self._buf
        buf += data
        pos = 0
        state = self._state
        while True:
            if state == _HEAD:
                end = buf.find(_END_OF_HEAD, pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEAD_BYTES:
                        raise ProtocolError("response head too large")
                    break
                state = self._parse_head(bytes(buf[pos:end]))
                pos = end + 4
            elif state == _LENGTH:
                take = min(self._remaining, len(buf) - pos)
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                state = _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(_CRLF, pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE_BYTES:
                        raise ProtocolError("chunk size line too long")
                    break
                size_text = bytes(buf[pos:end]).split(b";", 1)[0].strip()
                pos = end + 2
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0 or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}")
                self._remaining = size
                state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_DATA:
                take = min(self._remaining, len(buf) - pos)
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) - pos < 2:
                    break
                if buf[pos : pos + 2] != _CRLF:
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                state = _CHUNK_SIZE
            elif state == _TRAILERS:
                end = buf.find(_CRLF, pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE_BYTES:
                        raise ProtocolError("trailer line too long")
                    break
                line_empty = end == pos
                pos = end + 2
                if line_empty:
                    state = _DONE
            elif state == _UNTIL_CLOSE:
                pos = len(buf)
                break
            else:  # _DONE
                if pos < len(buf):
                    self.keep_alive = False
                pos = len(buf)
                break
        del buf[:pos]
        self._state = state
        return state == _DONE

    def feed_eof(self) -> bool:
        """The server closed the connection: True if that completes the response."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            self.keep_alive = False
        return self._state == _DONE

    def _parse_head(self, head: bytes) -> int:
        """Parse a status line and headers; return the state that reads the body."""
        lines = head.split(_CRLF)
        line = lines[0]
        if len(line) < 12 or not line.startswith(b"HTTP/1.") or line[8:9] != b" ":
            raise ProtocolError(f"bad status line {line[:40]!r}")
        code = line[9:12]
        if not code.isdigit() or (len(line) > 12 and line[12:13] != b" "):
            raise ProtocolError(f"bad status line {line[:40]!r}")
        status = int(code)
        keep_alive = line[7:8] == b"1"  # HTTP/1.1 keeps the connection unless told otherwise
        length: int | None = None
        chunked = False
        other_coding = False
        for header in lines[1:]:
            name, colon, value = header.partition(b":")
            if not colon or not name or name[-1:] in (b" ", b"\t"):
                raise ProtocolError(f"bad header line {header[:40]!r}")
            key = name.lower()
            if key == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise ProtocolError(f"bad Content-Length {value[:20]!r}")
                new_length = int(value)
                if length is not None and new_length != length:
                    raise ProtocolError("conflicting Content-Length headers")
                length = new_length
            elif key == b"transfer-encoding":
                codings = [c.strip() for c in value.lower().split(b",")]
                chunked = codings[-1] == b"chunked"
                other_coding = not chunked
            elif key == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return _HEAD  # an interim answer (103 Early Hints...): the real one follows
        self.status = status
        self.keep_alive = keep_alive
        if self._head_request or status in (204, 304):
            return _DONE
        if chunked:
            return _CHUNK_SIZE
        if other_coding or length is None:
            self.keep_alive = False  # the body ends when the server closes the connection
            return _UNTIL_CLOSE
        self._remaining = length
        return _LENGTH if length else _DONE


class Connection(asyncio.Protocol):
    """One client connection; ``request`` sends pre-built bytes, the future gives the status.

    Everything happens in the protocol callbacks: ``data_received`` feeds the parser and
    resolves the waiting future when the answer is complete. The caller owns the timeout (see
    ``expire``), so a request costs one future and no task.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        self._waiter: asyncio.Future[int] | None = None
        #: True once the connection is closed or closing: do not send on it again.
        self.closed = False
        #: Answers received on this connection (0: brand new, so a failure is not staleness).
        self.answers = 0

    # ---- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport (uvloop's does not subclass asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None:  # nothing asked, something answered: the connection is unusable
            self.close()
            return
        try:
            done = self._parser.feed(data)
        except ProtocolError as exc:
            self._waiter = None
            self.close()
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if done:
            self._waiter = None
            self.answers += 1
            if not self._parser.keep_alive:
                self.close()
            if not waiter.done():
                waiter.set_result(self._parser.status)

    def eof_received(self) -> bool:
        self.closed = True
        return False  # let the transport close; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if waiter.done():
            return
        if self._parser.feed_eof():
            self.answers += 1
            waiter.set_result(self._parser.status)
        else:
            reason = f": {exc}" if exc else ""
            waiter.set_exception(
                ReadError(
                    f"connection closed before the answer ended{reason}",
                    received=self._parser.received,
                )
            )

    # ---- client side --------------------------------------------------------------------

    def request(self, data: bytes, *, head_request: bool = False) -> asyncio.Future[int]:
        """Send one request; the future resolves to the answer's status code."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise ReadError("connection already closed", received=False)
        self._parser.reset(head_request=head_request)
        waiter = self._loop.create_future()
        self._waiter = waiter
        transport.write(data)
        return waiter

    def expire(self) -> None:
        """The caller's deadline passed: fail the pending request with TimeoutError, drop the
        connection (its answer may still arrive and must not be taken for the next one)."""
        waiter = self._waiter
        self._waiter = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no complete answer before the deadline"))

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


class Resolver:
    """Resolves the target's host once and remembers the address that worked.

    A keep-alive load generator connects rarely, but against a server that closes every
    connection it connects for every request, and asyncio would then resolve the name in a
    thread each time. Connecting to a numeric address skips that (asyncio recognises it
    without a look-up). The cache is dropped on any connection failure, so a Service that moved
    is found again.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._addresses: list[str] = []

    async def addresses(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        if not self._addresses:
            infos = await loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
            found: list[str] = []
            for family, _type, _proto, _name, sockaddr in infos:
                address = str(sockaddr[0])
                if family in (socket.AF_INET, socket.AF_INET6) and address not in found:
                    found.append(address)
            self._addresses = found
        return self._addresses

    def worked(self, index: int) -> None:
        """Try the address that worked first next time."""
        if index:
            self._addresses.insert(0, self._addresses.pop(index))

    def forget(self) -> None:
        self._addresses = []


async def connect(
    resolver: Resolver,
    *,
    tls: ssl.SSLContext | None,
    server_hostname: str | None,
) -> Connection:
    """Open a connection (no timeout here: the caller wraps it in the request's deadline).

    Each resolved address is tried in turn (say ``::1`` then ``127.0.0.1`` for ``localhost``).
    Any failure, refused, unreachable, DNS or TLS handshake, is a ``ConnectError``.
    """
    loop = asyncio.get_running_loop()
    try:
        addresses = await resolver.addresses(loop)
    except OSError as exc:
        raise ConnectError(f"cannot resolve {resolver.host!r}: {exc}") from exc
    if not addresses:
        raise ConnectError(f"no IPv4/IPv6 address for {resolver.host!r}")
    last: OSError | None = None
    for index, address in enumerate(addresses):
        try:
            _transport, protocol = await loop.create_connection(
                lambda: Connection(loop),
                address,
                resolver.port,
                ssl=tls,
                server_hostname=server_hostname if tls is not None else None,
            )
        except OSError as exc:  # refused, unreachable, ssl.SSLError...
            last = exc
            continue
        resolver.worked(index)
        return protocol
    resolver.forget()
    raise ConnectError(f"cannot connect to {resolver.host}:{resolver.port}: {last}") from last
