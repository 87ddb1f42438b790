"""Outbound CI HTTP on threads of its own, off the event loop that answers Flagger.

Most of what the CI runner does on the event loop is the HTTP exchange itself: `py-spy` of
the runner alone put 81% of its event-loop time in httpx and httpcore building, sending and
reading requests. Each of those steps runs between two awaits of the loop that answers
Flagger, so a hook call that arrives meanwhile waits behind it. (The larger share of the
runner's cost to hook calls turned out to be its writes sharing SQLite batches with them,
which ``store/db.py`` now keeps apart; an event-loop lag probe could not see this part in
isolation. bench/README.md, "Callers' writes first".)

:class:`ThreadedTransport` keeps the providers' async API but sends each request with
httpx's synchronous transport on a small thread pool, and reads the whole response there
(CI answers are small JSON documents). The event loop only hands the request over and
receives a finished :class:`httpx.Response`, whose body is already in memory. The sync
transport releases the GIL while it waits on the socket, so the thread costs the loop
nothing while the CI provider thinks.

The request's timeouts travel in ``request.extensions`` as before; httpx's exceptions
(timeouts, connection errors) are raised from the thread unchanged, so
``puerta.ci.http.request`` classifies them as it always did.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

#: threads per transport: the CI runner sends at most ``concurrency`` (8) requests at once
DEFAULT_THREADS = 8
#: response extensions that stay meaningful once the exchange is over (not the connection's
#: ``network_stream``, which is returned to the pool when the thread finishes)
_KEPT_EXTENSIONS = ("http_version", "reason_phrase")


class ThreadedTransport(httpx.AsyncBaseTransport):
    """An async transport that performs each exchange on a worker thread."""

    def __init__(
        self, inner: httpx.BaseTransport | None = None, *, threads: int = DEFAULT_THREADS
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="puerta-ci-http")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # the body as bytes (it already is for JSON and form bodies): after this, the
        # request's stream is a ByteStream, which the sync transport can send
        await request.aread()
        loop = asyncio.get_running_loop()
        status, headers, content, extensions = await loop.run_in_executor(
            self._threads, self._exchange, request
        )
        return httpx.Response(status, headers=headers, content=content, extensions=extensions)

    def _exchange(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, dict[str, Any]]:
        """Send ``request`` and read its whole response (on a worker thread)."""
        response = self._inner.handle_request(request)
        try:
            content = response.read()
        finally:
            response.close()
        extensions = {
            key: value for key, value in response.extensions.items() if key in _KEPT_EXTENSIONS
        }
        return response.status_code, response.headers.raw, content, extensions

    async def aclose(self) -> None:
        # an exchange still running (shutdown in the middle of a poll) ends with the
        # connection pool's close; its caller was cancelled already
        self._threads.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._inner.close)
