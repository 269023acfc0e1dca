"""The broker's pacing, on events given to it directly: states at once, progress in
batches at most an interval apart, the newest per job, every stream in revision order."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collect_api.db import Database
from collect_api.jobs.broker import Broker, JobEvent, Subscription

INTERVAL = 0.2


def event(kind: str, rev: int, job: str) -> JobEvent:
    return JobEvent(kind, rev, job, "t", {"id": job, "rev": rev, "state": "running"})


@pytest.fixture
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A broker pacing at ``INTERVAL``, or at ``@pytest.mark.interval(seconds)``."""
    marker = request.node.get_closest_marker("interval")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'collect.db'}")
    broker = Broker(db, progress_interval=marker.args[0] if marker else INTERVAL)
    yield broker
    broker.close_streams()
    await db.dispose()


class Seen(list[tuple[str, int, str]]):
    """Events as (kind, rev, job), as they arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def reading(sub: Subscription) -> AsyncIterator[Seen]:
    """What ``sub`` gives, read by a task that ends with the block."""
    seen = Seen()

    async def read() -> None:
        async for e in sub.events():
            seen.append((e.kind, e.rev, e.job_id))
            seen.arrived.set()

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_progress_goes_in_batches_an_interval_apart_the_newest_per_job(
    broker: Broker,
) -> None:
    with broker.subscribe(tenant="t") as sub:
        async with reading(sub) as seen:
            broker.deliver([event("progress", 1, "a"), event("progress", 2, "b")])
            first = time.monotonic()
            await settle()
            assert seen == [("progress", 1, "a"), ("progress", 2, "b")]  # the first at once
            broker.deliver([event("progress", 3, "a")])
            broker.deliver([event("progress", 4, "a"), event("progress", 5, "b")])
            await settle()
            assert len(seen) == 2  # held
            await seen.until(4)
            assert time.monotonic() - first >= INTERVAL
            assert seen[2:] == [("progress", 4, "a"), ("progress", 5, "b")]


async def test_a_state_goes_at_once_taking_the_progress_held_before_it(broker: Broker) -> None:
    with broker.subscribe(tenant="t") as sub:
        async with reading(sub) as seen:
            broker.deliver([event("progress", 1, "a")])
            await settle()
            broker.deliver([event("progress", 2, "a"), event("progress", 3, "b")])
            broker.deliver([event("state", 4, "a")])
            await settle()
            # a's held progress is superseded by its state; b's goes along, in rev order
            assert seen == [("progress", 1, "a"), ("progress", 3, "b"), ("state", 4, "a")]


async def test_each_stream_gets_its_tenants_and_its_jobs_events_once(broker: Broker) -> None:
    other = JobEvent("state", 2, "c", "someone else", {"id": "c", "state": "running"})
    with (
        broker.subscribe(tenant="t") as everything,
        broker.subscribe(tenant="t", job_id="b") as one,
    ):
        async with reading(everything) as all_seen, reading(one) as one_seen:
            broker.deliver([event("state", 1, "a"), other, event("state", 3, "b")])
            await settle()
            assert all_seen == [("state", 1, "a"), ("state", 3, "b")]
            assert one_seen == [("state", 3, "b")]


@pytest.mark.interval(0)
async def test_a_slow_stream_holds_every_state_but_only_the_latest_progress(
    broker: Broker,
) -> None:
    with broker.subscribe(tenant="t", job_id="a") as sub:
        for rev in range(1, 50):
            kind = "state" if rev % 10 == 0 else "progress"
            broker.deliver([event(kind, rev, "a")])
        got: list[Any] = []
        async for e in sub.events():
            got.append((e.kind, e.rev))
            if e.rev == 49:
                break
        assert got == [("state", 10), ("state", 20), ("state", 30), ("state", 40), ("progress", 49)]
