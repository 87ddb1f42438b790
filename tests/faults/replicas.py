"""Real processes for fault injection: Puerta replicas (``puerta serve`` subprocesses), a private
PostgreSQL cluster that tests may stop and restart, and a valve in front of the fake APIs.

* :class:`Replica` runs ``python -m puerta serve`` on a free port with its own policy file and
  environment, writes its stdout and stderr to files (kept across restarts, for the secrets
  test), and can be killed with SIGKILL, stopped with SIGTERM and started again.
* :class:`PrivatePostgres` is a throw-away cluster (``initdb`` + ``pg_ctl`` from Debian's
  binaries) on a free port, owned by the ``postgres`` user when the tests run as root (initdb
  refuses root). Each test gets a fresh database owned by a role with a password.
* :class:`Valve` wraps a fake's ASGI app. The fake is served once per replica (one port each),
  so the valve knows which replica sent a request, and it can hold requests in flight: a held
  request whose client goes away (the replica was killed) is dropped before the fake sees it
  ("in flight, not accepted"), or delivered anyway ("accepted, the answer lost").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from fakes.server import serve_in_thread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait (bounded, real time) for something another process or thread does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- secrets -------------------------------------------------------------------------------


def _secret(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Secrets:
    """Every secret the replicas are given; none may ever appear in their logs."""

    admin: str = field(default_factory=lambda: _secret("adm"))
    viewer: str = field(default_factory=lambda: _secret("vwr"))
    hook: str = field(default_factory=lambda: _secret("hooktok"))
    session: str = field(default_factory=lambda: _secret("session-key-at-least-32-chars"))
    ci_token: str = field(default_factory=lambda: _secret("ghs"))
    ci_webhook: str = field(default_factory=lambda: _secret("cihook"))
    slack: str = field(default_factory=lambda: _secret("xoxb"))
    github: str = field(default_factory=lambda: _secret("ghp"))
    kubernetes: str = field(default_factory=lambda: _secret("k8s-sa"))
    notify_webhook: str = field(default_factory=lambda: _secret("notifyhook"))
    db_password: str = field(default_factory=lambda: _secret("pgpw"))

    def environ(self) -> dict[str, str]:
        """The environment variables the policies in these tests read their secrets from."""
        return {
            "PUERTA_ADMIN_TOKEN": self.admin,
            "PUERTA_VIEWER_TOKEN": self.viewer,
            "PUERTA_HOOK_TOKEN": self.hook,
            "PUERTA_SESSION_SECRET": self.session,
            "GH_TOKEN": self.ci_token,
            "GH_WEBHOOK_SECRET": self.ci_webhook,
            "SLACK_TOKEN": self.slack,
            "GITHUB_TOKEN": self.github,
            "NOTIFY_WEBHOOK_SECRET": self.notify_webhook,
        }

    def values(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__dataclass_fields__}


SECRETS = Secrets()


# ---- PostgreSQL ----------------------------------------------------------------------------


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries (or no way to run them) on this machine."""


def _find_bindir() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb); "
        "install Debian's postgresql package"
    )


class PrivatePostgres:
    """A PostgreSQL cluster of this test session that tests may stop, start and restart."""

    ROLE = "puerta"

    def __init__(self) -> None:
        self.bindir = _find_bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and runuser(1) is missing")
        # the postgres user must reach it: not below a private TMPDIR such as /root/tmp
        parent = "/tmp" if self.as_root and Path("/tmp").is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="puerta-faults-pg-", dir=parent))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.logfile = self.root / "postgres.log"
        self.port = free_port()
        self.admin_password = secrets.token_hex(16)
        self.password = SECRETS.db_password

    # -- set-up ----------------------------------------------------------------------------
    def create(self) -> None:
        self.sockets.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self.as_root:
            import pwd

            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user") from None
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        self.start()
        self.execute(f"CREATE ROLE {self.ROLE} LOGIN PASSWORD '{self.password}'")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- server control --------------------------------------------------------------------
    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _ctl(self, action: str, *extra: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", *extra, action)

    def start(self) -> None:
        self._ctl("start", "-o", self._options())

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast", "-o", self._options())

    def running(self) -> bool:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    # -- databases -------------------------------------------------------------------------
    def _dsn(self, database: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The URL replicas use: the ``puerta`` role, with its password."""
        return self._dsn(database, self.ROLE, self.password).replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )

    def execute(self, sql: str, database: str = "postgres") -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self._dsn(database, "postgres", self.admin_password))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}" OWNER {self.ROLE}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- replicas ------------------------------------------------------------------------------


class Replica:
    """One ``puerta serve`` process; its stdout and stderr go to ``<name>.out`` and
    ``<name>.err`` in ``workdir`` (appended across restarts)."""

    def __init__(self, name: str, policy: str, environ: Mapping[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / f"{name}-policy.yaml"
        self.config.write_text(policy)
        self.environ = dict(environ)
        self.stdout = workdir / f"{name}.out"
        self.stderr = workdir / f"{name}.err"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        command = [
            sys.executable,
            "-m",
            "puerta",
            "serve",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.stdout.open("ab") as out, self.stderr.open("ab") as err:
            marker = f"---- start {self.starts + 1} of {self.name}\n".encode()
            out.write(marker)
            err.write(marker)
            out.flush()
            err.flush()
            self.process = subprocess.Popen(
                command, stdout=out, stderr=err, env=self.environ, cwd=self.workdir
            )
        self.starts += 1
        self._client = httpx.Client(base_url=self.url, timeout=30.0)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL: no shutdown of any kind, like a node that disappears."""
        assert self.process is not None and self.alive, f"{self.name} is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close_client()

    def sigterm(self) -> float:
        """Send SIGTERM (graceful shutdown); returns when it was sent (time.monotonic())."""
        assert self.process is not None and self.alive, f"{self.name} is not running"
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        return sent

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        self._close_client()
        return code

    def restart(self) -> None:
        """Start again (after a kill or an exit), and wait until it is ready."""
        if self.alive:
            self.sigterm()
            self.wait_exit(30)
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        """End the process if it still runs (SIGTERM, then SIGKILL)."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- HTTP ------------------------------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        assert self._client is not None, f"{self.name} is not running"
        return self._client

    def hook(
        self,
        hook: str,
        payload: Mapping[str, Any],
        *,
        token: str | None = SECRETS.hook,
        timeout: float = 30.0,
    ) -> httpx.Response:
        params = {"token": token} if token is not None else {}
        return self.http.post(f"/hooks/{hook}", json=dict(payload), params=params, timeout=timeout)

    def api(
        self, method: str, path: str, *, token: str | None = SECRETS.admin, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.api("GET", path, token=SECRETS.viewer, params=params)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()

    # -- logs ------------------------------------------------------------------------------
    def logs(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.stdout, self.stderr) if p.exists()]
        return "".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of stdout (Puerta's log) and of stderr (uvicorn, tracebacks)."""
        parts = []
        for path in (self.stdout, self.stderr):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"-- {path.name}\n" + "\n".join(line[:400] for line in tail))
        return "\n".join(parts)


class Replicas:
    """Several replicas on one database (a test's cluster)."""

    def __init__(self, replicas: Sequence[Replica]) -> None:
        self.replicas = list(replicas)

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas)

    def __len__(self) -> int:
        return len(self.replicas)

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait_ready()

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def stop(self) -> None:
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop()

    def logs(self) -> str:
        return "".join(r.logs() for r in self.replicas)


# ---- the fakes' side -----------------------------------------------------------------------


@dataclass
class Seen:
    """One request that reached the valve: which port (replica), what, when, what became of it
    (``passed``, ``held``, ``dropped``: the client left while held, ``released``)."""

    port: int
    method: str
    path: str
    at: float
    state: str = "passed"
    released_at: float | None = None
    gone: bool = False  # the client disconnected while the request was held


@dataclass
class _Rule:
    port: int | None
    method: str | None
    path: str | None
    after: int
    deliver_if_gone: bool

    def matches(self, seen: Seen) -> bool:
        return (
            (self.port is None or seen.port == self.port)
            and (self.method is None or seen.method == self.method)
            and (self.path is None or self.path in seen.path)
        )


class Valve:
    """ASGI wrapper: logs requests per port and holds matching ones while closed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []
        self._rule: _Rule | None = None
        self._lock = threading.Lock()

    # -- control (from the test's thread) --------------------------------------------------
    def hold(
        self,
        *,
        port: int | None = None,
        method: str | None = None,
        path: str | None = None,
        after: int = 0,
        deliver_if_gone: bool = False,
    ) -> None:
        """Hold the requests that match (port, method, a fragment of the path), after letting
        ``after`` of them through. A held request whose client disconnects is dropped unless
        ``deliver_if_gone`` (then the fake handles it when the valve opens)."""
        with self._lock:
            self._rule = _Rule(port, method, path, after, deliver_if_gone)

    def open(self) -> None:
        """Let every held request go on, and hold nothing more."""
        with self._lock:
            self._rule = None

    def requests(
        self, *, port: int | None = None, state: str | None = None, path: str | None = None
    ) -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self.seen
                if (port is None or s.port == port)
                and (state is None or s.state == state)
                and (path is None or path in s.path)
            ]

    def held(self, port: int | None = None) -> list[Seen]:
        return self.requests(port=port, state="held")

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = Seen(int(scope["server"][1]), str(scope["method"]), str(scope["path"]), 0.0)
        seen.at = time.monotonic()
        with self._lock:
            self.seen.append(seen)
            rule = self._rule
            if rule is not None and rule.matches(seen):
                if rule.after > 0:
                    rule.after -= 1
                    rule = None
                else:
                    seen.state = "held"
            else:
                rule = None
        if rule is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._settle(seen, "dropped")
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        gone = await self._wait(seen, rule, receive)
        if gone and not rule.deliver_if_gone:
            self._settle(seen, "dropped")
            return
        self._settle(seen, "released")
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            if gone:
                return {"type": "http.disconnect"}
            return await receive()

        await self.app(scope, replay, send)

    def _settle(self, seen: Seen, state: str) -> None:
        with self._lock:
            seen.state = state
            seen.released_at = time.monotonic()

    def _holding(self) -> bool:
        with self._lock:
            return self._rule is not None

    async def _wait(self, seen: Seen, rule: _Rule, receive: Receive) -> bool:
        """Wait while the valve holds; True if the client went away meanwhile (a request that
        is dropped then returns at once, one to deliver anyway waits for the valve)."""
        pending: asyncio.Future[Message] = asyncio.ensure_future(receive())
        try:
            while self._holding():
                if seen.gone:
                    await asyncio.sleep(0.02)
                    continue
                done, _ = await asyncio.wait({pending}, timeout=0.02)
                if not done:
                    continue
                if pending.result()["type"] != "http.disconnect":
                    pending = asyncio.ensure_future(receive())
                    continue
                with self._lock:
                    seen.gone = True
                if not rule.deliver_if_gone:
                    return True
            return seen.gone
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending


@contextmanager
def serve_per_replica(app: Any, count: int) -> Iterator[list[str]]:
    """Serve ``app`` on ``count`` ports (one per replica); yields their base URLs. A valve is
    opened before the servers stop, so a test that failed holding calls ends promptly."""
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(app)) for _ in range(count)]
        if isinstance(app, Valve):
            stack.callback(app.open)  # runs first: the stack unwinds in reverse
        yield urls


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def leaked_secrets(text: str) -> dict[str, str]:
    """The configured secrets found in ``text``: name -> the line it was found on."""
    found: dict[str, str] = {}
    for name, value in SECRETS.values().items():
        index = text.find(value)
        if index >= 0:
            start = text.rfind("\n", 0, index) + 1
            end = text.find("\n", index)
            line = text[start : end if end >= 0 else len(text)]
            found[name] = line.replace(value, f"<{name}>")[:500]
    return found
