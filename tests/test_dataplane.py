"""The data plane's worker processes on a real SQLite file: chunks staged and committed with
their checkpoint, interrupts that roll a chunk back between statements, a worker that dies.

The test process reads the file with Python's sqlite3 and the worker writes it with its own
SQLite (adbc-driver-sqlite), each in its own process, as in the service.
"""

import asyncio
import contextlib
import csv
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collect_api.samples import responses, write_responses_csv
from collect_api.storage.dataplane.client import DataPlane, WorkerDied, WorkerInterrupted
from collect_api.storage.dataplane.process import Worker
from tests.helpers import csv_bytes

COLUMNS = 8


def make_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        names = ", ".join(f"c{i} TEXT" for i in range(COLUMNS))
        conn.execute(f"CREATE TABLE stage_x (_row INTEGER PRIMARY KEY, {names})")
        # As the service makes its tables: with each row's quote bits.
        conn.execute(f"CREATE TABLE stage_q (_row INTEGER PRIMARY KEY, {names}, _q INTEGER)")
        conn.execute(
            "CREATE TABLE job_rejection (id INTEGER PRIMARY KEY, job_id TEXT, line INT, "
            'record INT, "column" TEXT, reason TEXT, raw TEXT)'
        )
        conn.execute("CREATE TABLE job (id TEXT PRIMARY KEY, checkpoint TEXT, open INT)")
        conn.execute("INSERT INTO job VALUES ('j', NULL, 1)")


CHECKPOINT = "UPDATE job SET checkpoint = ? WHERE id = 'j' AND open = 1 RETURNING id"


def count(db: Path, sql: str) -> Any:
    with sqlite3.connect(db, timeout=5) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "responses.csv"
    write_responses_csv(path, 20_000, seed=21)
    return path


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[DataPlane]:
    db = tmp_path / "collect.db"
    make_database(db)
    plane = DataPlane(f"sqlite+aiosqlite:///{db}", workers=1)
    try:
        yield plane
    finally:
        await plane.close()


def session_options(upload: Path) -> dict[str, Any]:
    header_end = upload.read_bytes().index(b"\n") + 1
    return {
        "options": {
            "upload": str(upload),
            "stage_table": "stage_x",
            "rejection_table": "job_rejection",
            "job_id": "j",
            "encoding": ("utf-8", "utf-8"),
            "delimiter": ",",
            "columns": [f"h{i}" for i in range(COLUMNS)],
            "max_field_bytes": 1 << 20,
        },
        "start": {"offset": header_end, "line": 2, "records": 0},
    }


STAGE = {"on_error": "abort", "max_errors": 0, "rejected": 0}


def export_options(
    table: str,
    out: Path,
    *,
    projection: list[int] | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An export session of ``table`` to ``out``: every column unless ``projection``."""
    return {
        "table": table,
        "columns": [f"h{i}" for i in range(COLUMNS)],
        "projection": list(range(COLUMNS)) if projection is None else projection,
        "filters": filters or [],
        "path": str(out),
        "gzipped": False,
    }


async def test_chunks_commit_with_their_checkpoint_and_read_everything_once(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    db = tmp_path / "collect.db"
    setup = session_options(upload)
    position = setup["start"]
    chunks = 0
    async with plane.import_session(**setup["options"]) as feed:
        while True:
            staged = await feed.stage(position=position, max_records=3_000, **STAGE)
            assert staged["records"] <= 3_000
            assert await feed.commit(CHECKPOINT, [str(staged["next"])])
            chunks += 1
            position = staged["next"]
            assert count(db, "SELECT count(*) FROM stage_x") == position["records"]
            if staged["at_end"]:
                break
    assert chunks >= 7
    with sqlite3.connect(db) as conn:
        rows = [list(r) for r in conn.execute("SELECT * FROM stage_x ORDER BY _row")]
    assert [r[1:] for r in rows] == list(responses(20_000, seed=21))


def needs_quotes(value: str | None) -> bool:
    return value is not None and any(c in value for c in ',"\r\n')


def quote_bits(row: list[str | None]) -> int:
    """Which fields of ``row`` CSV quotes, as the service keeps it: bit i for field i."""
    return sum(1 << i for i, value in enumerate(row) if needs_quotes(value))


async def test_a_staging_table_that_keeps_quote_bits_gets_each_rows_own(
    plane: DataPlane, tmp_path: Path
) -> None:
    """Chunks parsed by pyarrow, by the exact reader (a bare CR in a field), and read while
    the upload still arrives: each staged row's ``_q`` says which of its fields need
    quotes, as found from the values themselves."""
    db = tmp_path / "collect.db"
    rows = [[str(v) for v in row] for row in responses(6_000, seed=8)]
    rows[4_500][5] = "a bare\rCR"  # this chunk is the exact reader's
    upload = tmp_path / "quoted.csv"
    upload.write_bytes(csv_bytes([f"h{i}" for i in range(COLUMNS)], rows))
    setup = session_options(upload)
    setup["options"]["stage_table"] = "stage_q"
    position = setup["start"]
    exact = 0
    async with plane.import_session(**setup["options"]) as feed:
        while True:
            if position["records"] < 2_000:
                staged = await feed.stage_received(
                    upto=upload.stat().st_size, position=position, max_records=700, **STAGE
                )
                assert staged is not None
            else:
                staged = await feed.stage(position=position, max_records=1_500, **STAGE)
            exact += staged["exact"]
            assert await feed.commit(CHECKPOINT, [str(staged["next"])])
            position = staged["next"]
            if staged["at_end"]:
                break
    assert exact >= 1
    with sqlite3.connect(db) as conn:
        staged_rows = [list(r) for r in conn.execute("SELECT * FROM stage_q ORDER BY _row")]
    assert [r[1:-1] for r in staged_rows] == rows
    assert [r[-1] for r in staged_rows] == [quote_bits(row) for row in rows]
    assert len({r[-1] for r in staged_rows}) > 2  # several columns need quotes, not all at once


async def test_a_checkpoint_that_applies_to_no_row_commits_nothing(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    db = tmp_path / "collect.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE job SET open = 0")  # as a claim lost or a control request waiting
    setup = session_options(upload)
    async with plane.import_session(**setup["options"]) as feed:
        await feed.stage(position=setup["start"], max_records=5_000, **STAGE)
        assert not await feed.commit(CHECKPOINT, ["x"])
    assert count(db, "SELECT count(*) FROM stage_x") == 0
    assert count(db, "SELECT checkpoint FROM job") is None


class Stop:
    """A stop request as the engine makes one: the worker stops the request in flight at its
    next statement, and the caller checks between its requests, so that one arriving while
    no request is in flight, or during a request's last statement, is not lost."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        if self.requested:
            raise WorkerInterrupted("stopped between requests")


async def import_all(feed: Any, start: dict[str, int], stop: Stop | None = None) -> None:
    """Stage and commit every chunk, each with its position as the checkpoint."""
    stop = stop or Stop()
    position = start
    while True:
        stop.check()
        staged = await feed.stage(position=position, max_records=20_000, **STAGE)
        try:
            stop.check()
            applied = await feed.commit(CHECKPOINT, [str(staged["next"]["records"])])
        except BaseException:
            await feed.rollback()
            raise
        assert applied
        position = staged["next"]
        if staged["at_end"]:
            return


def consistent(db: Path) -> int:
    """The rows staged are exactly those the committed checkpoint covers; how many."""
    with sqlite3.connect(db, timeout=1) as conn:
        conn.execute("BEGIN IMMEDIATE")  # and another writer gets the lock at once
        staged = conn.execute("SELECT count(*) FROM stage_x").fetchone()[0]
        checkpoint = conn.execute("SELECT checkpoint FROM job").fetchone()[0]
        conn.execute("ROLLBACK")
        conn.execute("DELETE FROM stage_x")
        conn.execute("UPDATE job SET checkpoint = NULL")
    assert staged == int(checkpoint or 0)
    return int(staged)


async def full_import_seconds(plane: DataPlane, db: Path, setup: dict[str, Any]) -> float:
    """How long one whole import takes on this machine now: the interrupts below land at
    random moments within it, whatever the machine's speed or load."""
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(2):  # the first also starts the worker
        started = loop.time()
        async with plane.import_session(**setup["options"]) as feed:
            await import_all(feed, setup["start"])
        times.append(loop.time() - started)
        assert consistent(db) == 20_000
    return min(times)


async def test_interrupts_at_random_moments_roll_back_the_chunk_in_flight(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    db = tmp_path / "collect.db"
    rng = random.Random(8)
    setup = session_options(upload)
    span = await full_import_seconds(plane, db, setup)
    stopped_midway = 0
    for _ in range(50):
        async with plane.import_session(**setup["options"]) as feed:
            stop = Stop()
            task = asyncio.ensure_future(import_all(feed, setup["start"], stop))
            await asyncio.sleep(rng.random() * span * 1.2)
            stop.requested = True
            feed.interrupt()
            with contextlib.suppress(WorkerInterrupted):
                await task
        staged = consistent(db)
        stopped_midway += staged < 20_000
    assert stopped_midway >= 15  # of 50: about 40 expected


async def test_an_interrupt_stops_the_request_in_flight_in_the_worker(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    db = tmp_path / "collect.db"
    setup = session_options(upload)
    holder = sqlite3.connect(db, timeout=1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the worker's chunk waits for the write lock
    try:
        async with plane.import_session(**setup["options"]) as feed:
            task = asyncio.ensure_future(
                feed.stage(position=setup["start"], max_records=5_000, **STAGE)
            )
            await asyncio.sleep(0.3)
            assert not task.done()
            feed.interrupt()
            with pytest.raises(WorkerInterrupted) as stopped:
                await asyncio.wait_for(task, 5)
            assert str(stopped.value) == "import_stage"  # raised by the worker
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert consistent(db) == 0


async def test_a_worker_connects_while_another_connection_holds_the_file_a_moment(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    """As while the server checkpoints the WAL: the worker's first statements wait."""
    db = tmp_path / "collect.db"
    setup = session_options(upload)
    async with plane.import_session(**setup["options"]):
        pass  # the worker has started
    holder = sqlite3.connect(db, timeout=1, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM stage_x")
    asyncio.get_running_loop().call_later(0.3, holder.close)  # and rolls back
    async with plane.import_session(**setup["options"]) as feed:
        staged = await feed.stage(position=setup["start"], max_records=1_000, **STAGE)
        assert await feed.commit(CHECKPOINT, [str(staged["records"])])
    assert consistent(db) == staged["records"] > 0


async def test_a_cancelled_call_waits_for_the_worker_and_rolls_back(
    plane: DataPlane, upload: Path, tmp_path: Path
) -> None:
    db = tmp_path / "collect.db"
    rng = random.Random(9)
    setup = session_options(upload)
    span = await full_import_seconds(plane, db, setup)
    stopped_midway = 0
    for _ in range(30):
        async with plane.import_session(**setup["options"]) as feed:
            task = asyncio.ensure_future(import_all(feed, setup["start"]))
            await asyncio.sleep(rng.random() * span * 1.2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stopped_midway += consistent(db) < 20_000
    assert stopped_midway >= 8  # of 30: about 25 expected


async def test_a_worker_that_dies_is_reported_and_replaced(plane: DataPlane, upload: Path) -> None:
    setup = session_options(upload)
    with pytest.raises(WorkerDied):
        async with plane.import_session(**setup["options"]) as feed:
            worker: Worker = feed._worker
            os.kill(worker._proc.pid, signal.SIGKILL)
            await feed.stage(position=setup["start"], max_records=1_000, **STAGE)
    async with plane.import_session(**setup["options"]) as feed:  # a new worker serves
        staged = await feed.stage(position=setup["start"], max_records=1_000, **STAGE)
        assert 0 < staged["records"] <= 1_000
        await feed.rollback()


async def test_a_bad_record_is_reported_with_its_line(plane: DataPlane, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b\r\n1,2\r\n3,4,5\r\n6,7\r\n")
    options = {
        **session_options(bad)["options"],
        "columns": ["a", "b"],
        "stage_table": "stage_x",
    }
    from collect_api.storage.dataplane.client import RemoteError

    async with plane.import_session(**options) as feed:
        with pytest.raises(RemoteError) as raised:
            await feed.stage(
                position={"offset": 5, "line": 2, "records": 0}, max_records=100, **STAGE
            )
    assert raised.value.kind == "CsvProblem"
    assert raised.value.details["line"] == 3 and raised.value.details["code"] == "bad_record"


def test_the_server_process_loads_no_arrow() -> None:
    """Arrow, numpy and the ADBC driver are the workers' alone: the server stays small."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, collect_api.app; print(sorted(m for m in "
            "('pyarrow', 'numpy', 'adbc_driver_sqlite') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


async def test_an_export_read_ahead_in_chunks_of_any_size_writes_every_row_once(
    plane: DataPlane, tmp_path: Path
) -> None:
    """Chunks of a fixed size, and of a size the worker picks under a cap that changes with
    every call (so that a range read ahead is sometimes used and sometimes not); sessions
    closed after a random number of chunks, a new one going on from the last result; row
    keys with gaps, one of them longer than any chunk (so that some ranges, and some halves
    of a range, hold no row): the file is always the table's rows once, in order, as
    ``csv.writer`` writes them."""
    db = tmp_path / "collect.db"
    rows = [[str(v) for v in row] for row in responses(3_000, seed=4)]
    with sqlite3.connect(db) as conn:
        names = ", ".join(f"c{i}" for i in range(COLUMNS))
        conn.executemany(f"INSERT INTO stage_x ({names}) VALUES ({', '.join('?' * COLUMNS)})", rows)
        conn.execute("DELETE FROM stage_x WHERE _row BETWEEN 1001 AND 2100 OR _row % 97 = 0")
    kept = [row for key, row in enumerate(rows, 1) if not (1001 <= key <= 2100 or key % 97 == 0)]
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerows(kept)
    rng = random.Random(5)
    out = tmp_path / "out.csv"
    options = export_options("stage_x", out)
    for fixed in (True, False):
        after, offset = 0, 0
        while after < len(rows):
            async with plane.export_session(**options) as feed:
                for _ in range(rng.randrange(1, 6)):
                    wrote = await feed.chunk(
                        after=after,
                        upto=len(rows),
                        limit=rng.choice([1, 7, 250, 1000, 5000]),
                        fixed=fixed,
                        offset=offset,
                    )
                    after, offset = wrote["last_row"], wrote["bytes"]
                    if after == len(rows):
                        break
        assert out.read_bytes() == expected.getvalue().encode("utf-8")
        out.unlink()


async def test_an_exports_checkpoint_commits_in_its_worker_only_while_its_statement_applies(
    plane: DataPlane, tmp_path: Path
) -> None:
    """Each chunk's checkpoint is committed by the worker that wrote it; one whose statement
    applies to no row (a claim lost, a control request waiting) commits nothing, leaves no
    transaction open (the test's own writes go through), and the session goes on."""
    db = tmp_path / "collect.db"
    rows = [[str(v) for v in row] for row in responses(500, seed=6)]
    with sqlite3.connect(db) as conn:
        names = ", ".join(f"c{i}" for i in range(COLUMNS))
        conn.executemany(f"INSERT INTO stage_x ({names}) VALUES ({', '.join('?' * COLUMNS)})", rows)
    out = tmp_path / "out.csv"
    async with plane.export_session(**export_options("stage_x", out)) as feed:
        first = await feed.chunk(after=0, upto=500, limit=200, fixed=True, offset=0)
        assert await feed.commit(CHECKPOINT, [str(first["last_row"])])
        assert count(db, "SELECT checkpoint FROM job") == "200"
        with sqlite3.connect(db, timeout=5) as conn:
            conn.execute("UPDATE job SET open = 0")
        second = await feed.chunk(after=200, upto=500, limit=200, fixed=True, offset=first["bytes"])
        assert not await feed.commit(CHECKPOINT, [str(second["last_row"])])
        assert count(db, "SELECT checkpoint FROM job") == "200"
        with sqlite3.connect(db, timeout=5) as conn:
            conn.execute("UPDATE job SET open = 1")
        assert await feed.commit(CHECKPOINT, [str(second["last_row"])])
        assert count(db, "SELECT checkpoint FROM job") == "400"
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerows(rows[:400])
    assert out.read_bytes() == expected.getvalue().encode("utf-8")


@pytest.mark.parametrize("bits", ["none", "kept", "some missing"])
async def test_an_export_learns_late_which_columns_need_quotes_and_writes_them_exactly(
    plane: DataPlane, tmp_path: Path, bits: str
) -> None:
    """Without quote bits, the worker reads runs of columns joined into one value until a
    value of one of them needs quotes; with them, SQLite writes each line whole, quoting the
    columns whose bits it has seen, until a row's bits name another. Here each column first
    holds such a value at a different row, some late in the table, and some values are
    NULL; exported whole, projected in another order, filtered on a column it does not
    write, and as one column, in chunks of several sizes: the file is always what
    ``csv.writer`` writes of those rows, NULL an empty field. Rows whose bits are missing
    (NULL: rows added by a job that began before bits were kept) are written alike."""
    db = tmp_path / "collect.db"
    rng = random.Random(9)
    total = 4_000
    specials = [",", '"', "\r\n", "\n", "\r", 'a "b", c']
    first_special = {0: 3_999, 1: 2_500, 2: 1, 4: 700, 6: 3_100}  # columns 3, 5, 7 never
    rows: list[list[str | None]] = []
    for key in range(1, total + 1):
        row: list[str | None] = [f"{key}-{rng.randrange(10**6)} é" for _ in range(COLUMNS)]
        for column, start in first_special.items():
            if key == start or (key > start and rng.random() < 0.05):
                row[column] = rng.choice(specials) + str(row[column])
        if rng.random() < 0.1:
            row[rng.randrange(COLUMNS)] = None
        if rng.random() < 0.02:
            row[rng.randrange(COLUMNS)] = ""
        rows.append(row)
    table = "stage_x" if bits == "none" else "stage_q"
    with sqlite3.connect(db) as conn:
        names = ", ".join(f"c{i}" for i in range(COLUMNS))
        marks = ", ".join("?" * COLUMNS)
        if bits == "none":
            conn.executemany(f"INSERT INTO stage_x ({names}) VALUES ({marks})", rows)
        else:
            conn.executemany(
                f"INSERT INTO stage_q ({names}, _q) VALUES ({marks}, ?)",
                [[*row, quote_bits(row)] for row in rows],
            )
        if bits == "some missing":
            conn.execute("UPDATE stage_q SET _q = NULL WHERE _row BETWEEN 1200 AND 1300")
    out = tmp_path / "out.csv"
    cases = [
        (list(range(COLUMNS)), [], lambda row: True),
        ([6, 0, 5, 4, 3, 1], [], lambda row: True),
        (
            [2, 7, 3],
            [{"column": "h5", "op": "contains", "value": "7"}],
            lambda r: "7" in (r[5] or ""),
        ),
        ([3], [], lambda row: True),
    ]
    for projection, filters, keep in cases:
        for limit in (97, 1_000):
            expected = io.StringIO()
            csv.writer(expected, lineterminator="\r\n").writerows(
                [
                    ["" if row[i] is None else row[i] for i in projection]
                    for row in rows
                    if keep(row)
                ]
            )
            after, offset = 0, 0
            options = export_options(table, out, projection=projection, filters=filters)
            async with plane.export_session(**options) as feed:
                while after < total:
                    wrote = await feed.chunk(
                        after=after, upto=total, limit=limit, fixed=True, offset=offset
                    )
                    after, offset = wrote["last_row"], wrote["bytes"]
            assert out.read_bytes() == expected.getvalue().encode("utf-8"), (projection, limit)
            out.unlink()


async def test_an_export_of_a_table_with_quote_bits_quotes_the_fields_they_name(
    plane: DataPlane, tmp_path: Path
) -> None:
    """With quote bits, the line is SQLite's: a field is quoted because its row's bit says
    so, and the values are not searched again. A bit set on a field that needs no quotes
    (none the service sets) quotes it anyway, still read back as the same value."""
    db = tmp_path / "collect.db"
    rows = [[f"r{key}c{i}" for i in range(COLUMNS)] for key in range(1, 101)]
    rows[9][2] = 'say "hi", bye'
    with sqlite3.connect(db) as conn:
        names = ", ".join(f"c{i}" for i in range(COLUMNS))
        conn.executemany(
            f"INSERT INTO stage_q ({names}, _q) VALUES ({', '.join('?' * COLUMNS)}, ?)",
            [[*row, quote_bits(row)] for row in rows],
        )
        conn.execute("UPDATE stage_q SET _q = _q | 32 WHERE _row = 50")
    out = tmp_path / "out.csv"
    async with plane.export_session(**export_options("stage_q", out)) as feed:
        await feed.chunk(after=0, upto=100, limit=100, fixed=True, offset=0)
    lines = out.read_bytes().split(b"\r\n")
    assert lines[9] == b'r10c0,r10c1,"say ""hi"", bye",r10c3,r10c4,r10c5,r10c6,r10c7'
    assert lines[49] == b'r50c0,r50c1,r50c2,r50c3,r50c4,"r50c5",r50c6,r50c7'
    assert list(csv.reader(io.StringIO(out.read_text(), newline=""))) == rows


async def test_a_worker_refuses_a_request_that_carries_objects_of_the_servers_libraries() -> None:
    """Only plain values cross to a worker: an object would import its module (and the
    server's libraries with it) in the worker, as a table name that was SQLAlchemy's
    ``quoted_name`` once did, slowly enough that an upload ended before its import began."""
    from sqlalchemy.sql.elements import quoted_name

    from collect_api.storage.dataplane.client import RemoteError

    worker = Worker.spawn()
    try:
        with pytest.raises(RemoteError) as raised:
            await worker.call("close", session=quoted_name("s1", quote=None))
        assert raised.value.kind == "UnpicklingError"
        assert "sqlalchemy.sql.elements.quoted_name" in str(raised.value)
        assert await worker.call("ping") == "pong"  # and it goes on answering
    finally:
        await worker.stop()


async def test_a_worker_runs_below_its_servers_priority() -> None:
    """When the cores are busy, the server's answers and a job's next step come before a
    worker's chunk: the worker asks the scheduler for less, and still takes idle cores."""
    from collect_api.storage.dataplane.serve import NICENESS

    worker = Worker.spawn()
    try:
        assert await worker.call("ping") == "pong"  # started, and past its set-up
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, ours + NICENESS)
    finally:
        await worker.stop()
