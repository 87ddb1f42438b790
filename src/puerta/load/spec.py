"""What load to generate, checked once, and the request bytes built from it once.

The request is the same for every send, so it is encoded a single time: sending then costs one
``transport.write`` of a prepared ``bytes`` object.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LoadSpec", "Target"]

USER_AGENT: Final = "puerta-load/1"
#: An HTTP token (RFC 9110 5.6.2): what a method or a header name may contain.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Headers the client owns: it frames the body itself and does not pipeline or upgrade.
_RESERVED_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "upgrade"})
#: How far behind schedule the open loop may fall before it drops requests (see LoadSpec).
BACKLOG_SECONDS: Final = 1.0
BACKLOG_PER_CONNECTION: Final = 10


@dataclass(frozen=True)
class LoadSpec:
    """The load to generate against one URL.

    ``rate`` set: open loop. Request *i* is scheduled at ``start + i / rate`` whatever the
    answers do, and its latency is measured from that scheduled instant. When all
    ``concurrency`` connections are busy at a scheduled instant, the request waits for the next
    free connection and the wait is part of its latency: a target slower than the rate shows
    up as growing latency, not as a quietly lower send rate ("coordinated omission"). The wait
    is bounded: once more than ``backlog`` requests are overdue, the oldest are given up and
    counted as ``dropped`` errors (never silently skipped).

    ``rate`` None: closed loop. Each of the ``concurrency`` connections sends its next request
    as soon as the previous answer arrived: the target's maximum at that concurrency.

    ``duration`` None: until ``stop()``. Zero is allowed (nothing is sent): a run resumed after
    its time is up.

    ``drain``: once the load window ends (``duration`` reached or ``stop()``), no new request
    is sent; answers still in flight are awaited this long, then abandoned (counted apart, not
    as errors: the target did nothing wrong, the run ended).
    """

    url: str
    rate: float | None
    concurrency: int = 10
    duration: timedelta | None = None
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 5.0
    drain: float = 1.0
    verify_tls: bool = True

    def __post_init__(self) -> None:
        Target.parse(self.url)  # raises ValueError on a bad URL
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(
                f"rate must be a positive number of requests/s or None, not {self.rate!r}"
            )
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.duration is not None and self.duration < timedelta(0):
            raise ValueError(f"duration must not be negative, not {self.duration}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        if not (math.isfinite(self.drain) and self.drain >= 0):
            raise ValueError(f"drain must be zero or more seconds, not {self.drain!r}")
        if not _TOKEN.fullmatch(self.method):
            raise ValueError(f"method {self.method!r} is not an HTTP token")
        for name, value in self.headers.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the load generator itself")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
        try:
            self.request_bytes()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"the request head must be Latin-1 text (use IDNA hosts): {exc}"
            ) from None

    @property
    def backlog(self) -> int:
        """Most overdue requests the open loop holds before dropping the oldest: one second's
        worth of the rate or ten per connection, whichever is larger."""
        if self.rate is None:
            return 0
        return max(
            BACKLOG_PER_CONNECTION * self.concurrency, math.ceil(self.rate * BACKLOG_SECONDS)
        )

    def request_bytes(self) -> bytes:
        """The raw HTTP/1.1 request sent every time."""
        target = Target.parse(self.url)
        names = {name.lower() for name in self.headers}
        lines = [f"{self.method} {target.path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {target.host_header}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        body = self.body or b""
        if body or self.method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body


@dataclass(frozen=True)
class Target:
    """Where the requests go, parsed from the URL."""

    scheme: str
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"load target must be an http:// or https:// URL, not {url!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put credentials in a header, not in the load target URL")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in load target {url!r}: {exc}") from None
        if not parts.hostname:
            raise ValueError(f"load target {url!r} has no host")
        if any(c.isspace() for c in url):
            raise ValueError(f"load target {url!r} contains whitespace")
        default_port = 443 if parts.scheme == "https" else 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port or default_port,
            path=path,
            host_header=parts.netloc,
        )

    def tls_context(self, *, verify: bool) -> ssl.SSLContext | None:
        """None for http; for https a client context, verifying the certificate unless told
        not to (an in-cluster canary often has a self-signed one)."""
        if self.scheme != "https":
            return None
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
