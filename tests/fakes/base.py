"""What every fake HTTP API shares: a log of the requests it received, and faults to inject
(an outage of N requests or for good, 429 with Retry-After, a slow answer, an answer that comes
too late after the request took effect), so tests can make a provider misbehave the way real
ones do."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass
class Received:
    """One request the fake received (body parsed as JSON where it was JSON)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    status: int
    remaining: int | None  # None: until cleared
    retry_after: str | None = None
    body: Any = None
    delay: float = 0.0  # seconds to sleep before answering (a slow or hanging provider)


@dataclass
class LateAnswer:
    """Requests that take effect as usual but whose answer is held back ``delay`` seconds."""

    method: str
    path_fragment: str
    delay: float
    remaining: int


@dataclass
class FakeBase:
    """Fault injection and a request log; subclasses route the API itself."""

    received: list[Received] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _late: list[LateAnswer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- faults ----------------------------------------------------------------------------
    def fail_next(
        self,
        count: int | None = 1,
        *,
        status: int = 503,
        retry_after: str | None = None,
        body: Any = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``count`` requests (None: every request until :meth:`heal`) get ``status``."""
        with self._lock:
            self._faults.append(Fault(status, count, retry_after, body, delay))

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()

    def answer_late(self, method: str, path_fragment: str, *, delay: float, count: int = 1) -> None:
        """The next ``count`` ``method`` requests whose path contains ``path_fragment`` are
        carried out (a run is created) and then answered only after ``delay`` seconds: a
        client that gives up sooner (its timeout) never learns what happened."""
        with self._lock:
            self._late.append(LateAnswer(method, path_fragment, delay, count))

    async def hold_answer(self, method: str, path: str) -> None:
        """Called by subclasses after handling a request: wait if its answer is to be late."""
        delay = 0.0
        with self._lock:
            for late in self._late:
                if late.method == method and late.path_fragment in path:
                    delay = late.delay
                    late.remaining -= 1
                    if late.remaining <= 0:
                        self._late.remove(late)
                    break
        if delay:
            import asyncio

            await asyncio.sleep(delay)

    def requests_to(self, method: str, path_fragment: str) -> list[Received]:
        return [r for r in self.received if r.method == method and path_fragment in r.path]

    # -- plumbing for subclasses ---------------------------------------------------------
    async def record(self, request: Request) -> Received:
        body = await request.body()
        entry = Received(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            time.monotonic(),
        )
        with self._lock:
            self.received.append(entry)
        return entry

    def injected(self) -> Fault | None:
        """The fault to answer this request with, if one is armed (consumes one use)."""
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.pop(0)
            return fault

    @staticmethod
    async def fault_response(fault: Fault) -> Response:
        if fault.delay:
            import asyncio

            await asyncio.sleep(fault.delay)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        body = (
            fault.body if fault.body is not None else {"message": f"injected HTTP {fault.status}"}
        )
        return JSONResponse(body, status_code=fault.status, headers=headers)
