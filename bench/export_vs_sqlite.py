"""Benchmark: exporting a dataset through Collect versus the ``sqlite3`` CLI's ``-csv`` mode.

What it measures, on one dataset imported once (not timed) from the generated CSV
(``make_csv.py``, ``nasty=True``: quoted fields, embedded commas, quotes, LF/CRLF line
breaks, non-ASCII text) into a fresh server (``collect serve``) on a free loopback port:

* **Collect** -- the clock starts when ``POST /exports`` (the whole dataset, every column)
  is sent; ``GET /jobs/{id}`` is polled every 50 ms until it says ``completed``; then
  ``GET /jobs/{id}/result`` is streamed to a file on disk, and the clock stops at the
  download's last byte. The file's rows are counted (Python's ``csv`` module) and checked
  against ``--rows`` and the job's ``result.rows``.
* **sqlite3** -- ``sqlite3 -csv -header DB "SELECT c0 AS \"response_id\", ... FROM ds_<id>"
  > out.csv`` on the *same* database file the server uses (the server is idle meanwhile),
  timed as the wall time of the whole ``sqlite3`` process. The dataset's table and column
  names come from the ``dataset`` table (``table_name``; ``columns`` gives the header, column
  ``i`` is stored as ``c<i>``), and the aliases make the CLI write the same header.

Both outputs are parsed with Python's ``csv`` module and must give the same rows in the same
order (compared by a SHA-256 over the parsed rows, header included). The bytes are allowed
to differ and the difference is reported: Collect ends lines with CRLF (RFC 4180) and quotes
only fields that need it; the CLI quotes differently (for instance any field with a space or
a non-ASCII byte).

Both sides run ``--repeat`` times, alternating (A B, B A, ...); the table shows every run
plus the best and the median, and the ratio is Collect median / sqlite3 median (lower is
better; the goal is 1.3x or better, download included). ``--phases`` also splits Collect's
time into the job (``POST`` until ``completed``) and the download. The results replace the
``## Export: Collect vs sqlite3 -csv`` section of ``BENCHMARKS.md`` (other sections are
kept) unless ``--no-write`` is given.

Run from the repository root::

    .venv/bin/python bench/export_vs_sqlite.py --rows 1000000 --repeat 3 --phases
    .venv/bin/python bench/export_vs_sqlite.py --rows 100000 --repeat 1 --no-write

The CSV is generated once into ``--workdir`` (default ``bench/out``, git-ignored), keyed by
rows and seed, and reused by later runs (``import_vs_sqlite.py`` shares it). The server's
data dir, the exported files and the server log are deleted at the end unless ``--keep`` is
given.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_vs_sqlite import (
    LOG_PROBLEM,
    command_line,
    ensure_csv,
    fmt,
    free_port,
    machine,
    remove,
    seconds_between,
    server_command,
    stop,
    wait_healthy,
)

REPO = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Export: Collect vs sqlite3 -csv"
GOAL_RATIO = 1.3
SEED = 0
DATASET = "responses"
POLL_S = 0.05
JOB_TIMEOUT_S = 3600.0
DOWNLOAD_CHUNK = 1 << 20
TERMINAL = {"completed", "failed", "terminated"}


@dataclass
class Digest:
    """What a CSV file parses to: data rows (header excluded) and a hash over every row."""

    rows: int
    sha256: str  # of the parsed rows
    raw_sha256: str  # of the bytes
    size: int
    crlf: int  # line endings written as CRLF (inside quoted fields too)
    bare_lf: int  # line endings written as a bare LF


@dataclass
class CollectRun:
    total_s: float
    job_s: float  # POST sent -> job seen completed
    download_s: float  # job seen completed -> last byte on disk
    queue_s: float | None  # server clock: created_at -> started_at
    run_s: float | None  # server clock: started_at -> finished_at
    digest: Digest


@dataclass
class SqliteRun:
    total_s: float
    digest: Digest


@dataclass
class Table:
    name: str
    columns: list[str]
    import_job: str


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    log_path: Path
    db_path: Path
    log_problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def digest_csv(path: Path) -> Digest:
    """Parse ``path`` as CSV and hash its rows; count a few byte-level traits."""
    h = hashlib.sha256()
    rows = -1  # the header is not a data row
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            h.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
            rows += 1
    data = path.read_bytes()
    crlf = data.count(b"\r\n")
    return Digest(
        rows=max(rows, 0),
        sha256=h.hexdigest(),
        raw_sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        crlf=crlf,
        bare_lf=data.count(b"\n") - crlf,
    )


def start_server(run_dir: Path, chunk_rows: int | None) -> Server:
    remove(run_dir)
    run_dir.mkdir(parents=True)
    data_dir = (run_dir / "data").resolve()
    db_path = data_dir / "collect.db"
    env = {
        **os.environ,
        "COLLECT_DATA_DIR": str(data_dir),
        "COLLECT_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
    }
    if chunk_rows is not None:
        env["COLLECT_CHUNK_ROWS"] = str(chunk_rows)
    else:
        env.pop("COLLECT_CHUNK_ROWS", None)
    port = free_port()
    log_path = run_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            server_command(port), cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=None)
    try:
        wait_healthy(client, proc, log_path)
    except BaseException:
        client.close()
        stop(proc)
        raise
    return Server(proc=proc, client=client, log_path=log_path, db_path=db_path)


def stop_server(server: Server) -> None:
    server.client.close()
    stop(server.proc)
    server.log_problems = [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if LOG_PROBLEM.search(line)
    ]


def wait_job(client: httpx.Client, job_id: str) -> tuple[dict[str, Any], float]:
    """Poll until the job is in a terminal state; the job and when that was seen."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["state"] in TERMINAL:
            return job, time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} not finished after {JOB_TIMEOUT_S} s")
        time.sleep(POLL_S)


def import_dataset(server: Server, csv_path: Path, rows: int) -> Table:
    """Import the CSV (not timed) and find the dataset's table and header in the database."""
    with open(csv_path, "rb") as f:
        response = server.client.post(
            "/imports",
            files={"file": (csv_path.name, f, "text/csv")},
            data={"dataset": DATASET},
        )
    if response.status_code != 202:
        raise RuntimeError(f"POST /imports: {response.status_code} {response.text}")
    job_id = response.json()["id"]
    job, _ = wait_job(server.client, job_id)
    if job["state"] != "completed":
        raise RuntimeError(f"import {job_id} ended {job['state']}: {job.get('error')}")
    with closing(sqlite3.connect(f"{server.db_path.as_uri()}?mode=ro", uri=True)) as db:
        found = db.execute(
            "SELECT table_name, columns, row_count FROM dataset WHERE name = ?", (DATASET,)
        ).fetchone()
    if found is None:
        raise RuntimeError(f"dataset {DATASET!r} not in the dataset table")
    table, columns_json, row_count = found
    if row_count != rows:
        raise RuntimeError(f"dataset has {row_count} rows; expected {rows}")
    if table != f"ds_{job_id}":
        print(f"  note: dataset table is {table}, not ds_{job_id}", flush=True)
    return Table(name=table, columns=json.loads(columns_json), import_job=job_id)


def select_sql(table: Table) -> str:
    """The CLI's query: every column, aliased to its header name so the header matches."""

    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    cols = ", ".join(f"c{i} AS {quote(name)}" for i, name in enumerate(table.columns))
    return f"SELECT {cols} FROM {quote(table.name)}"


# --------------------------------------------------------------------------- the two sides


def run_collect(server: Server, rows: int, out_path: Path) -> CollectRun:
    remove(out_path)
    client = server.client
    t0 = time.perf_counter()
    response = client.post("/exports", json={"dataset": DATASET})
    if response.status_code != 202:
        raise RuntimeError(f"POST /exports: {response.status_code} {response.text}")
    job_id = response.json()["id"]
    job, t_done = wait_job(client, job_id)
    if job["state"] != "completed":
        raise RuntimeError(f"export {job_id} ended {job['state']}: {job.get('error')}")
    with client.stream("GET", f"/jobs/{job_id}/result") as download:
        if download.status_code != 200:
            download.read()
            raise RuntimeError(f"GET result: {download.status_code} {download.text}")
        with open(out_path, "wb") as f:
            for block in download.iter_raw(DOWNLOAD_CHUNK):
                f.write(block)
    t_end = time.perf_counter()
    digest = digest_csv(out_path)
    result = job.get("result") or {}
    if digest.rows != rows or result.get("rows") != rows or result.get("bytes") != digest.size:
        raise RuntimeError(
            f"Collect export has {digest.rows} rows / {digest.size} bytes; job says "
            f"{result.get('rows')} / {result.get('bytes')}; expected {rows} rows"
        )
    return CollectRun(
        total_s=t_end - t0,
        job_s=t_done - t0,
        download_s=t_end - t_done,
        queue_s=seconds_between(job.get("created_at"), job.get("started_at")),
        run_s=seconds_between(job.get("started_at"), job.get("finished_at")),
        digest=digest,
    )


def run_sqlite(db_path: Path, sql: str, rows: int, out_path: Path) -> SqliteRun:
    remove(out_path)
    cmd = ["sqlite3", "-csv", "-header", str(db_path), sql]
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=False)
        elapsed = time.perf_counter() - t0
    err = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0 or err:
        raise RuntimeError(f"sqlite3 failed ({done.returncode}): {err}")
    digest = digest_csv(out_path)
    if digest.rows != rows:
        raise RuntimeError(f"sqlite3 wrote {digest.rows} rows; expected {rows}")
    return SqliteRun(total_s=elapsed, digest=digest)


# --------------------------------------------------------------------------- reporting


def build_table(collect: list[CollectRun], lite: list[SqliteRun], phases: bool) -> list[str]:
    head = ["run", "Collect total (s)", "sqlite3 (s)", "ratio"]
    if phases:
        head[2:2] = ["job (s)", "download (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, c: float, s: float, job: float, down: float) -> str:
        cells = [label, fmt(c), fmt(s), f"{c / s:.2f}x"]
        if phases:
            cells[2:2] = [fmt(job), fmt(down)]
        return "| " + " | ".join(cells) + " |"

    for i, (c, s) in enumerate(zip(collect, lite, strict=True), 1):
        lines.append(row(str(i), c.total_s, s.total_s, c.job_s, c.download_s))
    for name, pick in (("best", min), ("median", statistics.median)):
        lines.append(
            row(
                f"**{name}**",
                pick([c.total_s for c in collect]),
                pick([s.total_s for s in lite]),
                pick([c.job_s for c in collect]),
                pick([c.download_s for c in collect]),
            )
        )
    return lines


def compare(
    collect: list[CollectRun], lite: list[SqliteRun], source_sha256: str
) -> tuple[bool, str]:
    """Whether every output parsed to the same rows, and sentences on how the bytes differ."""
    digests = [r.digest for r in collect] + [r.digest for r in lite]
    same_rows = len({d.sha256 for d in digests}) == 1
    c, s = collect[0].digest, lite[0].digest
    if all(r.digest.raw_sha256 == source_sha256 for r in collect):
        source_note = " Every Collect export is byte-for-byte the CSV that was imported."
    else:
        source_note = " Collect's exports are not byte-identical to the CSV that was imported."
    if c.size == s.size and c.sha256 == s.sha256 and c.crlf == s.crlf:
        byte_note = "The files are also the same size with the same line endings."
    else:
        byte_note = (
            f"The bytes differ: Collect {c.size / 1e6:.1f} MB with {c.crlf:,} CRLF and "
            f"{c.bare_lf:,} bare LF (records end with CRLF); sqlite3 {s.size / 1e6:.1f} MB "
            f"with {s.crlf:,} CRLF and {s.bare_lf:,} bare LF (`-csv` ends records with LF, "
            "and quotes every field holding a space or non-ASCII text, which Collect leaves "
            "unquoted). Line breaks inside fields are kept as they were by both."
        )
    return same_rows, byte_note + source_note


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), keeping the others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION_TITLE), None)
    if start is None:
        body = text.rstrip("\n") + "\n\n" + section
    else:
        end, fenced = len(lines), False
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,2} ", lines[i]):
                end = i
                break
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:]).strip("\n")
        body = (before + "\n\n" if before else "") + section + ("\n" + after if after else "")
    path.write_text(body.rstrip("\n") + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (default 1e6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "bench" / "out", help="default bench/out"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir, files and log")
    parser.add_argument(
        "--phases", action="store_true", help="split Collect's time into job and download"
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="COLLECT_CHUNK_ROWS for the server"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    if shutil.which("sqlite3") is None:
        parser.error("the sqlite3 CLI is not on PATH")

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = ensure_csv(workdir, args.rows, SEED)
    run_dir = workdir / "export-run"
    out_dir = run_dir / "downloads"

    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    collect: list[CollectRun] = []
    lite: list[SqliteRun] = []
    print("starting a server and importing the CSV (not timed) ...", flush=True)
    server = start_server(run_dir, args.chunk_rows)
    try:
        t0 = time.perf_counter()
        table = import_dataset(server, csv_path, args.rows)
        print(
            f"  imported {args.rows:,} rows into {table.name} in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        sql = select_sql(table)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i in range(args.repeat):
            collect_out = out_dir / f"collect-run{i + 1}.csv"
            sqlite_out = out_dir / f"sqlite-run{i + 1}.csv"

            def side_a(out: Path = collect_out) -> None:
                r = run_collect(server, args.rows, out)
                collect.append(r)
                print(
                    f"  Collect: {r.total_s:7.2f} s (job {r.job_s:.2f} + download "
                    f"{r.download_s:.2f})",
                    flush=True,
                )

            def side_b(out: Path = sqlite_out) -> None:
                r = run_sqlite(server.db_path, sql, args.rows, out)
                lite.append(r)
                print(f"  sqlite3: {r.total_s:7.2f} s", flush=True)

            order: list[Callable[[], None]] = [side_a, side_b] if i % 2 == 0 else [side_b, side_a]
            print(f"run {i + 1}/{args.repeat}", flush=True)
            for side in order:
                side()
            if not args.keep:
                remove(collect_out)
                remove(sqlite_out)
    finally:
        stop_server(server)
    problems = server.log_problems
    for line in problems[:10]:
        print(f"    server log: {line}", flush=True)
    if not args.keep:
        remove(run_dir)

    source_sha256 = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    same_rows, byte_note = compare(collect, lite, source_sha256)
    if not same_rows:
        raise RuntimeError("the outputs do not parse to the same rows: " + byte_note)
    c_best, c_med = min(r.total_s for r in collect), statistics.median(r.total_s for r in collect)
    s_best, s_med = min(r.total_s for r in lite), statistics.median(r.total_s for r in lite)
    ratio = c_med / s_med
    info = machine()
    chunk = str(args.chunk_rows) if args.chunk_rows is not None else "default (5000)"
    verdict = "met" if ratio <= GOAL_RATIO else "not met"
    table_lines = build_table(collect, lite, args.phases)
    size_mb = collect[0].digest.size / 1e6
    rates = (
        f"Rows/s (median): Collect {args.rows / c_med:,.0f}, sqlite3 {args.rows / s_med:,.0f}; "
        f"export {size_mb:.1f} MB."
    )
    verified = (
        f"Every output parsed (Python `csv`) to the same {args.rows:,} rows plus header "
        f"(SHA-256 of the parsed rows `{collect[0].digest.sha256[:16]}…`). {byte_note}"
    )
    phase_line = ""
    if args.phases:
        job = statistics.median(r.job_s for r in collect)
        down = statistics.median(r.download_s for r in collect)
        queue = [r.queue_s for r in collect if r.queue_s is not None]
        run = [r.run_s for r in collect if r.run_s is not None]
        phase_line = (
            f"Collect phases (median): job {job:.2f} s ({job / c_med:.0%}), download "
            f"{down:.2f} s ({down / c_med:.0%}); server clock: queued "
            f"{fmt(statistics.median(queue) if queue else None)} s, run "
            f"{fmt(statistics.median(run) if run else None)} s."
        )

    print()
    print("\n".join(table_lines))
    print()
    print(f"Collect: best {c_best:.2f} s, median {c_med:.2f} s")
    print(f"sqlite3: best {s_best:.2f} s, median {s_med:.2f} s")
    print(
        f"Ratio (Collect median / sqlite3 median): {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict})"
    )
    print(rates)
    if phase_line:
        print(phase_line)
    print(verified)
    if problems:
        print(f"server log problems ({len(problems)} lines), e.g.: {problems[0]}")

    if not args.no_write:
        section = "\n".join(
            [
                SECTION_TITLE,
                "",
                f"Date: {dt.date.today().isoformat()}",
                "",
                f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}, "
                f"Python {info['python']}, sqlite3 CLI {info['sqlite_cli']} "
                f"(server's SQLite library {info['sqlite_python']}). "
                f"1-minute load average at the start: {load_before:.2f}, at the end: "
                f"{os.getloadavg()[0]:.2f}.",
                "",
                "Command (from the repository root):",
                "",
                "```sh",
                command_line(),
                "```",
                "",
                f"Input: a dataset of {args.rows:,} rows imported once (not timed) from "
                f"`make_csv.py` output (seed {SEED}, nasty: quoted fields, embedded newlines, "
                f"non-ASCII) into a fresh server, chunk rows {chunk}. Collect: timed from "
                "`POST /exports` (whole dataset, all columns, no gzip) through polling "
                "`GET /jobs/{id}` every 50 ms until `completed`, to the last byte of "
                "`GET /jobs/{id}/result` streamed to disk. sqlite3: `sqlite3 -csv -header DB "
                f'"SELECT c0 AS \\"response_id\\", … FROM ds_<job id>" > out.csv` on the same '
                "database file (the server idle), wall time of the process. Runs alternate "
                "between the sides.",
                "",
                *table_lines,
                "",
                f"Ratio (Collect median / sqlite3 median): **{ratio:.2f}x**. {rates}",
                "",
                *([phase_line, ""] if phase_line else []),
                verified,
                "",
                f"Goal: {GOAL_RATIO}x or better, download included: **{verdict}**.",
                "",
            ]
        )
        target = REPO / "BENCHMARKS.md"
        write_section(target, section)
        print(f"updated {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
