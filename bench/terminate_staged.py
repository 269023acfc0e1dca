"""Benchmark: how long terminating an import takes once it has staged ``--rows`` records.

A fresh server imports a generated CSV three times as long as ``--rows`` (``--file-rows``;
so that the job is still running when it is terminated). Once ``GET /jobs/{id}`` (polled
every 10 ms) shows ``--rows`` records committed to the job's staging table, the job is
terminated, in two ways, one after the other on the same server:

* **running** -- ``POST /jobs/{id}/terminate`` while the job runs: the chunk in flight is
  cancelled and rolled back, then the staging table is dropped;
* **paused** -- the job is paused first (``POST /jobs/{id}/pause`` answers once it has
  stopped), then terminated: no chunk in flight, the drop alone.

Each is timed from sending ``POST /jobs/{id}/terminate`` to its answer with the job
``terminated`` (were it still ``terminating``, until ``GET /jobs/{id}`` says so). Then the
dataset must not exist and the database must hold no staging table. The order alternates
over ``--repeat`` runs; the figure is the median of the running case (target: 1 s at most).

Run from the repository root::

    .venv/bin/python bench/terminate_staged.py --rows 1000000 --repeat 3
    .venv/bin/python bench/terminate_staged.py --rows 100000 --repeat 1 --no-write
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

TITLE = "Terminate: an import with its records staged"
TARGET_S = 1.0


@dataclass
class Run:
    how: str  # "running" or "paused"
    staged: int  # records committed when terminate was sent
    terminate_s: float
    db_mb: float  # the database file and its WAL when terminate was sent


def staging_tables(db_path: Path) -> list[str]:
    with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'stage%'"
        ).fetchall()
    return [r[0] for r in rows]


def db_mb(db_path: Path) -> float:
    files = [db_path, Path(f"{db_path}-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def terminate(server: bl.Server, csv_path: Path, *, rows: int, how: str, dataset: str) -> Run:
    client = server.client
    job, _, _ = bl.upload(client, csv_path, dataset=dataset)
    job_id = job["id"]
    job, _ = bl.wait_job(client, job_id, until=lambda j: bl.done(j) >= rows, poll_s=0.01)
    if how == "paused":
        job = client.post(f"/jobs/{job_id}/pause").raise_for_status().json()
        if job["state"] != "paused":
            raise RuntimeError(f"job {job_id} is {job['state']} after the pause's answer")
    staged, size = bl.done(job), db_mb(server.db_path)
    t0 = time.perf_counter()
    job = client.post(f"/jobs/{job_id}/terminate").raise_for_status().json()
    if job["state"] != "terminated":
        job, _ = bl.wait_job(client, job_id, until=lambda j: j["state"] == "terminated")
    took = time.perf_counter() - t0
    if client.get(f"/datasets/{dataset}").status_code != 404:
        raise RuntimeError(f"dataset {dataset} exists after its import was terminated")
    if left := staging_tables(server.db_path):
        raise RuntimeError(f"staging tables left after the terminate: {left}")
    return Run(how=how, staged=staged, terminate_s=took, db_mb=size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument(
        "--file-rows", type=int, default=None, help="records in the CSV (default: 3 × --rows)"
    )
    args = bl.parse(parser, argv)
    file_rows = args.file_rows or 3 * args.rows
    if file_rows <= args.rows:
        parser.error("--file-rows must be more than --rows")
    csv_path = bl.ensure_csv(args.workdir, file_rows)
    load_before = bl.load()

    runs: list[Run] = []
    for i in range(args.repeat):
        run_dir = args.workdir / f"terminate-run{i + 1}"
        with bl.Server.fresh(run_dir, env=bl.settings_env(chunk_rows=args.chunk_rows)) as server:

            def one(how: str, server: bl.Server = server) -> None:
                r = terminate(server, csv_path, rows=args.rows, how=how, dataset=f"ds_{how}")
                runs.append(r)
                print(f"  {how:7}: {r.staged:,} staged, terminated in {r.terminate_s:.3f} s")

            print(f"run {i + 1}/{args.repeat}")
            bl.alternate(i, lambda: one("running"), lambda: one("paused"))
        if not args.keep:
            bl.remove(run_dir)

    running = [r for r in runs if r.how == "running"]
    paused = [r for r in runs if r.how == "paused"]
    figure = bl.median(r.terminate_s for r in running)
    paused_med = bl.median(r.terminate_s for r in paused)

    def row(name: str, rs: list[Run]) -> tuple[object, ...]:
        return (
            name,
            len(rs),
            bl.spread((r.staged for r in rs), digits=0),
            bl.spread((r.db_mb for r in rs), digits=0),
            bl.spread((r.terminate_s for r in rs), digits=3),
        )

    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                f"terminate of a running import with {args.rows:,} records staged (median)",
                f"{figure:.3f} s",
                f"≤ {TARGET_S:g} s",
                figure <= TARGET_S,
            ),
            bl.Figure(
                f"terminate of a paused import with {args.rows:,} records staged (median)",
                f"{paused_med:.3f} s",
                f"≤ {TARGET_S:g} s",
                paused_med <= TARGET_S,
            ),
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(file_rows, csv_path)}, imported on a fresh server "
            f"(chunk rows {bl.chunk_rows_text(args.chunk_rows)}) into two datasets in turn. "
            f"Once at least {args.rows:,} records are committed (`GET /jobs/{{id}}` polled "
            "every 10 ms) the job is terminated while it runs, or paused and then terminated; "
            "timed from sending `POST /jobs/{id}/terminate` to its answer `terminated`. "
            "Afterwards the dataset answers 404 and no staging table is left. Median "
            "(min–max) over the runs:"
        ),
        body=bl.table(
            ["job", "runs", "records staged", "database + WAL (MB)", "terminate (s)"],
            [row("running", running), row("paused", paused)],
        ),
        profile=(
            f"a paused job, with no chunk in flight, took {paused_med:.3f} s: that is the "
            "staging table's drop; a running one also waits for its chunk in flight to roll "
            "back."
        ),
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
