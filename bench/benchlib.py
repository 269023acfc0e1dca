"""What every benchmark script shares: the input, a real server, the API calls, the report.

- **Input**: ``ensure_csv`` generates ``make_csv.py`` output (seed 0, ``nasty=True``: quoted
  fields, embedded commas, quotes, LF/CRLF line breaks, non-ASCII text) once into the work
  dir (default ``bench/out``, git-ignored), keyed by rows and seed, and reuses it.
- **A real server**: ``Server`` runs ``python -m collect_api serve`` (the interpreter running
  the script, with its environment, so ``PYTHONPATH`` reaches the server and its data-plane
  workers) on a free loopback port, with its own data dir and database, and with settings
  given as ``COLLECT_*`` variables: ``settings_env(chunk_rows=20000)``. Settings inherited
  from the caller's environment are dropped, so that a run depends on its command alone.
  Its log goes to a file at ``--log-level info`` by default (what ``collect serve`` runs
  with), so that the ``collect.imports`` line saying where an import's time went is there.
- **API calls**: ``upload`` streams a CSV from disk to ``POST /imports``; ``wait_job`` and
  ``wait_done`` poll ``GET /jobs/{id}``; ``import_csv`` times a whole import; ``pause_resume``
  times one pause and the resume that follows it.
- **Numbers**: ``median``, ``percentile`` (linear between closest ranks), ``spread``.
- **The report**: ``machine_line`` (CPU, cores, kernel, Python, sqlite3 CLI, load average),
  ``section`` (the standard layout: a table of figures with their targets and whether each
  is met, the command that reproduces them, machine and date, where the time went when a
  figure misses, then the method and the data) and ``publish``, which prints the section
  and replaces it in ``BENCHMARKS.md`` (every other section is kept) unless ``--no-write``.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_csv import write_responses_csv

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "BENCHMARKS.md"
SEED = 0
DATASET = "responses"
TERMINAL = frozenset({"completed", "failed", "terminated"})
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 3600.0
LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bWARNING\b|\bCRITICAL\b|Exception")
_IMPORT_LINE = re.compile(
    r"job (?P<job>\S+) read (?P<records>\d+) records in (?P<chunks>\d+) chunks in "
    r"(?P<seconds>[\d.]+) s: reading (?P<read>[\d.]+) s, writing (?P<write>[\d.]+) s, "
    r"committing (?P<commit>[\d.]+) s"
)


# --------------------------------------------------------------------------- options


def arguments(doc: str | None, *, rows: int, repeat: int = 3) -> argparse.ArgumentParser:
    """A parser with the options every script takes; a script adds its own."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0] if doc else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=rows, help="records in the CSV")
    parser.add_argument("--repeat", type=int, default=repeat, help="runs of each measurement")
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="COLLECT_CHUNK_ROWS (default: the server's)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "bench" / "out", help="cached CSVs and runs"
    )
    parser.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    parser.add_argument("--no-write", action="store_true", help="do not update --benchmarks")
    parser.add_argument(
        "--benchmarks", type=Path, default=BENCHMARKS, help="the Markdown file to update"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, live
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


# --------------------------------------------------------------------------- input


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def ensure_csv(workdir: Path, rows: int, seed: int = SEED) -> Path:
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


def input_line(rows: int, path: Path) -> str:
    return (
        f"{rows:,} records of `make_csv.py` output (seed {SEED}, nasty: quoted fields, "
        f"embedded newlines, non-ASCII), {path.stat().st_size / 1e6:.1f} MB"
    )


# --------------------------------------------------------------------------- the server


def chunk_rows_text(chunk_rows: int | None) -> str:
    """How a section names the chunk size its servers ran with."""
    if chunk_rows:
        return f"{chunk_rows:,}"
    from collect_api.settings import Settings

    return f"default ({Settings.model_fields['chunk_rows'].default:,})"


def settings_env(**settings: object) -> dict[str, str]:
    """``COLLECT_*`` variables for Settings fields; a None value leaves the default."""
    return {f"COLLECT_{k.upper()}": str(v) for k, v in settings.items() if v is not None}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ImportProfile:
    """Where an import's time went, from the ``collect.imports`` log lines: one for each
    run of the job that reached the end of its file (a run that was paused or stopped
    before it logs none), summed."""

    job_id: str
    records: int
    chunks: int
    seconds: float
    read_s: float
    write_s: float
    commit_s: float

    def describe(self, run_s: float | None = None) -> str:
        """A sentence; with ``run_s`` (the job's run on the server's clock), also the time
        outside the chunk loop: a worker's start, the staging table, the publish."""
        per_chunk = self.seconds / self.chunks * 1000 if self.chunks else 0.0
        text = (
            f"{self.records:,} records in {self.chunks:,} chunks ({per_chunk:.0f} ms a chunk) "
            f"in {self.seconds:.2f} s: reading {self.read_s:.2f} s, writing "
            f"{self.write_s:.2f} s, committing {self.commit_s:.2f} s (the worker reads the "
            "next chunk while the last one is written, so these may add up to more)"
        )
        if run_s is not None:
            text += (
                f"; the job ran {run_s:.2f} s on the server's clock, {run_s - self.seconds:.2f} s "
                "of it outside the chunk loop (a worker's start, the staging table, the publish)"
            )
        return text


class Server:
    """``collect serve`` in a subprocess, on a free loopback port, over ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        log_level: str = "info",
        name: str = "server",
        timeout: float | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.db_path = self.data_dir / "collect.db"
        self.log_path = log_path or self.data_dir.parent / f"{name}.log"
        self.log_level = log_level
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("COLLECT_")}
        self.env = {
            **inherited,
            "COLLECT_DATA_DIR": str(self.data_dir),
            "COLLECT_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            **(env or {}),
        }
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0  # time.time() just before the process was spawned

    @classmethod
    def fresh(cls, run_dir: Path, **kwargs: Any) -> Server:
        """A server on a new, empty ``run_dir/data``; its log is ``run_dir/server.log``."""
        remove(run_dir)
        (run_dir / "data").mkdir(parents=True)
        kwargs.setdefault("log_path", run_dir / "server.log")
        return cls(run_dir / "data", **kwargs)

    def __enter__(self) -> Server:
        if self.proc is None:
            self.start()
            self.wait_healthy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server was not started"
        return self.proc.pid

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "collect_api",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]
        with open(self.log_path, "ab") as log:
            self.spawned_at = time.time()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def wait_healthy(self, *, poll_s: float = 0.05) -> float:
        """Poll ``/healthz`` until it answers 200; when it did (``time.time()``)."""
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_text()}")
            try:
                if self.client.get("/healthz", timeout=5).status_code == 200:
                    return time.time()
            except httpx.TransportError:
                pass
            time.sleep(poll_s)
        raise RuntimeError(f"{self.name} not healthy after {HEALTH_TIMEOUT_S} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = STOP_TIMEOUT_S) -> float:
        """Send ``sig`` and wait for the process to end (killing it after ``timeout``);
        how long it took."""
        if not self.alive():
            return 0.0
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"  {self.name} still running {timeout:.0f} s after {sig!r}; killing it")
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def close(self) -> None:
        self.client.close()
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def problems(self) -> list[str]:
        """Log lines with a warning, an error or a traceback."""
        return [line for line in self.log_text().splitlines() if LOG_PROBLEM.search(line)]

    def import_profiles(self) -> dict[str, ImportProfile]:
        """Each import job's ``collect.imports`` lines, summed over its runs."""
        found: dict[str, ImportProfile] = {}
        for m in _IMPORT_LINE.finditer(self.log_text()):
            p = found.setdefault(m["job"], ImportProfile(m["job"], 0, 0, 0.0, 0.0, 0.0, 0.0))
            p.records += int(m["records"])
            p.chunks += int(m["chunks"])
            p.seconds += float(m["seconds"])
            p.read_s += float(m["read"])
            p.write_s += float(m["write"])
            p.commit_s += float(m["commit"])
        return found


# --------------------------------------------------------------------------- API calls


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
    return job


def upload(
    client: httpx.Client, csv_path: Path, *, dataset: str = DATASET, **fields: str
) -> tuple[dict[str, Any], float, float]:
    """``POST /imports``, the file streamed from disk by httpx (never read whole): the job,
    and the ``perf_counter`` when the upload started and when the 202 came back."""
    with open(csv_path, "rb") as f:
        t0 = time.perf_counter()
        response = client.post(
            "/imports",
            files={"file": (csv_path.name, f, "text/csv")},
            data={"dataset": dataset, **fields},
            timeout=None,
        )
        t1 = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"POST /imports: {response.status_code} {response.text}")
    return response.json(), t0, t1


def wait_job(
    client: httpx.Client,
    job_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] = lambda job: job["state"] in TERMINAL,
    poll_s: float = 0.05,
    timeout_s: float = JOB_TIMEOUT_S,
) -> tuple[dict[str, Any], float]:
    """Poll ``GET /jobs/{id}`` until ``until(job)`` (by default, a terminal state): the job
    and the ``perf_counter`` when that was seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(client, job_id)
        if until(job):
            return job, time.perf_counter()
        if job["state"] in TERMINAL:
            raise RuntimeError(f"job {job_id} ended {job['state']}: {job.get('error')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['state']} after {timeout_s} s")
        time.sleep(poll_s)


def done(job: Mapping[str, Any]) -> int:
    return int(job["progress"].get("done") or 0)


def wait_done(
    client: httpx.Client, job_id: str, above: int, *, poll_s: float = 0.01, timeout_s: float = 120
) -> tuple[dict[str, Any], float]:
    """Poll until ``progress.done > above`` (a new chunk is committed)."""
    return wait_job(
        client,
        job_id,
        until=lambda job: done(job) > above,
        poll_s=poll_s,
        timeout_s=timeout_s,
    )


def completed(job: dict[str, Any], *, rows: int) -> dict[str, Any]:
    """The job, checked to have completed having imported ``rows`` records."""
    if job["state"] != "completed":
        raise RuntimeError(f"job {job['id']} ended {job['state']}: {job.get('error')}")
    imported = (job.get("result") or {}).get("rows_imported")
    if job["kind"] == "import" and imported != rows:
        raise RuntimeError(f"job {job['id']} imported {imported} rows; expected {rows}")
    return job


def parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    return (b - a).total_seconds() if a and b else None


@dataclass
class ImportRun:
    job: dict[str, Any]
    total_s: float  # upload started -> job seen completed
    upload_s: float  # upload started -> 202
    job_s: float  # 202 -> job seen completed
    queue_s: float | None  # server clock: created_at -> started_at
    run_s: float | None  # server clock: started_at -> finished_at

    @property
    def job_id(self) -> str:
        return str(self.job["id"])


def import_csv(
    server: Server, csv_path: Path, *, rows: int, dataset: str = DATASET, poll_s: float = 0.05
) -> ImportRun:
    """Import ``csv_path`` and wait for it: timed from the start of the upload until
    ``GET /jobs/{id}``, polled every ``poll_s``, says ``completed``."""
    job, t0, t_post = upload(server.client, csv_path, dataset=dataset)
    job, t_done = wait_job(server.client, job["id"], poll_s=poll_s)
    completed(job, rows=rows)
    return ImportRun(
        job=job,
        total_s=t_done - t0,
        upload_s=t_post - t0,
        job_s=t_done - t_post,
        queue_s=seconds_between(job.get("created_at"), job.get("started_at")),
        run_s=seconds_between(job.get("started_at"), job.get("finished_at")),
    )


@dataclass
class Cycle:
    """One pause of a running import and the resume after it."""

    position: float  # share of the file's records committed when the pause took effect
    pause_s: float  # POST pause sent -> the job seen paused (the answer, unless `pausing`)
    resume_s: float  # POST resume sent -> progress.done first above its value when paused


def pause_resume(
    client: httpx.Client, job_id: str, *, rows: int, poll_s: float = 0.005
) -> Cycle | None:
    """Pause the job, then resume it and wait for its next committed chunk (``GET`` polled
    every ``poll_s``). None if it ended before it could be paused."""
    t0 = time.perf_counter()
    answer = client.post(f"/jobs/{job_id}/pause")
    if answer.status_code == 409:  # it completed first
        return None
    job = answer.raise_for_status().json()
    if job["state"] != "paused":  # still `pausing` after COLLECT_CONTROL_WAIT_S
        job, _ = wait_job(client, job_id, until=lambda j: j["state"] == "paused", poll_s=poll_s)
    pause_s = time.perf_counter() - t0
    at = done(job)
    t1 = time.perf_counter()
    client.post(f"/jobs/{job_id}/resume").raise_for_status()
    # Paused after its last chunk, a job's next commit is its publish.
    wait_job(
        client,
        job_id,
        until=lambda j: done(j) > at or j["state"] == "completed",
        poll_s=poll_s,
        timeout_s=120,
    )
    return Cycle(position=at / rows, pause_s=pause_s, resume_s=time.perf_counter() - t1)


def cycle_through(client: httpx.Client, job_id: str, *, rows: int, cycles: int) -> list[Cycle]:
    """``cycles`` pauses spread evenly through the file: the ``i``-th once ``i / (cycles +
    1)`` of the records are committed."""
    got: list[Cycle] = []
    for i in range(1, cycles + 1):
        target = rows * i // (cycles + 1)
        job, _ = wait_job(
            client,
            job_id,
            until=lambda j, t=target: done(j) >= t or j["state"] in TERMINAL,
            poll_s=0.01,
        )
        if job["state"] in TERMINAL:
            break
        cycle = pause_resume(client, job_id, rows=rows)
        if cycle is None:
            break
        got.append(cycle)
    return got


def alternate(i: int, *sides: Callable[[], None]) -> None:
    """Run the sides in turn, in reverse order on odd runs (A B, B A, ...), so that they
    share the machine's noise."""
    for side in sides if i % 2 == 0 else reversed(sides):
        side()


# --------------------------------------------------------------------------- numbers


def cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """CPU time (user + system) so far of a process (a server) and of its children (its
    data-plane workers)."""
    own = proc.cpu_times()
    children = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            children += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.user + own.system, children


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear between the closest ranks."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def spread(values: Iterable[float | None], *, scale: float = 1.0, digits: int = 2) -> str:
    """Median with the range, e.g. ``1.23 (1.20 to 1.31)`` but with an en dash."""
    got = [v * scale for v in values if v is not None]
    if not got:
        return "-"
    if len(got) == 1:
        return f"{got[0]:,.{digits}f}"
    return f"{median(got):,.{digits}f} ({min(got):,.{digits}f}–{max(got):,.{digits}f})"


def fmt(seconds: float | None, digits: int = 2) -> str:
    return "-" if seconds is None else f"{seconds:.{digits}f}"


def ms(seconds: float) -> str:
    """Seconds as milliseconds; ``-`` for NaN (nothing was measured)."""
    return "-" if seconds != seconds else f"{seconds * 1000:.1f}"


# --------------------------------------------------------------------------- the report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": str(cores),
        "cpu": _cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite_cli": " ".join(cli.split()[:2]) or "?",
        "sqlite_python": sqlite3.sqlite_version,
    }


def load() -> float:
    """The 1-minute load average: other work on the machine skews the figures."""
    return os.getloadavg()[0]


def machine_line(load_before: float) -> str:
    m = machine()
    return (
        f"{m['cores']} CPUs ({m['cpu']}), {m['kernel']}, Python {m['python']}, sqlite3 CLI "
        f"{m['sqlite_cli']} (the server's SQLite library {m['sqlite_python']}); 1-minute load "
        f"average {load_before:.2f} at the start, {load():.2f} at the end"
    )


def command_line() -> str:
    """The command that produced the figures, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    python = ".venv/bin/python" if sys.prefix != sys.base_prefix else "python3"
    return shlex.join([python, str(shown), *sys.argv[1:]])


@dataclass
class Figure:
    """One figure of the issue's table: what it is, its value, its target, and whether it
    is met (None where there is no target)."""

    name: str
    value: str
    target: str = "-"
    met: bool | None = None

    def verdict(self) -> str:
        return {True: "**met**", False: "**not met**", None: "-"}[self.met]


def versus_rows(ours: Sequence[Sequence[float]], theirs: Sequence[float]) -> list[tuple[str, ...]]:
    """A run-by-run comparison with a reference: each run's own times (its total first,
    then its phases), the reference's time, and the ratio of the totals; then the medians,
    column by column, and the ratio of the median totals (the figure)."""
    rows = [
        (str(i), *(fmt(x) for x in own), fmt(ref), f"{own[0] / ref:.2f}×")
        for i, (own, ref) in enumerate(zip(ours, theirs, strict=True), 1)
    ]
    medians = [median(column) for column in zip(*ours, strict=True)]
    ref = median(theirs)
    rows.append(("**median**", *(fmt(x) for x in medians), fmt(ref), f"{medians[0] / ref:.2f}×"))
    return rows


def table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def section(
    title: str,
    *,
    figures: Sequence[Figure],
    load_before: float,
    method: str,
    body: Sequence[str] = (),
    profile: str | None = None,
) -> str:
    """A section in the standard layout. ``profile`` (where the time went) is shown when a
    figure misses its target."""
    lines = [
        f"## {title}",
        "",
        *table(
            ["figure", "measured", "target", "met"],
            [(f.name, f"**{f.value}**", f.target, f.verdict()) for f in figures],
        ),
        "",
        "Command (from the repository root):",
        "",
        "```sh",
        command_line(),
        "```",
        "",
        f"Machine: {machine_line(load_before)}. Date: {dt.date.today().isoformat()}.",
        "",
    ]
    if profile and any(f.met is False for f in figures):
        lines += [f"Where the time goes: {profile}", ""]
    lines += [method, ""]
    if body:
        lines += [*body, ""]
    return "\n".join(lines)


def _section_bounds(lines: list[str], title: str) -> tuple[int, int] | None:
    """Where ``## title`` starts and where the next ``#``/``##`` heading outside a code
    fence starts (``###`` sub-headings belong to the section)."""
    start = next((i for i, line in enumerate(lines) if line.strip() == f"## {title}"), None)
    if start is None:
        return None
    fenced = False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", lines[i]):
            return start, i
    return start, len(lines)


def write_section(path: Path, title: str, text: str) -> None:
    """Replace section ``## title`` of ``path`` with ``text`` (or append it), keeping the
    others as they are."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = old.splitlines()
    bounds = _section_bounds(lines, title)
    if bounds is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        before = "\n".join(lines[: bounds[0]]).rstrip("\n")
        after = "\n".join(lines[bounds[1] :]).strip("\n")
        new = (before + "\n\n" if before else "") + text.rstrip("\n") + "\n"
        new += "\n" + after if after else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def publish(args: argparse.Namespace, title: str, text: str) -> None:
    """Print the section; write it into ``--benchmarks`` unless ``--no-write``."""
    print()
    print(text)
    if not args.no_write:
        write_section(args.benchmarks, title, text)
        print(f"updated {args.benchmarks}")
