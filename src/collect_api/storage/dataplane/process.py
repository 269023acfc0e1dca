"""Data-plane worker processes: where rows are parsed, written and read.

Why a process of its own:

- ``adbc-driver-sqlite`` bundles its own copy of SQLite. Two copies of SQLite in one process
  do not exclude each other (POSIX locks belong to the process), so a committed row can be
  lost; the server's own connections (aiosqlite, the system's SQLite) therefore never share
  a process with an ADBC SQLite writer.
- Parsing and encoding millions of fields holds the GIL for long stretches; in a worker they
  leave the server's event loop free.

Each worker serves one caller at a time over a socket pair: a request is ``(op, kwargs)``
and a reply is ``("ok", value)`` or ``("error", kind, message, details)``, both pickled by
``multiprocessing.connection``. A worker keeps sessions (an open file, a connection, a
transaction in progress) between requests, under ids its caller chooses.

Interrupts: the caller writes the number of the request it wants stopped into a word of
shared memory (a memfd both sides map). Long operations read it between statements, never
inside a driver call, roll their transaction back and answer ``("interrupted",)``. A stale
number cannot stop a later request.

A worker ends when its socket closes: when the server stops, or dies.
"""

import asyncio
import contextlib
import logging
import mmap
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from collect_api.db import Interrupted, shielded

log = logging.getLogger("collect.dataplane")

_WORD = struct.Struct("q")


class WorkerDied(Exception):
    """The worker process ended while it had work in hand."""


class WorkerInterrupted(Interrupted):
    """The worker stopped the request at a statement boundary and rolled it back."""


class RemoteError(Exception):
    """An error the worker reported: its kind (the exception's class name), message and the
    details a caller needs to raise its own exception again."""

    def __init__(self, kind: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details


def _settle(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


class Worker:
    """The server's side of one worker process."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection, flag: mmap.mmap) -> None:
        self._proc = proc
        self._conn = conn
        self._flag = flag
        self._calls = 0
        self._lock = asyncio.Lock()

    @classmethod
    def spawn(cls, *, env: dict[str, str] | None = None) -> "Worker":
        ours, theirs = socket.socketpair()
        memfd = os.memfd_create("collect-interrupt")
        os.ftruncate(memfd, _WORD.size)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "collect_api.storage.dataplane.serve",
                str(theirs.fileno()),
                str(memfd),
                str(os.getpid()),
            ],
            pass_fds=(theirs.fileno(), memfd),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        flag = mmap.mmap(memfd, _WORD.size)
        os.close(memfd)
        return cls(proc, Connection(ours.detach()), flag)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def call(self, op: str, /, **kwargs: Any) -> Any:
        """Run ``op`` in the worker. A cancellation interrupts it at its next statement and
        waits for the worker's answer, so no request is left half-done in the worker."""
        async with self._lock:
            self._calls += 1
            number = self._calls
            return await shielded(
                lambda: self._exchange(op, kwargs), on_cancel=lambda: self.interrupt(number)
            )

    def interrupt(self, number: int | None = None) -> None:
        """Ask the worker to stop request ``number`` (the one in flight) at its next
        statement boundary."""
        _WORD.pack_into(self._flag, 0, self._calls if number is None else number)

    async def _exchange(self, op: str, kwargs: dict[str, Any]) -> Any:
        try:
            self._conn.send((self._calls, op, kwargs))
            reply = await self._reply()
        except (EOFError, OSError) as exc:
            reason = exc or "connection closed"
            raise WorkerDied(f"the data-plane worker stopped: {reason}") from exc
        status = reply[0]
        if status == "ok":
            return reply[1]
        if status == "interrupted":
            raise WorkerInterrupted(op)
        raise RemoteError(reply[1], reply[2], reply[3])

    async def _reply(self) -> Any:
        """The worker's reply, waited for on the event loop and read once it starts to
        arrive: a reply is small and written whole, so the read does not wait. (Waiting in
        a thread instead cost the server a thread's hand-off and wake-up twice a chunk.)"""
        loop = asyncio.get_running_loop()
        fd = self._conn.fileno()
        while not self._conn.poll():  # readable: a reply, or the worker's end
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
        return self._conn.recv()

    async def stop(self) -> None:
        """Let the worker end; it finishes the request in hand first."""
        with contextlib.suppress(OSError):
            self._conn.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._proc.wait), 10)
        except TimeoutError:
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait)
        self._flag.close()


class WorkerPool:
    """Workers kept for reuse: at most ``idle`` of them wait between jobs; a worker that
    failed is dropped. The pool owns no task: ``acquire`` and ``release`` are called by the
    job that uses the worker, and ``close`` by the supervisor's close."""

    def __init__(self, *, idle: int, spawn: Callable[[], Worker] = Worker.spawn) -> None:
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._keep = idle
        self._spawn = spawn
        self._closed = False

    @property
    def busy(self) -> int:
        """Workers in use now."""
        return len(self._busy)

    def warm(self) -> None:
        """Start a worker to wait idle, unless one already does: its start (about half a
        second of imports) then overlaps with whatever comes before the job."""
        if not self._closed and not any(w.alive for w in self._idle):
            self._idle.append(self._spawn())

    def acquire(self) -> Worker:
        if self._closed:
            raise WorkerDied("the service is stopping")
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                break
        else:
            worker = self._spawn()
        self._busy.add(worker)
        return worker

    async def release(self, worker: Worker, *, healthy: bool = True) -> None:
        self._busy.discard(worker)
        if healthy and worker.alive and not self._closed and len(self._idle) < self._keep:
            self._idle.append(worker)
        else:
            await worker.stop()

    async def close(self) -> None:
        self._closed = True
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
