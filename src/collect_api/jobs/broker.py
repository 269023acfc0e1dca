"""Fan job changes out to SSE streams and to control requests waiting on a state.

The broker learns of changes by polling the database (``poll``), not from the job runners:
a job may run in another process, and the database is the one place every process shares.
A change committed in this process sets ``changed``, and the poll loop polls at once; so
does one notified from another server on PostgreSQL, and a chunk's progress notified from
anywhere asks for a poll within ``PROGRESS_POLL_S`` (``progressed``).
Every job change bumps the job's ``rev`` and every state change writes a history row with
the same ``rev``, so one indexed range query per table (``rev > last seen``) finds them all,
and state changes are never lost even if several happen between two polls.

Invariants:
- Pacing is the broker's, once for all streams: a polled state change is offered at once,
  with every progress held back before it; progress is held back and offered in one batch
  at most every ``progress_interval``, the newest per job. So ``progress`` events of a job
  are at least ``progress_interval`` apart (except those sent along with a state change),
  and a thousand streams cost no timer each.
- Events are offered in increasing ``rev``, and leave a subscription in that order; a
  progress superseded by a later state change of the same job is dropped.
- A subscription holds every state change queued (there are few per job), but only the
  latest progress per job: memory is bounded whatever the rate of change, and a slow
  client never slows a job.
- An event's document is encoded to JSON once, when it is polled, however many streams
  send it.
- A stopping service ends its streams only after a poll that started once the stop was
  asked (``end_streams``), with any progress held back offered first: every change
  committed before the stop reaches the streams open then, unless that poll fails or takes
  over ``LAST_POLL_S``.
"""

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.sse import format_sse_event
from sqlalchemy import select

from collect_api.db import Database
from collect_api.jobs.models import Job
from collect_api.jobs.store import HISTORY, JOB, job_document, job_of

# How soon progress notified from another process is polled for: as often as the default
# polling interval, well within the pacing of ``progress`` events.
PROGRESS_POLL_S = 0.1
# How long a stopping service waits for its last poll before it ends the streams regardless
# (``end_streams``): a poll takes milliseconds, unless the database does not answer.
LAST_POLL_S = 1.0


@dataclass(frozen=True)
class JobEvent:
    kind: str  # "state" or "progress"
    rev: int
    job_id: str
    tenant: str
    document: dict[str, Any]
    # The document as JSON, encoded once for every stream that sends it.
    encoded: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.encoded:
            object.__setattr__(self, "encoded", encode(self.document))

    def frame(self) -> bytes:
        """The event as a stream sends it, made once for all the streams that send it."""
        made: bytes | None = self.__dict__.get("_frame")
        if made is None:
            made = sse_frame(self.kind, self.rev, self.encoded)
            object.__setattr__(self, "_frame", made)
        return made


def sse_frame(kind: str, rev: int, encoded: str) -> bytes:
    """An event of ``kind`` at revision ``rev`` carrying the JSON text ``encoded``, in the
    Server-Sent Events wire format (``fastapi.sse``'s)."""
    return format_sse_event(data_str=encoded, event=kind, id=str(rev))


def encode(document: dict[str, Any]) -> str:
    """A job document as the JSON text an event carries."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


_REVISIONS = "SELECT (SELECT max(rev) FROM job), (SELECT max(rev) FROM job_history)"


class Subscription:
    def __init__(self, *, tenant: str, job_id: str | None) -> None:
        self.tenant = tenant
        self.job_id = job_id
        self._states: deque[JobEvent] = deque()
        self._progress: dict[str, JobEvent] = {}
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """End ``events()`` once it has yielded what was offered: the service is stopping."""
        self._closed = True
        self._changed.set()

    def wants(self, event: JobEvent) -> bool:
        if event.tenant != self.tenant:
            return False
        return self.job_id is None or event.job_id == self.job_id

    def offer(self, event: JobEvent) -> None:
        if event.kind == "state":
            self._states.append(event)
        else:
            self._progress[event.job_id] = event
        self._changed.set()

    async def events(self, idle_s: float | None = None) -> AsyncIterator[JobEvent | None]:
        """Events in increasing ``rev``, as the broker paced them; with ``idle_s``, None
        after each ``idle_s`` seconds without one. Once closed, it ends after the events
        offered before the close."""
        while True:
            if not self._states and not self._progress:
                if self._closed:
                    return
                self._changed.clear()
                try:
                    async with asyncio.timeout(idle_s):
                        await self._changed.wait()
                except TimeoutError:
                    yield None
                continue
            newest_state = {e.job_id: e.rev for e in self._states}
            batch = list(self._states) + [
                e for e in self._progress.values() if e.rev > newest_state.get(e.job_id, 0)
            ]
            self._states.clear()
            self._progress.clear()
            for event in sorted(batch, key=lambda e: e.rev):
                yield event


class Broker:
    def __init__(self, db: Database, *, progress_interval: float) -> None:
        self._db = db
        self._progress_interval = progress_interval
        self._subscriptions: set[Subscription] = set()
        self._last_job_rev = 0
        self._last_history_rev = 0
        self._closed = False
        # Progress held back by the pacing (the newest per job), when the last batch went
        # out, and the timer that offers the next one.
        self._held: dict[str, JobEvent] = {}
        self._offered_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        # Set when this process committed a change: the poll loop polls at once, so that
        # waiters and streams here learn of it without waiting for the polling interval.
        self.changed = asyncio.Event()
        db.after_commit(self.changed.set)
        # The poll that progress notified from elsewhere asks for (``progressed``).
        self._progress_poll: asyncio.TimerHandle | None = None
        # Polls started so far; while the service stops, how many had started when the stop
        # was asked, and the timer that ends the streams if no later poll ends in time.
        self._polls = 0
        self._last_before_stop: int | None = None
        self._stop_timer: asyncio.TimerHandle | None = None

    def progressed(self) -> None:
        """A job's progress was committed somewhere (notified): poll within
        ``PROGRESS_POLL_S`` if anyone follows, once for however many chunks commit
        meanwhile. A chunk every few milliseconds does not cost a poll each."""
        if self._progress_poll is not None or not self._subscriptions or self._closed:
            return

        def poll() -> None:
            self._progress_poll = None
            self.changed.set()

        self._progress_poll = asyncio.get_running_loop().call_later(PROGRESS_POLL_S, poll)

    def end_streams(self, within_s: float = LAST_POLL_S) -> None:
        """The service is stopping: deliver what has been committed up to now, then end
        every stream (``close_streams``). A poll is asked for at once, and the streams end
        when it does, or after ``within_s`` seconds if it fails or hangs."""
        if self._closed or self._last_before_stop is not None:
            return
        self._last_before_stop = self._polls
        self.changed.set()
        self._stop_timer = asyncio.get_running_loop().call_later(within_s, self.close_streams)

    def close_streams(self) -> None:
        """End every subscription, and refuse new ones: the service is stopping, and open
        event streams would otherwise hold its shutdown back. Clients reconnect with
        ``Last-Event-ID`` and miss nothing."""
        self._closed = True
        for timer in (self._timer, self._progress_poll, self._stop_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._progress_poll = self._stop_timer = None
        for sub in self._subscriptions:
            sub.close()

    @contextmanager
    def subscribe(self, *, tenant: str, job_id: str | None = None) -> Iterator[Subscription]:
        sub = Subscription(tenant=tenant, job_id=job_id)
        if self._closed:
            sub.close()
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)

    async def _revisions(self) -> tuple[int, int]:
        """The latest revision of any job and of any state change, in one statement."""
        row = await self._db.points.one(_REVISIONS)
        assert row is not None
        return int(row[0] or 0), int(row[1] or 0)

    async def sync(self) -> None:
        """Start from the present: changes made before now are not events."""
        self._last_job_rev, self._last_history_rev = await self._revisions()

    async def poll(self) -> None:
        """Deliver every change committed since the last poll; the last poll of a stopping
        service (``end_streams``) then offers the progress held back and ends the streams."""
        self._polls += 1
        started = self._polls
        await self._poll()
        stop = self._last_before_stop
        if stop is not None and started > stop and not self._closed:
            self._offer_held()
            self.close_streams()

    async def _poll(self) -> None:
        """Deliver every change committed since the last poll. With no subscription open,
        nothing is read but where the revisions stand: whoever subscribes reads the job
        after subscribing and takes only later changes. Where the revisions stand is read
        first in any case, and the changes only if they moved: a poll that finds nothing
        costs one statement, not a transaction."""
        if not self._subscriptions:
            await self.sync()
            return
        if await self._revisions() == (self._last_job_rev, self._last_history_rev):
            return
        async with self._db.read() as conn:
            history = (
                await conn.execute(
                    select(HISTORY.c.rev, HISTORY.c.job_id, JOB.c.tenant, HISTORY.c.snapshot)
                    .join(JOB, JOB.c.id == HISTORY.c.job_id)
                    .where(HISTORY.c.rev > self._last_history_rev)
                    .order_by(HISTORY.c.rev)
                )
            ).all()
            jobs = (
                await conn.execute(
                    select(JOB).where(JOB.c.rev > self._last_job_rev).order_by(JOB.c.rev)
                )
            ).all()
        if history:
            self._last_history_rev = history[-1].rev
        if jobs:
            self._last_job_rev = jobs[-1].rev
        if not self._subscriptions:
            return
        state_revs = {h.rev for h in history}
        events = [JobEvent("state", h.rev, h.job_id, h.tenant, h.snapshot) for h in history]
        for row in jobs:
            if row.rev not in state_revs:
                job = job_of(row)
                events.append(JobEvent("progress", job.rev, job.id, job.tenant, job_document(job)))
        self.deliver(events)

    def deliver(self, events: list[JobEvent]) -> None:
        """Offer polled changes to the subscriptions, paced (see the module's invariants)."""
        for event in sorted(events, key=lambda e: e.rev):
            if event.kind == "state":
                # At once, with the progress held before it (its own job's is superseded).
                held = self._held
                self._held = {}
                self._offer(e for e in held.values() if e.job_id != event.job_id)
                self._offer([event])
            else:
                self._held[event.job_id] = event
        if self._held:
            self._pace()

    def _pace(self) -> None:
        """Offer the held progress now if the last batch is ``progress_interval`` old,
        else once it is."""
        if self._timer is not None or self._closed:
            return
        wait = self._offered_at + self._progress_interval - time.monotonic()
        if wait <= 0:
            self._offer_held()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._offer_held)

    def _offer_held(self) -> None:
        self._timer = None
        held = self._held
        self._held = {}
        self._offered_at = time.monotonic()
        self._offer(held.values())

    def _offer(self, events: Iterable[JobEvent]) -> None:
        subs = self._subscriptions
        for event in sorted(events, key=lambda e: e.rev):
            for sub in subs:
                if sub.wants(event):
                    sub.offer(event)

    async def wait_for(
        self,
        *,
        tenant: str,
        job_id: str,
        until: Callable[[dict[str, Any]], bool],
        read: Callable[[], Awaitable[Job]],
        wait_s: float,
    ) -> None:
        """Return once ``until(job document)`` holds, or after ``wait_s`` seconds.

        ``read`` reads the job after subscribing, so a change made just before the
        subscription is not missed. The subscription may then still deliver changes older
        than that read (a poll catching up): a change is acted on only if its ``rev`` is
        newer than everything seen so far, or a stale state would end the wait.
        """
        with self.subscribe(tenant=tenant, job_id=job_id) as sub:
            job = await read()
            if until(job_document(job)):
                return
            seen = job.rev
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    async for event in sub.events():
                        if event is None or event.rev <= seen:
                            continue
                        seen = event.rev
                        if until(event.document):
                            return
