"""Benchmark: what 200 clients following a job over SSE cost the import they follow.

Each run imports the generated CSV (``benchlib.ensure_csv``) into a fresh server and is
timed as ``import_vs_sqlite.py`` times Collect: from the start of the upload until
``GET /jobs/{id}``, polled every 50 ms, says ``completed``. In a run *with followers*,
``--followers`` streams of ``GET /jobs/{id}/events`` are opened as soon as ``POST /imports``
has answered (so their connecting is part of the cost) and read to their end by this
process, one asyncio task and one raw connection each (as lean a client as can be: it shares
the machine's cores with the server); every follower must have received the job's
``completed`` state event, after which the server closes the stream.
Runs without and with followers alternate, ``--repeat`` times each. The figure is the
median import time with followers over the median without (target 1.05x or better).

Run from the repository root::

    .venv/bin/python bench/sse_followers.py --rows 1000000 --repeat 3
    .venv/bin/python bench/sse_followers.py --rows 100000 --followers 50 --repeat 1 --no-write
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl
import httpx
import psutil

TITLE = "SSE: an import followed by 200 clients"
TARGET = 1.05
POLL_S = 0.05


@dataclass
class Run:
    followers: int
    total_s: float
    run_s: float | None  # server clock: started_at -> finished_at
    events: int  # received by all followers together
    saw_end: int  # followers that received the `completed` state event
    server_cpu_s: float  # the server process, from the upload's start to the job's end
    workers_cpu_s: float  # its data-plane workers, as long
    client_cpu_s: float  # this process (the followers and the polling), as long


async def follow(port: int, job_id: str) -> tuple[int, bool]:
    """Read one job's event stream to its end over a raw connection: how many events, and
    whether the last state event was ``completed``.

    The followers share the machine with the server, so they are read with as little work
    as a client can do (asyncio streams, HTTP/1.1 chunks decoded by hand), and the figure
    measures what the server spends on them rather than what an HTTP library does.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"GET events: {head.decode(errors='replace')}")
        if b"transfer-encoding: chunked" not in head.lower():
            raise RuntimeError("GET events: the stream is not chunked")
        events, kind, ended, pending = 0, b"", False, b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                break
            pending += (await reader.readexactly(size + 2))[:-2]
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"event:"):
                    kind = line[6:].strip()
                    events += 1
                elif line.startswith(b"data:") and kind in (b"state", b"snapshot"):
                    ended = json.loads(line[5:])["state"] == "completed"
        return events, ended
    finally:
        writer.close()


async def timed_import(server: bl.Server, csv_path: Path, rows: int, followers: int) -> Run:
    proc = psutil.Process(server.pid)
    cpu0, own0 = bl.cpu_seconds(proc), time.process_time()
    async with httpx.AsyncClient(base_url=server.url, timeout=None) as client:
        job, t0, _ = await asyncio.to_thread(bl.upload, server.client, csv_path)
        job_id = job["id"]
        tasks = [asyncio.create_task(follow(server.port, job_id)) for _ in range(followers)]
        while True:
            job = (await client.get(f"/jobs/{job_id}")).raise_for_status().json()
            if job["state"] in bl.TERMINAL:
                t_done = time.perf_counter()
                cpu1, own1 = bl.cpu_seconds(proc), time.process_time()
                break
            await asyncio.sleep(POLL_S)
        bl.completed(job, rows=rows)
        got = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return Run(
        followers=followers,
        total_s=t_done - t0,
        run_s=bl.seconds_between(job.get("started_at"), job.get("finished_at")),
        events=sum(n for n, _ in got),
        saw_end=sum(1 for _, ended in got if ended),
        server_cpu_s=cpu1[0] - cpu0[0],
        workers_cpu_s=cpu1[1] - cpu0[1],
        client_cpu_s=own1 - own0,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument("--followers", type=int, default=200, help="SSE streams in a run")
    args = bl.parse(parser, argv)
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    load_before = bl.load()

    runs: list[Run] = []
    for i in range(args.repeat):

        def one(followers: int, i: int = i) -> None:
            run_dir = args.workdir / f"sse-run{i + 1}-{followers}"
            env = bl.settings_env(chunk_rows=args.chunk_rows)
            with bl.Server.fresh(run_dir, env=env) as server:
                r = asyncio.run(timed_import(server, csv_path, args.rows, followers))
            if r.saw_end != followers:
                raise RuntimeError(f"{followers - r.saw_end} followers missed the job's end")
            runs.append(r)
            print(
                f"  {followers:3} followers: {r.total_s:6.2f} s, {r.events:,} events, CPU s: "
                f"server {r.server_cpu_s:.2f}, workers {r.workers_cpu_s:.2f}, "
                f"client {r.client_cpu_s:.2f}"
            )
            if not args.keep:
                bl.remove(run_dir)

        print(f"run {i + 1}/{args.repeat}")
        bl.alternate(i, lambda: one(0), lambda: one(args.followers))

    alone = [r for r in runs if r.followers == 0]
    followed = [r for r in runs if r.followers]
    a_med = bl.median(r.total_s for r in alone)
    f_med = bl.median(r.total_s for r in followed)
    ratio = f_med / a_med

    def row(name: str, rs: list[Run]) -> tuple[object, ...]:
        return (
            name,
            " · ".join(bl.fmt(r.total_s) for r in rs),
            bl.fmt(bl.median(r.total_s for r in rs)),
            bl.fmt(bl.median(r.run_s for r in rs if r.run_s is not None)),
            f"{bl.median(r.events / r.followers for r in rs):.1f}" if rs[0].followers else "-",
            bl.fmt(bl.median(r.server_cpu_s for r in rs)),
            bl.fmt(bl.median(r.workers_cpu_s for r in rs)),
            bl.fmt(bl.median(r.client_cpu_s for r in rs)),
        )

    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                f"import time with {args.followers} SSE followers against none",
                f"{ratio:.3f}×",
                f"≤ {TARGET:.2f}×",
                ratio <= TARGET,
            )
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}, imported on a fresh server each "
            f"run, chunk rows {bl.chunk_rows_text(args.chunk_rows)}, timed from the start of "
            "the upload until `GET /jobs/{id}` (polled every 50 ms) says `completed`. With "
            f"followers: {args.followers} `GET /jobs/{{id}}/events` streams opened once "
            "`POST /imports` answered and read to their end by one asyncio process on the "
            "same machine, over raw connections (HTTP chunks decoded by hand, the leanest "
            "client there is); each received the `completed` event. Runs alternate between the "
            "two; the figure is the ratio of the medians."
        ),
        body=bl.table(
            [
                "followers",
                "runs (s)",
                "median (s)",
                "job on the server's clock (s)",
                "events a follower",
                "server CPU (s)",
                "workers' CPU (s)",
                "client CPU (s)",
            ],
            [row("none", alone), row(str(args.followers), followed)],
        ),
        profile=(
            f"on the server's clock the job ran {bl.fmt(bl.median(r.run_s or 0 for r in alone))} s "
            f"alone and {bl.fmt(bl.median(r.run_s or 0 for r in followed))} s followed; the "
            "followers' client shares the machine's two cores with the server and its worker."
        ),
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
