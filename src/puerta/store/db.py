"""The database handle: engines, transactions, migrations, health.

Every unit of work is a synchronous function over a SQLAlchemy ``Connection`` that
``Database.write`` / ``Database.read`` runs as one transaction:

* **PostgreSQL** (several replicas): the async engine (asyncpg) runs the function with
  ``AsyncConnection.run_sync``, so each statement is a native async round trip. Writers of one
  canary serialise on its row lock (``SELECT ... FOR UPDATE``).
* **SQLite** (the embedded default): a SQLite file has one writer at a time, and an async
  driver would hop to a worker thread for every cursor call (33 hops for one hook call, each
  ~100 µs, measured in bench/). Instead writes run on one dedicated writer thread with the
  standard ``sqlite3`` driver, and *group commit*: the units of work that queued up while the
  previous batch ran go to the thread together and share one transaction (if one fails, the
  batch is rolled back and each unit runs again alone). A caller hears back only after the
  commit that holds its work, so nothing is answered before it is durable. The writer
  thread keeps one connection of its own, with a 16 MiB page cache: SQLite empties a
  connection's cache whenever another connection wrote since its last transaction, so writes
  taking turns on pooled connections read every page they touched from the file again (22-28
  reads per hook call at 10,000 canaries, against ~1 on the writer's own). Reads run
  on a small pool of reader threads, which WAL lets run beside the writer. Write transactions
  start with ``BEGIN IMMEDIATE`` so a second process (``puerta db upgrade``, a CLI) waits for
  the lock instead of deadlocking. The WAL is checkpointed by a thread of its own every second
  (``PRAGMA wal_checkpoint(PASSIVE)``, which runs beside the writer and the readers), not by
  whichever commit happens to fill it: a checkpoint copies and syncs pages for several
  milliseconds, and the hook calls of the batch that paid for it waited that long.
  Background work (the CI runner, the outbox, the sealer: whatever runs inside
  :func:`background_writes`) queues apart from the writes of calls someone is waiting on:
  a batch holds one kind or the other, and the callers' writes go first. A sealer batch
  (~3 ms) or a runner claim (~1 ms) that shared a batch with hook calls made each of them
  wait for it; now background writes run when no call's write is queued, or after
  ``_MAX_DEFERRED`` batches went ahead of them, so they are never starved. Callers' writes
  waiting over 8 ms fell from 2-3% to 0.25-0.44% at 460 calls/s (bench/README.md).

Nothing blocks the event loop either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite:///puerta.db"
_READ_ONLY = "puerta_read_only"
#: seconds between two WAL checkpoints of a SQLite database
CHECKPOINT_EVERY = 1.0
#: pg_advisory_xact_lock key that serialises migrations of replicas starting together.
_MIGRATION_LOCK_KEY = 0x70756572  # "puer"
_SQLITE_READERS = 4
#: page cache of the writer's connection (SQLite's default is 2 MiB): what a hook call
#: touches at 10,000 canaries (their rows, their rollouts, the audit indexes) stays in it
_WRITER_CACHE_KIB = 16 * 1024
#: batches of callers' writes that may go ahead of queued background writes in a row
_MAX_DEFERRED = 8

T = TypeVar("T")
_Unit = tuple[Callable[[Connection], Any], "asyncio.Future[Any]"]

#: set in the tasks of background workers (see ``background_writes``); tasks they create
#: inherit it, so every write of a worker's round counts as background
_BACKGROUND: ContextVar[bool] = ContextVar("puerta_db_background", default=False)


@contextlib.contextmanager
def background_writes() -> Iterator[None]:
    """Within the block (and the tasks started in it), this task's writes are background
    work: on SQLite they wait for the writes of calls someone is waiting on (hook calls,
    admin actions), never the other way round. Workers start their loop task inside it."""
    reset = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(reset)


def normalise_url(url: str) -> str:
    """Accept the URLs people write: SQLite runs on ``sqlite3``, PostgreSQL on asyncpg."""
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite" + url[len("sqlite+aiosqlite") :]
    if url.startswith("sqlite+pysqlite:"):
        return "sqlite" + url[len("sqlite+pysqlite") :]
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


class Database:
    """One database and the rules for using it."""

    def __init__(
        self, url: str, *, echo: bool = False, checkpoint_every: float = CHECKPOINT_EVERY
    ) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if not database or database == ":memory:":
                raise ValueError("SQLite needs a file (an in-memory database is not shared)")
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"check_same_thread": False, "timeout": 30}
            self._sync = create_engine(
                self.url,
                echo=echo,
                connect_args=connect_args,
                pool_size=_SQLITE_READERS + 1,  # the checkpointer too
            )
            _configure_sqlite(self._sync)
            self._write_engine = create_engine(
                self.url, echo=echo, connect_args=connect_args, pool_size=1, max_overflow=0
            )
            _configure_sqlite(self._write_engine, cache_kib=_WRITER_CACHE_KIB)
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="puerta-db-writer")
            self._pending: list[_Unit] = []  # callers' writes
            self._background: list[_Unit] = []  # background workers' writes
            self._deferred = 0  # batches that went ahead of queued background writes
            self._flusher: asyncio.Task[None] | None = None
            self._readers = ThreadPoolExecutor(_SQLITE_READERS, thread_name_prefix="puerta-db-read")
            self._checkpoint_every = checkpoint_every
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="puerta-db-checkpoint")
            self._checkpoints: asyncio.Task[None] | None = None
        elif self.dialect == "postgresql":
            self._async = create_async_engine(
                self.url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction: committed if it returns, rolled back if not.

        ``work`` must do nothing but database work: on SQLite it may run a second time (see
        ``_sqlite_batch``).
        """
        if self._async is not None:
            try:
                async with self._async.begin() as conn:
                    return await conn.run_sync(work)
            except (OSError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
        loop = asyncio.get_running_loop()
        checkpoints = self._checkpoints
        if checkpoints is None or checkpoints.done() or checkpoints.get_loop() is not loop:
            self._checkpoints = loop.create_task(
                self._checkpoint_loop(), name="puerta-db-checkpoint"
            )
        future: asyncio.Future[T] = loop.create_future()
        (self._background if _BACKGROUND.get() else self._pending).append((work, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Hand queued writes to the writer thread, batch after batch, until none are left:
        callers' writes first, background writes when none are queued (or after
        ``_MAX_DEFERRED`` batches went ahead of them)."""
        loop = asyncio.get_running_loop()
        while self._pending or self._background:
            batch = self._next_batch()
            try:
                outcomes = await loop.run_in_executor(self._writer, self._sqlite_batch, batch)
            except BaseException as exc:  # cancelled (shutdown): the batch may not have run
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # the caller went away; its work is committed anyway
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _next_batch(self) -> list[_Unit]:
        if self._pending and (not self._background or self._deferred < _MAX_DEFERRED):
            self._deferred += bool(self._background)
            batch, self._pending = self._pending, []
        else:
            self._deferred = 0
            batch, self._background = self._background, []
        return batch

    async def _checkpoint_loop(self) -> None:
        """Move committed pages from the WAL into the database file every second or so (see
        the module docstring); a failed checkpoint is simply tried again next time."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._checkpoint_every)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._checkpointer, self._checkpoint)

    def _checkpoint(self) -> None:
        assert self._sync is not None
        with self._sync.connect() as conn:
            # on the driver's connection: SQLAlchemy would begin a (write) transaction first
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _sqlite_batch(self, batch: list[_Unit]) -> list[tuple[bool, Any]]:
        """Run a batch in one transaction; if any unit fails, roll the batch back and run each
        unit alone, so only the failing one fails (units do nothing but database work, so
        running one again is safe)."""
        if len(batch) > 1:
            try:
                with self._write_engine.connect() as conn, conn.begin():
                    values = [work(conn) for work, _ in batch]
                return [(True, value) for value in values]
            except Exception:  # noqa: S110  (each unit is run again alone below)
                pass
        outcomes: list[tuple[bool, Any]] = []
        for work, _ in batch:
            try:
                with self._write_engine.connect() as conn, conn.begin():
                    outcomes.append((True, work(conn)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a read-only transaction (it never blocks writers)."""
        if self._async is not None:
            try:
                async with self._async.connect() as conn, conn.begin():
                    return await conn.run_sync(work)
            except (OSError, TimeoutError) as exc:
                raise _unreachable(exc) from exc
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._sqlite_run, work, True)

    async def write_persistently(self, work: Callable[[Connection], T], *, within: float) -> T:
        """``write``, retried while the database cannot be reached, for up to ``within``
        seconds: for storing what an external system already did (a CI run triggered, a
        message posted), so a database restart at that moment does not make the work look
        undone and get done twice."""
        deadline = time.monotonic() + within
        pause = 0.2
        while True:
            try:
                return await self.write(work)
            except OperationalError:
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _sqlite_run(self, work: Callable[[Connection], T], read_only: bool) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            if read_only:
                conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                return work(conn)

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (safe when several replicas start at once)."""
        from puerta.store.migrate import upgrade_connection

        def upgrade(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"))
            upgrade_connection(conn)

        await self.write(upgrade)

    async def dispose(self) -> None:
        if self._async is not None:
            await self._async.dispose()
            return
        assert self._sync is not None
        if self._flusher is not None:
            await self._flusher  # let queued writes commit before the threads stop
        checkpoints = self._checkpoints
        if checkpoints is not None and checkpoints.get_loop() is asyncio.get_running_loop():
            checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoints
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown_sqlite)

    def _shutdown_sqlite(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        assert self._sync is not None
        self._sync.dispose()
        self._write_engine.dispose()


def _configure_sqlite(engine: Engine, *, cache_kib: int | None = None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # Database._checkpoint_loop does it
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _unreachable(exc: BaseException) -> OperationalError:
    """A connection that could not be made (refused, reset, timed out) as the database error
    it is, so callers answer 503 and retry, as for any other outage. SQLAlchemy's asyncpg
    dialect lets the ``OSError`` of a failed connect through untranslated."""
    return OperationalError("connect", {}, exc)
