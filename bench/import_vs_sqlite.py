"""Benchmark: importing a CSV through Collect versus the ``sqlite3`` CLI's ``.import``.

What it measures, on the same generated CSV (``benchlib.ensure_csv``):

* **Collect** -- a fresh server (``collect serve``) on a free loopback port with a fresh data
  dir and database. The clock starts when the upload starts (httpx streams the file from disk
  as ``multipart/form-data`` to ``POST /imports``) and stops when ``GET /jobs/{id}``, polled
  every 50 ms, says ``completed``; the job's ``rows_imported`` is checked against ``--rows``.
  Server start-up is not timed.
* **sqlite3** -- ``sqlite3 fresh.db ".mode csv" ".import --csv FILE responses"`` into a new
  database file, with the CLI's default PRAGMAs (rollback journal ``delete``, ``synchronous``
  FULL), timed as the wall time of the whole ``sqlite3`` process; ``count(*)`` is checked.

Both sides run ``--repeat`` times, alternating (A B, B A, ...) so that they share the
machine's noise. The figure is Collect's median over sqlite3's median (target 1.0x or
better, aim 0.8x, upload included). Collect's time is also split into the upload (until
``POST`` returns) and the job (``POST`` return until ``completed``), and the server's
``collect.imports`` log line of the median run says where the job's time went.

Run from the repository root::

    .venv/bin/python bench/import_vs_sqlite.py --rows 1000000 --repeat 3
    .venv/bin/python bench/import_vs_sqlite.py --rows 100000 --chunk-rows 20000 --no-write
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

TITLE = "Import: Collect vs sqlite3 .import"
TARGET, AIM = 1.0, 0.8


@dataclass
class SqliteRun:
    total_s: float
    journal_mode: str
    synchronous: str


def run_sqlite(csv_path: Path, rows: int, db_path: Path) -> SqliteRun:
    for suffix in ("", "-journal", "-wal", "-shm"):
        bl.remove(Path(f"{db_path}{suffix}"))
    if '"' in str(csv_path):
        raise ValueError(f"path {csv_path} contains a double quote")
    cmd = ["sqlite3", str(db_path), ".mode csv", f'.import --csv "{csv_path}" {bl.DATASET}']
    t0 = time.perf_counter()
    finished = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if finished.returncode != 0 or finished.stderr.strip():
        raise RuntimeError(f"sqlite3 failed ({finished.returncode}): {finished.stderr.strip()}")
    with sqlite3.connect(db_path) as db:
        count = db.execute(f"SELECT count(*) FROM {bl.DATASET}").fetchone()[0]
    if count != rows:
        raise RuntimeError(f"sqlite3 imported {count} rows; expected {rows}")
    # A new CLI connection reports the defaults the import ran with.
    pragmas = subprocess.run(
        ["sqlite3", str(db_path), "PRAGMA journal_mode;", "PRAGMA synchronous;"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    sync_names = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}
    return SqliteRun(
        total_s=elapsed,
        journal_mode=pragmas[0] if pragmas else "?",
        synchronous=sync_names.get(pragmas[1], pragmas[1]) if len(pragmas) > 1 else "?",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = bl.parse(bl.arguments(__doc__, rows=1_000_000), argv)
    if shutil.which("sqlite3") is None:
        sys.exit("the sqlite3 CLI is not on PATH")
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    load_before = bl.load()

    collect: list[bl.ImportRun] = []
    profiles: list[bl.ImportProfile | None] = []
    lite: list[SqliteRun] = []
    problems: list[str] = []
    for i in range(args.repeat):
        run_dir = args.workdir / f"import-run{i + 1}"
        db_path = args.workdir / f"sqlite-run{i + 1}.db"

        def collect_side(run_dir: Path = run_dir) -> None:
            env = bl.settings_env(chunk_rows=args.chunk_rows)
            with bl.Server.fresh(run_dir, env=env) as server:
                r = bl.import_csv(server, csv_path, rows=args.rows)
            collect.append(r)
            profiles.append(server.import_profiles().get(r.job_id))
            problems.extend(server.problems())
            print(f"  Collect: {r.total_s:7.2f} s (upload {r.upload_s:.2f} + job {r.job_s:.2f})")

        def sqlite_side(db_path: Path = db_path) -> None:
            r = run_sqlite(csv_path, args.rows, db_path)
            lite.append(r)
            print(f"  sqlite3: {r.total_s:7.2f} s")

        print(f"run {i + 1}/{args.repeat}")
        bl.alternate(i, collect_side, sqlite_side)
        if not args.keep:
            for path in (run_dir, db_path, Path(f"{db_path}-journal")):
                bl.remove(path)

    c_med = bl.median(r.total_s for r in collect)
    s_med = bl.median(r.total_s for r in lite)
    ratio = c_med / s_med
    runs = bl.versus_rows(
        [(r.total_s, r.upload_s, r.job_s) for r in collect], [r.total_s for r in lite]
    )
    # The profile of the run whose total is the median one (the middle, by total).
    middle = sorted(range(len(collect)), key=lambda k: collect[k].total_s)[len(collect) // 2]
    profile = profiles[middle]
    server_clock = bl.median(r.run_s for r in collect if r.run_s is not None)
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                f"import of {args.rows:,} records through the API, upload included, against "
                "`sqlite3 .import`",
                f"{ratio:.2f}×",
                f"≤ {TARGET:.1f}× (aim {AIM:.1f}×)",
                ratio <= TARGET,
            )
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}. Collect: a fresh server for each "
            f"run, chunk rows {bl.chunk_rows_text(args.chunk_rows)}, timed from the start of "
            "the upload (streamed from disk) until `GET /jobs/{id}`, polled every 50 ms, says "
            f"`completed`. sqlite3: `.mode csv` + `.import --csv FILE {bl.DATASET}` into a "
            f"fresh file with CLI defaults (journal_mode={lite[0].journal_mode}, "
            f"synchronous={lite[0].synchronous}; Collect uses WAL + NORMAL), wall time of the "
            "process. Runs alternate between the sides; the figure is the ratio of the "
            f"medians. Rows/s (median): Collect {args.rows / c_med:,.0f}, sqlite3 "
            f"{args.rows / s_med:,.0f}. The job ran {bl.fmt(server_clock)} s on the "
            "server's clock (median)."
        ),
        body=bl.table(
            ["run", "Collect total (s)", "upload (s)", "job (s)", "sqlite3 (s)", "ratio"], runs
        ),
        profile=(
            "the server's `collect.imports` line for the median run: "
            f"{profile.describe(collect[middle].run_s)}."
            if profile
            else None
        ),
    )
    for line in sorted(set(problems))[:10]:
        print(f"server log: {line}")
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
