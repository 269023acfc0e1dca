"""Benchmark: exporting a dataset through Collect versus the ``sqlite3`` CLI's ``-csv`` mode.

What it measures, on one dataset imported once (not timed) from the generated CSV
(``make_csv.py``, ``nasty=True``: quoted fields, embedded commas, quotes, LF/CRLF line
breaks, non-ASCII text) into a fresh server (``collect serve``) on a free loopback port:

* **Collect** -- the clock starts when ``POST /exports`` (the whole dataset, every column)
  is sent; ``GET /jobs/{id}`` is polled every 50 ms until it says ``completed``; then
  ``GET /jobs/{id}/result`` is downloaded to a file on disk with ``curl``, and the clock
  stops at the download's last byte. The file's rows are counted (Python's ``csv``
  module) and checked against ``--rows`` and the job's ``result.rows``.
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

Both sides run ``--repeat`` times, alternating (A B, B A, ...). The figure is Collect's
median over sqlite3's median (target 1.0x or better, download included); Collect's time is
also split into the job (``POST`` until ``completed``) and the download.

Run from the repository root::

    .venv/bin/python bench/export_vs_sqlite.py --rows 1000000 --repeat 3
    .venv/bin/python bench/export_vs_sqlite.py --rows 100000 --repeat 1 --no-write
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

TITLE = "Export: Collect vs sqlite3 -csv"
TARGET = 1.0
DOWNLOAD_CHUNK = 1 << 20


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


def dataset_table(server: bl.Server, rows: int) -> Table:
    """The dataset's table and header, as the server's database holds them."""
    with closing(sqlite3.connect(f"{server.db_path.as_uri()}?mode=ro", uri=True)) as db:
        found = db.execute(
            "SELECT table_name, columns, row_count FROM dataset WHERE name = ?", (bl.DATASET,)
        ).fetchone()
    if found is None:
        raise RuntimeError(f"dataset {bl.DATASET!r} not in the dataset table")
    table, columns_json, row_count = found
    if row_count != rows:
        raise RuntimeError(f"dataset has {row_count} rows; expected {rows}")
    return Table(name=table, columns=json.loads(columns_json))


def select_sql(table: Table) -> str:
    """The CLI's query: every column, aliased to its header name so the header matches."""

    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    cols = ", ".join(f"c{i} AS {quote(name)}" for i, name in enumerate(table.columns))
    return f"SELECT {cols} FROM {quote(table.name)}"


DOWNLOADER = "`curl -o`" if shutil.which("curl") else "httpx"


def download(server: bl.Server, path: str, out_path: Path) -> None:
    """``GET path`` to ``out_path``, with ``curl`` as a user would (Python's ``httpx`` where
    there is no ``curl``: it spends more time than the server)."""
    curl = shutil.which("curl")
    if curl is not None:
        done = subprocess.run(
            [curl, "-sS", "--fail-with-body", "-o", str(out_path), server.url + path],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"GET result: curl {done.returncode} {done.stderr} {done.stdout}")
        return
    with server.client.stream("GET", path) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"GET result: {response.status_code} {response.text}")
        with open(out_path, "wb") as f:
            for block in response.iter_raw(DOWNLOAD_CHUNK):
                f.write(block)


_EXPORT_LINE = re.compile(
    r"wrote (?P<rows>\d+) rows in (?P<chunks>\d+) chunks in (?P<seconds>[\d.]+) s: reading "
    r"and writing (?P<write>[\d.]+) s, committing (?P<commit>[\d.]+) s, making the file "
    r"durable (?P<durable>[\d.]+) s"
)


def export_lines(log: str) -> list[dict[str, float]]:
    """Each export run's ``collect.exports`` summary in the server's log."""
    return [{k: float(v) for k, v in m.groupdict().items()} for m in _EXPORT_LINE.finditer(log)]


def run_collect(server: bl.Server, rows: int, out_path: Path) -> CollectRun:
    bl.remove(out_path)
    client = server.client
    t0 = time.perf_counter()
    response = client.post("/exports", json={"dataset": bl.DATASET})
    if response.status_code != 202:
        raise RuntimeError(f"POST /exports: {response.status_code} {response.text}")
    job, t_done = bl.wait_job(client, response.json()["id"])
    bl.completed(job, rows=rows)
    download(server, f"/jobs/{job['id']}/result", out_path)
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
        queue_s=bl.seconds_between(job.get("created_at"), job.get("started_at")),
        run_s=bl.seconds_between(job.get("started_at"), job.get("finished_at")),
        digest=digest,
    )


def run_sqlite(db_path: Path, sql: str, rows: int, out_path: Path) -> SqliteRun:
    bl.remove(out_path)
    cmd = ["sqlite3", "-csv", "-header", str(db_path), sql]
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        finished = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=False)
        elapsed = time.perf_counter() - t0
    err = finished.stderr.decode(errors="replace").strip()
    if finished.returncode != 0 or err:
        raise RuntimeError(f"sqlite3 failed ({finished.returncode}): {err}")
    digest = digest_csv(out_path)
    if digest.rows != rows:
        raise RuntimeError(f"sqlite3 wrote {digest.rows} rows; expected {rows}")
    return SqliteRun(total_s=elapsed, digest=digest)


def compare(collect: list[CollectRun], lite: list[SqliteRun], source_sha256: str) -> str:
    """Sentences on how the bytes differ; raises unless every output parsed to the same
    rows."""
    digests = [r.digest for r in collect] + [r.digest for r in lite]
    if len({d.sha256 for d in digests}) != 1:
        raise RuntimeError("the outputs do not parse to the same rows")
    c, s = collect[0].digest, lite[0].digest
    if all(r.digest.raw_sha256 == source_sha256 for r in collect):
        source_note = " Every Collect export is byte-for-byte the CSV that was imported."
    else:
        source_note = " Collect's exports are not byte-identical to the CSV that was imported."
    if c.size == s.size and c.crlf == s.crlf:
        byte_note = "The files are also the same size with the same line endings."
    else:
        byte_note = (
            f"The bytes differ: Collect {c.size / 1e6:.1f} MB with {c.crlf:,} CRLF and "
            f"{c.bare_lf:,} bare LF (records end with CRLF); sqlite3 {s.size / 1e6:.1f} MB "
            f"with {s.crlf:,} CRLF and {s.bare_lf:,} bare LF (`-csv` ends records with LF, "
            "and quotes every field holding a space or non-ASCII text, which Collect leaves "
            "unquoted). Line breaks inside fields are kept as they were by both."
        )
    return (
        f"Every output parsed (Python `csv`) to the same rows plus header (SHA-256 of the "
        f"parsed rows `{c.sha256[:16]}…`). {byte_note}{source_note}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = bl.parse(bl.arguments(__doc__, rows=1_000_000), argv)
    if shutil.which("sqlite3") is None:
        sys.exit("the sqlite3 CLI is not on PATH")
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    run_dir = args.workdir / "export-run"
    out_dir = run_dir / "downloads"
    load_before = bl.load()

    collect: list[CollectRun] = []
    lite: list[SqliteRun] = []
    print("starting a server and importing the CSV (not timed) ...")
    with bl.Server.fresh(run_dir, env=bl.settings_env(chunk_rows=args.chunk_rows)) as server:
        imported = bl.import_csv(server, csv_path, rows=args.rows)
        print(f"  imported {args.rows:,} rows in {imported.total_s:.1f} s")
        sql = select_sql(dataset_table(server, args.rows))
        out_dir.mkdir(parents=True, exist_ok=True)
        for i in range(args.repeat):
            collect_out = out_dir / f"collect-run{i + 1}.csv"
            sqlite_out = out_dir / f"sqlite-run{i + 1}.csv"

            def collect_side(out: Path = collect_out) -> None:
                r = run_collect(server, args.rows, out)
                collect.append(r)
                print(
                    f"  Collect: {r.total_s:7.2f} s (job {r.job_s:.2f} + download "
                    f"{r.download_s:.2f})"
                )

            def sqlite_side(out: Path = sqlite_out, db: Path = server.db_path) -> None:
                r = run_sqlite(db, sql, args.rows, out)
                lite.append(r)
                print(f"  sqlite3: {r.total_s:7.2f} s")

            print(f"run {i + 1}/{args.repeat}")
            bl.alternate(i, collect_side, sqlite_side)
            if not args.keep:
                bl.remove(collect_out)
                bl.remove(sqlite_out)
    for line in server.problems()[:10]:
        print(f"server log: {line}")
    spent = export_lines(server.log_text())
    if not args.keep:
        bl.remove(run_dir)

    verified = compare(collect, lite, hashlib.sha256(csv_path.read_bytes()).hexdigest())
    c_med = bl.median(r.total_s for r in collect)
    s_med = bl.median(r.total_s for r in lite)
    ratio = c_med / s_med
    job = bl.median(r.job_s for r in collect)
    down = bl.median(r.download_s for r in collect)
    run_s = bl.median(r.run_s for r in collect if r.run_s is not None)
    queue_s = bl.median(r.queue_s for r in collect if r.queue_s is not None)
    runs = bl.versus_rows(
        [(r.total_s, r.job_s, r.download_s) for r in collect], [r.total_s for r in lite]
    )
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                f"export of {args.rows:,} rows through the API, download included, against "
                "`sqlite3 -csv`",
                f"{ratio:.2f}×",
                f"≤ {TARGET:.1f}×",
                ratio <= TARGET,
            )
        ],
        load_before=load_before,
        method=(
            f"Input: a dataset of {args.rows:,} records imported once (not timed) from "
            f"{bl.input_line(args.rows, csv_path)} into a fresh server, chunk rows "
            f"{bl.chunk_rows_text(args.chunk_rows)}. Collect: timed from `POST /exports` "
            "(whole dataset, all columns, no gzip) through polling `GET /jobs/{id}` every "
            "50 ms until `completed`, to the last byte of `GET /jobs/{id}/result` written to "
            f"disk by {DOWNLOADER}. "
            'sqlite3: `sqlite3 -csv -header DB "SELECT c0 AS \\"response_id\\", … '
            'FROM ds_<job id>" > out.csv` on the same database file (the server idle), wall '
            "time of the process. Runs alternate between the sides; the figure is the ratio "
            f"of the medians. Rows/s (median): Collect {args.rows / c_med:,.0f}, sqlite3 "
            f"{args.rows / s_med:,.0f}. {verified}"
        ),
        body=bl.table(
            ["run", "Collect total (s)", "job (s)", "download (s)", "sqlite3 (s)", "ratio"], runs
        ),
        profile=(
            f"of Collect's {c_med:.2f} s (median), the job took {job:.2f} s "
            f"({job / c_med:.0%}) and the download {down:.2f} s ({down / c_med:.0%}); on the "
            f"server's clock the job was queued {queue_s:.2f} s and ran {run_s:.2f} s."
            + (
                f" The server's `collect.exports` lines (median of the runs): "
                f"{bl.median(e['chunks'] for e in spent):.0f} chunks (COLLECT_CHUNK_ROWS caps "
                f"a chunk's rows) in {bl.median(e['seconds'] for e in spent):.2f} s, of which "
                f"the worker reading, filtering, encoding and writing "
                f"{bl.median(e['write'] for e in spent):.2f} s (two threads, on both cores), "
                f"the chunks' commits {bl.median(e['commit'] for e in spent):.2f} s, and making "
                f"the file durable {bl.median(e['durable'] for e in spent):.2f} s. "
                "A dataset table keeps each row's quote bits (which of its fields need "
                "quotes, found as it was imported), so the worker's query has SQLite write "
                "each line whole, CRLF included, quoting only the columns whose bits it has "
                "seen: one value a row, and nothing left to encode in the worker. On SQLite "
                "the worker that writes a chunk also commits its checkpoint (one statement, "
                "compiled once a run); jemalloc keeps freed pages while an export runs, and "
                "each chunk's bytes start for disk as they are written. The snapshot's row "
                "count is the dataset's own, not counted again. Measured in one process on "
                "the same 1,000,000 rows, ranges of 10,000, one thread, 2 AMD EPYC cores, "
                "2026-12-04: the line query 0.93-1.4 s of CPU, of which reading the rows' "
                "keys alone 0.10-0.15 s and one column 0.24-0.4 s; the quoting and the "
                "line's checks were within the noise of the plain concatenation (0.63-1.2 "
                "s). What is left is SQLite reading the records, on two threads that fill "
                "both cores."
                if spent
                else ""
            )
        ),
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
