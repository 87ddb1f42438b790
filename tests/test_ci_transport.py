"""The CI providers' HTTP runs on threads of its own, off the event loop that answers Flagger,
and looks to the providers exactly as httpx's async transport did."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from puerta.ci.base import PermanentError, TransientError
from puerta.ci.http import request
from puerta.ci.threaded_transport import ThreadedTransport


async def test_each_exchange_runs_on_a_worker_thread_and_returns_the_whole_answer() -> None:
    seen: list[tuple[int, str, bytes, str | None]] = []

    def answer(req: httpx.Request) -> httpx.Response:
        seen.append((threading.get_ident(), req.method, req.read(), req.headers.get("x-token")))
        return httpx.Response(201, json={"id": 7}, headers={"x-request-id": "r-1"})

    transport = ThreadedTransport(httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://ci.test") as client:
        response = await request(
            client,
            "POST",
            "/api/v2/project/gh/acme/shop/pipeline",
            provider="circleci",
            json={"branch": "main"},
            headers={"X-Token": "secret"},
        )
    assert response.status_code == 201
    assert response.json() == {"id": 7}
    assert response.headers["x-request-id"] == "r-1"
    assert response.reason_phrase == "Created"
    [(thread, method, body, token)] = seen
    assert thread != threading.get_ident()  # not the event loop's thread
    assert (method, json.loads(body), token) == ("POST", {"branch": "main"}, "secret")


async def test_failures_from_the_thread_are_classified_as_before() -> None:
    def answer(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/slow":
            raise httpx.ReadTimeout("timed out", request=req)
        if req.url.path == "/refused":
            raise httpx.ConnectError("connection refused", request=req)
        return httpx.Response(404, json={"message": "Project not found"})

    transport = ThreadedTransport(httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://ci.test") as client:
        with pytest.raises(TransientError, match="circleci: GET /slow timed out"):
            await request(client, "GET", "/slow", provider="circleci")
        with pytest.raises(TransientError, match="failed: ConnectError"):
            await request(client, "GET", "/refused", provider="circleci")
        with pytest.raises(PermanentError, match="HTTP 404: Project not found") as refused:
            await request(client, "GET", "/missing", provider="circleci")
    assert refused.value.status == 404


async def test_requests_at_once_run_side_by_side() -> None:
    """The CI runner sends several requests at once (its ``concurrency``): each waits on its
    provider in a thread of its own, not behind the others."""
    arrived = threading.Barrier(4, timeout=10)

    def answer(req: httpx.Request) -> httpx.Response:
        arrived.wait()  # returns only once all four are in flight together
        return httpx.Response(200, json={"n": req.url.params["n"]})

    transport = ThreadedTransport(httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://ci.test") as client:
        answers = await asyncio.gather(
            *(request(client, "GET", f"/runs?n={n}", provider="gitlab") for n in range(4))
        )
    assert [a.json()["n"] for a in answers] == ["0", "1", "2", "3"]
