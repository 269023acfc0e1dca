"""Benchmark: importing a CSV through Collect versus the ``sqlite3`` CLI's ``.import``.

What it measures, on the same generated CSV (``make_csv.py``, ``nasty=True``: quoted fields,
embedded commas, quotes, LF/CRLF line breaks, non-ASCII text):

* **Collect** -- a fresh server (``collect serve``) on a free loopback port with a fresh data
  dir and database. The clock starts when the upload starts (httpx streams the file from disk
  as ``multipart/form-data`` to ``POST /imports``) and stops when ``GET /jobs/{id}``, polled
  every 50 ms, says ``completed``. The dataset's ``row_count`` is checked against ``--rows``.
  Server start-up is not timed.
* **sqlite3** -- ``sqlite3 fresh.db ".mode csv" ".import --csv FILE responses"`` into a new
  database file, with the CLI's default PRAGMAs (rollback journal ``delete``, ``synchronous``
  FULL), timed as the wall time of the whole ``sqlite3`` process; ``count(*)`` is checked.

Both sides run ``--repeat`` times, alternating (A B, B A, ...) so that they share the
machine's noise; the table shows every run plus the best and the median, and the ratio is
Collect median / sqlite3 median (lower is better; the goal is 1.3x or better, upload
included). ``--phases`` also splits Collect's time into the upload (until ``POST`` returns)
and the job (``POST`` return until ``completed``). The results replace the
``## Import: Collect vs sqlite3 .import`` section of ``BENCHMARKS.md`` (other sections are
kept) unless ``--no-write`` is given.

Run from the repository root::

    .venv/bin/python bench/import_vs_sqlite.py --rows 1000000 --repeat 3 --phases
    .venv/bin/python bench/import_vs_sqlite.py --rows 1000000 --chunk-rows 20000 --no-write

The CSV is generated once into ``--workdir`` (default ``bench/out``, git-ignored), keyed by
rows and seed, and reused by later runs. Per-run databases and server logs are deleted after
each run unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_csv import write_responses_csv

REPO = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Import: Collect vs sqlite3 .import"
GOAL_RATIO = 1.3
SEED = 0
DATASET = "responses"
POLL_S = 0.05
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 3600.0
TERMINAL = {"completed", "failed", "terminated"}
LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|\bCRITICAL\b|Exception")


@dataclass
class CollectRun:
    total_s: float
    upload_s: float
    job_s: float
    queue_s: float | None  # server clock: created_at -> started_at
    run_s: float | None  # server clock: started_at -> finished_at
    log_problems: list[str] = field(default_factory=list)


@dataclass
class SqliteRun:
    total_s: float
    journal_mode: str
    synchronous: str


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    return (b - a).total_seconds() if a and b else None


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def ensure_csv(workdir: Path, rows: int, seed: int) -> Path:
    """The cached CSV for ``(rows, seed)``, generated (atomically) if missing."""
    path = workdir / f"responses_r{rows}_s{seed}_nasty.csv"
    if path.exists():
        print(f"using cached {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
        return path
    tmp = path.with_suffix(".csv.tmp")
    print(f"generating {rows:,} rows into {path} ...", flush=True)
    t0 = time.perf_counter()
    size = write_responses_csv(tmp, rows, seed=seed, nasty=True)
    tmp.replace(path)
    print(f"  {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def server_command(port: int) -> list[str]:
    collect = Path(sys.executable).parent / "collect"
    if collect.exists():
        base = [str(collect), "serve"]
    else:
        base = [sys.executable, "-m", "uvicorn", "collect_api.app:create_app", "--factory"]
    return [*base, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print("  server ignored SIGTERM; killing it", flush=True)
        proc.kill()
        proc.wait()


def wait_healthy(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not healthy after {HEALTH_TIMEOUT_S} s:\n{log.read_text()}")


# --------------------------------------------------------------------------- the two sides


def run_collect(csv_path: Path, rows: int, run_dir: Path, chunk_rows: int | None) -> CollectRun:
    remove(run_dir)
    run_dir.mkdir(parents=True)
    data_dir = (run_dir / "data").resolve()
    env = {
        **os.environ,
        "COLLECT_DATA_DIR": str(data_dir),
        "COLLECT_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'collect.db'}",
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
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=None) as client:
            wait_healthy(client, proc, log_path)
            with open(csv_path, "rb") as f:  # streamed from disk by httpx, not read whole
                t0 = time.perf_counter()
                response = client.post(
                    "/imports",
                    files={"file": (csv_path.name, f, "text/csv")},
                    data={"dataset": DATASET},
                )
                t_post = time.perf_counter()
            if response.status_code != 202:
                raise RuntimeError(f"POST /imports: {response.status_code} {response.text}")
            job_id = response.json()["id"]
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while True:
                job: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
                if job["state"] in TERMINAL:
                    t_done = time.perf_counter()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} not finished after {JOB_TIMEOUT_S} s")
                time.sleep(POLL_S)
            if job["state"] != "completed":
                raise RuntimeError(f"job {job_id} ended {job['state']}: {job.get('error')}")
            imported = (job.get("result") or {}).get("rows_imported")
            dataset = client.get(f"/datasets/{DATASET}").raise_for_status().json()
            if dataset["row_count"] != rows or imported != rows:
                raise RuntimeError(
                    f"Collect imported {imported} rows, dataset has {dataset['row_count']}; "
                    f"expected {rows}"
                )
    finally:
        stop(proc)
    problems = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if LOG_PROBLEM.search(line)
    ]
    return CollectRun(
        total_s=t_done - t0,
        upload_s=t_post - t0,
        job_s=t_done - t_post,
        queue_s=seconds_between(job.get("created_at"), job.get("started_at")),
        run_s=seconds_between(job.get("started_at"), job.get("finished_at")),
        log_problems=problems,
    )


def run_sqlite(csv_path: Path, rows: int, db_path: Path) -> SqliteRun:
    for suffix in ("", "-journal", "-wal", "-shm"):
        remove(Path(f"{db_path}{suffix}"))
    if '"' in str(csv_path):
        raise ValueError(f"path {csv_path} contains a double quote")
    cmd = ["sqlite3", str(db_path), ".mode csv", f'.import --csv "{csv_path}" {DATASET}']
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0 or done.stderr.strip():
        raise RuntimeError(f"sqlite3 failed ({done.returncode}): {done.stderr.strip()}")
    with sqlite3.connect(db_path) as db:
        count = db.execute(f"SELECT count(*) FROM {DATASET}").fetchone()[0]
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


# --------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(nproc),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite_cli": " ".join(cli.split()[:2]) or "?",
        "sqlite_python": sqlite3.sqlite_version,
    }


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def summary(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def build_table(collect: list[CollectRun], lite: list[SqliteRun], phases: bool) -> list[str]:
    head = ["run", "Collect total (s)", "sqlite3 (s)", "ratio"]
    if phases:
        head[2:2] = ["upload (s)", "job (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, c: float, s: float, up: float, job: float) -> str:
        cells = [label, fmt(c), fmt(s), f"{c / s:.2f}x"]
        if phases:
            cells[2:2] = [fmt(up), fmt(job)]
        return "| " + " | ".join(cells) + " |"

    for i, (c, s) in enumerate(zip(collect, lite, strict=True), 1):
        lines.append(row(str(i), c.total_s, s.total_s, c.upload_s, c.job_s))
    for name, pick in (("best", min), ("median", statistics.median)):
        lines.append(
            row(
                f"**{name}**",
                pick([c.total_s for c in collect]),
                pick([s.total_s for s in lite]),
                pick([c.upload_s for c in collect]),
                pick([c.job_s for c in collect]),
            )
        )
    return lines


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


def command_line() -> str:
    """The command that produced these numbers, as typed from the repository root."""
    exe, script = Path(sys.executable), Path(sys.argv[0]).resolve()
    python = str(exe.relative_to(REPO)) if exe.is_relative_to(REPO) else exe.name
    script_s = str(script.relative_to(REPO)) if script.is_relative_to(REPO) else str(script)
    return shlex.join([python, script_s, *sys.argv[1:]])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (default 1e6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "bench" / "out", help="default bench/out"
    )
    parser.add_argument("--keep", action="store_true", help="keep per-run databases and logs")
    parser.add_argument(
        "--phases", action="store_true", help="split Collect's time into upload and job"
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
    size_mb = csv_path.stat().st_size / 1e6

    collect: list[CollectRun] = []
    lite: list[SqliteRun] = []
    scratch: list[Path] = []
    for i in range(args.repeat):
        run_dir = workdir / f"collect-run{i + 1}"
        db_path = workdir / f"sqlite-run{i + 1}.db"
        scratch += [run_dir, db_path, Path(f"{db_path}-journal")]

        def side_a(run_dir: Path = run_dir) -> None:
            r = run_collect(csv_path, args.rows, run_dir, args.chunk_rows)
            collect.append(r)
            print(
                f"  Collect: {r.total_s:7.2f} s (upload {r.upload_s:.2f} + job {r.job_s:.2f})",
                flush=True,
            )
            for line in r.log_problems[:10]:
                print(f"    server log: {line}", flush=True)

        def side_b(db_path: Path = db_path) -> None:
            r = run_sqlite(csv_path, args.rows, db_path)
            lite.append(r)
            print(f"  sqlite3: {r.total_s:7.2f} s", flush=True)

        order: list[Callable[[], None]] = [side_a, side_b] if i % 2 == 0 else [side_b, side_a]
        print(f"run {i + 1}/{args.repeat}", flush=True)
        for side in order:
            side()
        if not args.keep:
            for path in scratch[-3:]:
                remove(path)

    c_best, c_med = summary([r.total_s for r in collect])
    s_best, s_med = summary([r.total_s for r in lite])
    ratio = c_med / s_med
    info = machine()
    chunk = str(args.chunk_rows) if args.chunk_rows is not None else "default (5000)"
    verdict = "met" if ratio <= GOAL_RATIO else "not met"
    table = build_table(collect, lite, args.phases)
    rates = (
        f"Rows/s (median): Collect {args.rows / c_med:,.0f}, sqlite3 {args.rows / s_med:,.0f}; "
        f"CSV {size_mb:.1f} MB."
    )

    print()
    print("\n".join(table))
    print()
    print(f"Collect: best {c_best:.2f} s, median {c_med:.2f} s")
    print(f"sqlite3: best {s_best:.2f} s, median {s_med:.2f} s")
    print(
        f"Ratio (Collect median / sqlite3 median): {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict})"
    )
    print(rates)
    if args.phases:
        up = statistics.median([r.upload_s for r in collect])
        job = statistics.median([r.job_s for r in collect])
        queue = [r.queue_s for r in collect if r.queue_s is not None]
        run = [r.run_s for r in collect if r.run_s is not None]
        print(
            f"Collect phases (median): upload {up:.2f} s ({up / c_med:.0%}), "
            f"job {job:.2f} s ({job / c_med:.0%}); server clock: queued "
            f"{fmt(statistics.median(queue) if queue else None)} s, run "
            f"{fmt(statistics.median(run) if run else None)} s"
        )
    problems = sorted({p for r in collect for p in r.log_problems})
    if problems:
        print(f"server log problems ({len(problems)} distinct lines), e.g.: {problems[0]}")

    if not args.no_write:
        section = "\n".join(
            [
                SECTION_TITLE,
                "",
                f"Date: {dt.date.today().isoformat()}",
                "",
                f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}, "
                f"Python {info['python']}, sqlite3 CLI {info['sqlite_cli']} "
                f"(server's SQLite library {info['sqlite_python']}).",
                "",
                "Command (from the repository root):",
                "",
                "```sh",
                command_line(),
                "```",
                "",
                f"Input: {args.rows:,} rows of `make_csv.py` output (seed {SEED}, nasty: quoted "
                f"fields, embedded newlines, non-ASCII), {size_mb:.1f} MB. Collect: fresh "
                f"server, chunk rows {chunk}, timed from the start of the upload until the job "
                "is `completed` (polled every 50 ms). sqlite3: "
                f"`.mode csv` + `.import --csv FILE {DATASET}` into a fresh file with CLI "
                f"defaults (journal_mode={lite[0].journal_mode}, "
                f"synchronous={lite[0].synchronous}; Collect uses WAL + NORMAL). Runs "
                "alternate between the sides.",
                "",
                *table,
                "",
                f"Ratio (Collect median / sqlite3 median): **{ratio:.2f}x**. {rates}",
                "",
                f"Goal: {GOAL_RATIO}x or better, upload included: **{verdict}**.",
                "",
            ]
        )
        target = REPO / "BENCHMARKS.md"
        write_section(target, section)
        print(f"updated {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
