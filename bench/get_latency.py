"""Benchmark: how long ``GET /jobs/{id}`` takes while two imports run, and when idle.

A fresh server (``COLLECT_MAX_RUNNING_JOBS`` default, 2) is given the generated CSV
(``benchlib.ensure_csv``) twice, as two imports into two datasets. Once both jobs are
``running``, ``GET /jobs/{id}`` is sent for one job and the other in turn, one request at a
time on a kept-alive connection with ``--gap`` ms between a response and the next request,
until either job stops running. Each sample is the wall time from sending the request to
the end of the response, as this client sees it (the client shares the machine's cores with
the server and its two data-plane workers). Then, the jobs done, as many requests again are
sent to the idle server: the idle figure.

The CPU time of the server process and of its worker processes over the loaded window
(``psutil``) says who kept the cores busy. The run is repeated ``--repeat`` times, each on a
fresh server; percentiles are over every sample (target: p99 20 ms while two imports run).

Run from the repository root::

    .venv/bin/python bench/get_latency.py --rows 1000000 --repeat 3
    .venv/bin/python bench/get_latency.py --rows 100000 --repeat 1 --no-write
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import benchlib as bl
import psutil

TITLE = "GET /jobs/{id} latency while two imports run"
TARGET_S = 0.020


@dataclass
class Window:
    samples: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    workers_cpu_s: float = 0.0


def sample(server: bl.Server, job_ids: list[str], *, gap_s: float, count: int | None) -> Window:
    """GET the jobs in turn: ``count`` requests, or (None) until one of them stops running."""
    window = Window()
    proc = psutil.Process(server.pid)
    cpu0 = bl.cpu_seconds(proc)
    t0 = time.perf_counter()
    i = 0
    while count is None or i < count:
        job_id = job_ids[i % len(job_ids)]
        t = time.perf_counter()
        job = bl.get_job(server.client, job_id)
        window.samples.append(time.perf_counter() - t)
        i += 1
        if count is None and job["state"] != "running":
            break
        time.sleep(gap_s)
    window.seconds = time.perf_counter() - t0
    cpu1 = bl.cpu_seconds(proc)
    window.server_cpu_s = cpu1[0] - cpu0[0]
    window.workers_cpu_s = cpu1[1] - cpu0[1]
    return window


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument("--gap", type=float, default=5.0, help="ms between requests")
    args = bl.parse(parser, argv)
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    load_before = bl.load()
    gap_s = args.gap / 1000

    loaded: list[Window] = []
    idle: list[Window] = []
    profiles: list[str] = []
    for i in range(args.repeat):
        run_dir = args.workdir / f"get-run{i + 1}"
        with bl.Server.fresh(run_dir, env=bl.settings_env(chunk_rows=args.chunk_rows)) as server:
            # Each paused as soon as it is uploaded, then both resumed: they run side by
            # side from (nearly) the start of the file, whatever the upload took.
            jobs = []
            for name in ("responses_a", "responses_b"):
                job_id = bl.upload(server.client, csv_path, dataset=name)[0]["id"]
                server.client.post(f"/jobs/{job_id}/pause").raise_for_status()
                jobs.append(job_id)
            for job_id in jobs:
                server.client.post(f"/jobs/{job_id}/resume").raise_for_status()
            for job_id in jobs:
                bl.wait_job(server.client, job_id, until=lambda j: j["state"] != "queued")
            busy = sample(server, jobs, gap_s=gap_s, count=None)
            for job_id in jobs:
                bl.completed(bl.wait_job(server.client, job_id)[0], rows=args.rows)
            calm = sample(server, jobs, gap_s=gap_s, count=len(busy.samples))
        loaded.append(busy)
        idle.append(calm)
        profiles += [p.describe() for p in server.import_profiles().values()]
        print(
            f"run {i + 1}/{args.repeat}: {len(busy.samples)} requests while both ran, p99 "
            f"{bl.ms(bl.percentile(busy.samples, 99))} ms; idle p99 "
            f"{bl.ms(bl.percentile(calm.samples, 99))} ms"
        )
        if not args.keep:
            bl.remove(run_dir)

    def row(name: str, windows: list[Window]) -> tuple[object, ...]:
        xs = [s for w in windows for s in w.samples]
        secs = sum(w.seconds for w in windows)
        return (
            name,
            len(xs),
            bl.ms(bl.median(xs)),
            bl.ms(bl.percentile(xs, 90)),
            bl.ms(bl.percentile(xs, 99)),
            bl.ms(max(xs)),
            f"{sum(w.server_cpu_s for w in windows) / secs:.0%}",
            f"{sum(w.workers_cpu_s for w in windows) / secs:.0%}",
        )

    busy_p99 = bl.percentile((s for w in loaded for s in w.samples), 99)
    idle_p99 = bl.percentile((s for w in idle for s in w.samples), 99)
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                "`GET /jobs/{id}` while two imports run (p99)",
                f"{bl.ms(busy_p99)} ms",
                f"≤ {TARGET_S * 1000:.0f} ms",
                busy_p99 <= TARGET_S,
            ),
            bl.Figure("`GET /jobs/{id}`, idle server (p99)", f"{bl.ms(idle_p99)} ms"),
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}, imported twice at once (two "
            "datasets, each paused as soon as uploaded, then both resumed) on a fresh "
            f"server, chunk rows {bl.chunk_rows_text(args.chunk_rows)}, {args.repeat} times. "
            "One request at a time from one client on a kept-alive "
            f"connection, {args.gap:g} ms between a response and the next request, each timed "
            "from send to the end of the response; *loaded* while both jobs are `running`, "
            "*idle* after both completed, as many requests. CPU: the server process's and "
            "its worker processes' CPU time over the window, as a share of one core (the "
            "machine has two). Latencies in ms:"
        ),
        body=bl.table(
            [
                "server",
                "requests",
                "median",
                "p90",
                "p99",
                "max",
                "server CPU",
                "workers' CPU",
            ],
            [row("two imports running", loaded), row("idle", idle)],
        ),
        profile=(
            "the two imports keep the data-plane workers on the cores while the server "
            f"answers; one of them, from the server's `collect.imports` line: {profiles[0]}."
            if profiles
            else None
        ),
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
