"""A bare ASGI app (no framework) that reads the request body and answers 200 ``OK``.

It is the baseline of ``hook_bench.py``: run under uvicorn with exactly the server settings
``puerta serve`` uses (see ``src/puerta/cli/main.py``), it measures what uvicorn, the event loop
and the HTTP parser cost on this machine, so the Puerta/bare ratio isolates what Puerta itself
(FastAPI routing, payload parsing, policy, SQLite transaction, audit row, log line) adds.

Run: ``python bench/bare_app.py --port 8081``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b"OK"
_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_BODY)).encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request 200 ``OK`` after reading its whole body (as Puerta does)."""
    if scope["type"] == "lifespan":
        # Speak the lifespan protocol like Starlette does, so uvicorn starts the same way.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def main() -> None:
    """Serve :func:`app` with the same ``uvicorn.run`` arguments as ``puerta serve``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    # Mirror of puerta.cli.main.serve: one process, default loop/http (uvloop/httptools when
    # installed), no access log, no Server header, log level "info".
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="info",
        server_header=False,
    )


if __name__ == "__main__":
    main()
