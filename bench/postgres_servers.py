"""Benchmark: Collect on PostgreSQL, one server and two, against ``psql``'s ``\\copy``.

What it measures, each Collect side on a new database of the local PostgreSQL (``--postgres``
names the server, as a libpq URL for its administrator) with fresh data dirs:

* **Import** -- ``POST /imports`` of the generated CSV (``benchlib.ensure_csv``) until
  ``GET /jobs/{id}`` says ``completed``, upload included, against
  ``psql -c "\\copy responses FROM FILE (FORMAT csv, HEADER)"`` into a new table of text
  columns in a new database, the wall time of the ``psql`` process. Alternating, ``--repeat``
  times; the figure is the ratio of the medians.
* **Export** -- ``POST /exports`` of that dataset until the last byte of its result is on disk
  (``curl -o``), against ``psql -c "\\copy (SELECT ...) TO FILE (FORMAT csv, HEADER)"`` of the
  same table, ordered as the export is.
* **One server against two** -- four imports of ``--rows / 4`` records each, submitted at
  once (``COLLECT_MAX_RUNNING_JOBS=4``): to one server, or two at a time to each of two
  servers (different node names and data dirs) on one database. The figure is the total
  records per second of two servers over one's. On a machine with few cores both share the
  same CPUs, and so does PostgreSQL: it says what a second server costs or gains here, not
  what a second host would.
* **Pause through the other server** -- two servers, one import; ``--cycles`` times, a pause
  sent through the server that does not run the job (found in the job's claim), timed until
  the answer says ``paused``; then a resume, through that same server.

Run from the repository root::

    .venv/bin/python bench/postgres_servers.py --rows 1000000 --repeat 3
    .venv/bin/python bench/postgres_servers.py --rows 20000 --repeat 1 --no-write
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import benchlib as bl

TITLE = "PostgreSQL: import, export, two servers, pause through the other server"
TARGET = 1.0
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def psql(url: str, *args: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, *args],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql {args}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new database on the server ``admin`` names (its libpq URL), dropped on leaving."""
    name = f"collect_bench_{secrets.token_hex(4)}"
    psql(admin, "-c", f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        psql(admin, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def asyncpg_url(url: str) -> str:
    return "postgresql+asyncpg" + url[len("postgresql") :]


def server_env(database: str, node: str, args: object, **settings: object) -> dict[str, str]:
    return {
        "COLLECT_DATABASE_URL": asyncpg_url(database),
        "COLLECT_NODE_NAME": node,
        **bl.settings_env(chunk_rows=getattr(args, "chunk_rows", None), **settings),
    }


def header_of(csv_path: Path) -> list[str]:
    with open(csv_path, encoding="utf-8", newline="") as f:
        return f.readline().rstrip("\r\n").split(",")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def psql_import(admin: str, csv_path: Path, rows: int) -> float:
    with fresh_database(admin) as url:
        columns = ", ".join(f"{quote(c)} text" for c in header_of(csv_path))
        psql(url, "-c", f"CREATE TABLE {bl.DATASET} ({columns})")
        t0 = time.perf_counter()
        psql(url, "-c", f"\\copy {bl.DATASET} FROM '{csv_path}' (FORMAT csv, HEADER)")
        elapsed = time.perf_counter() - t0
        count = int(psql(url, "-c", f"SELECT count(*) FROM {bl.DATASET}"))
    if count != rows:
        raise RuntimeError(f"psql imported {count} rows; expected {rows}")
    return elapsed


def psql_export(database: str, out: Path) -> float:
    """``\\copy (SELECT every column AS its header, in row order) TO out`` of the dataset."""
    found = psql(
        database, "-c", f"SELECT table_name, columns FROM dataset WHERE name = '{bl.DATASET}'"
    )
    table, columns = found.split("|", 1)
    cols = ", ".join(f"c{i} AS {quote(n)}" for i, n in enumerate(json.loads(columns)))
    query = f"SELECT {cols} FROM {quote(table)} ORDER BY _row"
    t0 = time.perf_counter()
    psql(database, "-c", f"\\copy ({query}) TO '{out}' (FORMAT csv, HEADER)")
    return time.perf_counter() - t0


def collect_export(server: bl.Server, out: Path) -> float:
    t0 = time.perf_counter()
    job = server.client.post("/exports", json={"dataset": bl.DATASET}).raise_for_status().json()
    bl.wait_job(server.client, job["id"])
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not on PATH")
    subprocess.run(
        [curl, "-sS", "--fail", "-o", str(out), f"{server.url}/jobs/{job['id']}/result"],
        check=True,
    )
    return time.perf_counter() - t0


def four_imports(servers: list[bl.Server], csv_path: Path, rows: int) -> float:
    """Four imports at once, spread over ``servers``: records per second, from the first
    upload's start to the last job seen completed."""
    jobs: list[tuple[bl.Server, str]] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        server = servers[i % len(servers)]
        job, _, _ = bl.upload(server.client, csv_path, dataset=f"part{i}")
        with lock:
            jobs.append((server, job["id"]))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(jobs) != 4:
        raise RuntimeError("an upload failed")
    for server, job_id in jobs:
        job, _ = bl.wait_job(server.client, job_id, poll_s=0.02)
        bl.completed(job, rows=rows)
    return 4 * rows / (time.perf_counter() - t0)


def runner_node(database: str, job_id: str) -> str | None:
    owner = psql(database, "-c", f"SELECT owner FROM job WHERE id = '{job_id}'")
    return owner.partition("/")[0] or None


def cross_pauses(
    servers: dict[str, bl.Server], database: str, job_id: str, rows: int, cycles: int
) -> list[float]:
    """Pause latencies, each sent through the server that does not run the job."""
    client = next(iter(servers.values())).client
    got = []
    for i in range(1, cycles + 1):
        job, _ = bl.wait_job(
            client,
            job_id,
            until=lambda j, t=rows * i // (cycles + 1): (
                bl.done(j) >= t or j["state"] in bl.TERMINAL
            ),
            poll_s=0.01,
        )
        node = runner_node(database, job_id)
        if job["state"] in bl.TERMINAL or node is None:
            break
        other = next(s for n, s in servers.items() if n != node)
        t0 = time.perf_counter()
        answer = other.client.post(f"/jobs/{job_id}/pause")
        if answer.status_code == 409:
            break
        job = answer.raise_for_status().json()
        if job["state"] != "paused":
            job, _ = bl.wait_job(other.client, job_id, until=lambda j: j["state"] == "paused")
        got.append(time.perf_counter() - t0)
        other.client.post(f"/jobs/{job_id}/resume").raise_for_status()
        bl.wait_job(
            other.client,
            job_id,
            until=lambda j, at=bl.done(job): bl.done(j) > at or j["state"] == "completed",
            poll_s=0.005,
        )
    return got


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument("--postgres", default=ADMIN_URL, help="libpq URL of an administrator")
    parser.add_argument("--cycles", type=int, default=10, help="pauses through the other server")
    args = bl.parse(parser, argv)
    if shutil.which("psql") is None:
        sys.exit("psql is not on PATH")
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    quarter = max(args.rows // 4, 1)
    quarter_path = bl.ensure_csv(args.workdir, quarter)
    load_before = bl.load()
    work = args.workdir / "postgres"

    imports: list[tuple[float, float, float]] = []
    copies: list[float] = []
    exports: list[float] = []
    copies_out: list[float] = []
    for i in range(args.repeat):
        print(f"run {i + 1}/{args.repeat}")

        def collect_side() -> None:
            with fresh_database(args.postgres) as database:
                env = server_env(database, "node-a", args)
                with bl.Server.fresh(work / "import", env=env) as server:
                    r = bl.import_csv(server, csv_path, rows=args.rows)
                    imports.append((r.total_s, r.upload_s, r.job_s))
                    print(f"  Collect import: {r.total_s:7.2f} s")
                    out = work / "collect.csv"
                    exports.append(collect_export(server, out))
                    print(f"  Collect export: {exports[-1]:7.2f} s")
                    copies_out.append(psql_export(database, work / "psql.csv"))
                    print(f"  psql \\copy TO:  {copies_out[-1]:7.2f} s")
                    if out.stat().st_size == 0:
                        raise RuntimeError("the export is empty")

        def psql_side() -> None:
            copies.append(psql_import(args.postgres, csv_path, args.rows))
            print(f"  psql \\copy FROM: {copies[-1]:7.2f} s")

        bl.alternate(i, collect_side, psql_side)

    one: list[float] = []
    two: list[float] = []
    for i in range(args.repeat):

        def one_server() -> None:
            with fresh_database(args.postgres) as database:
                env = server_env(database, "node-a", args, max_running_jobs=4)
                with bl.Server.fresh(work / "one", env=env) as server:
                    one.append(four_imports([server], quarter_path, quarter))
            print(f"  one server: {one[-1]:,.0f} records/s")

        def two_servers() -> None:
            with fresh_database(args.postgres) as database:
                a = bl.Server.fresh(
                    work / "two-a", env=server_env(database, "node-a", args, max_running_jobs=4)
                )
                b = bl.Server.fresh(
                    work / "two-b", env=server_env(database, "node-b", args, max_running_jobs=4)
                )
                with a, b:
                    two.append(four_imports([a, b], quarter_path, quarter))
            print(f"  two servers: {two[-1]:,.0f} records/s")

        bl.alternate(i, one_server, two_servers)

    pauses: list[float] = []
    with fresh_database(args.postgres) as database:
        a = bl.Server.fresh(work / "pause-a", env=server_env(database, "node-a", args))
        b = bl.Server.fresh(work / "pause-b", env=server_env(database, "node-b", args))
        with a, b:
            for _ in range(args.repeat):
                job, _, _ = bl.upload(a.client, csv_path, dataset=f"p{len(pauses)}")
                pauses += cross_pauses(
                    {"node-a": a, "node-b": b}, database, job["id"], args.rows, args.cycles
                )
                bl.wait_job(a.client, job["id"])
    if not args.keep:
        bl.remove(work)

    version = psql(args.postgres, "-c", "SHOW server_version")
    import_ratio = bl.median(r[0] for r in imports) / bl.median(copies)
    export_ratio = bl.median(exports) / bl.median(copies_out)
    scale = bl.median(two) / bl.median(one)
    p99 = bl.percentile(pauses, 99) if pauses else float("nan")
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                f"import of {args.rows:,} records into PostgreSQL through the API, upload "
                "included, against `psql \\copy FROM`",
                f"{import_ratio:.2f}×",
                f"≤ {TARGET:.1f}×",
                import_ratio <= TARGET,
            ),
            bl.Figure(
                f"export of {args.rows:,} rows from PostgreSQL through the API, download "
                "included, against `psql \\copy (SELECT …) TO`",
                f"{export_ratio:.2f}×",
                f"≤ {TARGET:.1f}×",
                export_ratio <= TARGET,
            ),
            bl.Figure(
                "four imports at once: total throughput of two servers against one",
                f"{scale:.2f}×",
            ),
            bl.Figure(
                "pause sent through the server that does not run the job: request to the "
                "answer `paused` (p99)",
                f"{bl.ms(p99)} ms",
            ),
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}; the four imports take "
            f"{quarter:,} records each. PostgreSQL {version} "
            f"on loopback, a new database for every Collect run and every `psql` run. "
            f"Collect: chunk rows {bl.chunk_rows_text(args.chunk_rows)}. Runs alternate "
            "between the sides; ratios are of the medians. Pause latencies: "
            f"{len(pauses)} pauses, median {bl.ms(bl.median(pauses)) if pauses else '-'} ms."
        ),
        body=[
            *bl.table(
                ["run", "Collect import (s)", "upload (s)", "job (s)", "psql \\copy FROM (s)"],
                [
                    (str(i), *(bl.fmt(x) for x in r), bl.fmt(c))
                    for i, (r, c) in enumerate(zip(imports, copies, strict=True), 1)
                ],
            ),
            "",
            *bl.table(
                [
                    "run",
                    "Collect export (s)",
                    "psql \\copy TO (s)",
                    "one server (rec/s)",
                    "two servers (rec/s)",
                ],
                [
                    (str(i), bl.fmt(e), bl.fmt(c), f"{o:,.0f}", f"{t:,.0f}")
                    for i, (e, c, o, t) in enumerate(
                        zip(exports, copies_out, one, two, strict=True), 1
                    )
                ],
            ),
        ],
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
