"""Benchmark: how long a pause takes to answer, and a resume to commit again, during an import.

A fresh server imports the generated CSV (``benchlib.ensure_csv``); while it runs, the job
is paused ``--cycles`` times, spread evenly through the file (the ``i``-th pause once
``i / (cycles + 1)`` of the records are committed), and resumed straight after each pause:

* **pause** -- from sending ``POST /jobs/{id}/pause`` to its answer with the job ``paused``
  (the job stops at the end of the chunk in flight; were the answer still ``pausing``, the
  time runs on until ``GET /jobs/{id}`` says ``paused``);
* **resume** -- from sending ``POST /jobs/{id}/resume`` to the next committed chunk:
  ``progress.done`` of ``GET /jobs/{id}``, polled every 5 ms, first above its value at the
  pause. It includes the claim of a run slot, a worker's session reopening the upload at the
  checkpoint's byte offset, and the first chunk, which the worker keeps small.

The import runs ``--repeat`` times, each on a fresh server. The figures are the 99th
percentiles over every cycle (targets: pause 50 ms, resume 100 ms); resumes are also shown
by where in the file they happened, since a resume must cost the same wherever it is.

Run from the repository root::

    .venv/bin/python bench/pause_resume.py --rows 1000000 --repeat 3
    .venv/bin/python bench/pause_resume.py --rows 100000 --cycles 20 --repeat 1 --no-write
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import benchlib as bl

TITLE = "Pause and resume latency during an import"
PAUSE_TARGET_S, RESUME_TARGET_S = 0.050, 0.100
PARTS = 5  # the file cut in fifths for the resume-by-position table


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument("--cycles", type=int, default=60, help="pauses in each import")
    args = bl.parse(parser, argv)
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    load_before = bl.load()

    cycles: list[bl.Cycle] = []
    profiles: list[bl.ImportProfile] = []
    for i in range(args.repeat):
        run_dir = args.workdir / f"pause-run{i + 1}"
        with bl.Server.fresh(run_dir, env=bl.settings_env(chunk_rows=args.chunk_rows)) as server:
            job, _, _ = bl.upload(server.client, csv_path)
            got = bl.cycle_through(server.client, job["id"], rows=args.rows, cycles=args.cycles)
            job, _ = bl.wait_job(server.client, job["id"])
            bl.completed(job, rows=args.rows)
        cycles += got
        if profile := server.import_profiles().get(job["id"]):
            profiles.append(profile)
        print(
            f"run {i + 1}/{args.repeat}: {len(got)} cycles; pause median "
            f"{bl.ms(bl.median(c.pause_s for c in got))} ms, resume median "
            f"{bl.ms(bl.median(c.resume_s for c in got))} ms"
        )
        if not args.keep:
            bl.remove(run_dir)
    if not cycles:
        sys.exit("no pause took effect: the imports ended first (more --rows?)")

    pauses = [c.pause_s for c in cycles]
    resumes = [c.resume_s for c in cycles]
    pause_p99, resume_p99 = bl.percentile(pauses, 99), bl.percentile(resumes, 99)
    by_part = []
    for k in range(PARTS):
        lo, hi = k / PARTS, (k + 1) / PARTS
        part = [c for c in cycles if lo <= c.position < hi or (k == PARTS - 1 and c.position >= 1)]
        if part:
            by_part.append(
                (
                    f"{lo:.0%}–{hi:.0%}",
                    len(part),
                    bl.ms(bl.median(c.pause_s for c in part)),
                    bl.ms(bl.percentile((c.pause_s for c in part), 99)),
                    bl.ms(bl.median(c.resume_s for c in part)),
                    bl.ms(bl.percentile((c.resume_s for c in part), 99)),
                    bl.ms(max(c.resume_s for c in part)),
                )
            )
    overall = (
        "**all**",
        len(cycles),
        bl.ms(bl.median(pauses)),
        bl.ms(pause_p99),
        bl.ms(bl.median(resumes)),
        bl.ms(resume_p99),
        bl.ms(max(resumes)),
    )
    chunk_ms = [p.seconds / p.chunks * 1000 for p in profiles if p.chunks]
    profile = (
        "a pause waits for the chunk in flight to commit. The server's `collect.imports` "
        "line, which covers a job's last run (from its last resume to the end of the file), "
        f"gives {bl.median(chunk_ms):.0f} ms a chunk (median over the imports; the worker "
        "sizes chunks to about 250 ms of work, starting small after each resume); the first "
        f"import's: {profiles[0].describe()}."
        if chunk_ms
        else None
    )
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                "pause: request to the answer `paused`, during an import (p99)",
                f"{bl.ms(pause_p99)} ms",
                f"≤ {PAUSE_TARGET_S * 1000:.0f} ms",
                pause_p99 <= PAUSE_TARGET_S,
            ),
            bl.Figure(
                "resume: request to the next committed chunk (p99, whatever the position)",
                f"{bl.ms(resume_p99)} ms",
                f"≤ {RESUME_TARGET_S * 1000:.0f} ms",
                resume_p99 <= RESUME_TARGET_S,
            ),
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}, imported {args.repeat} times, each "
            f"on a fresh server with chunk rows {bl.chunk_rows_text(args.chunk_rows)}. Each "
            f"import is paused up to {args.cycles} times, evenly through the file, and resumed "
            "straight away. Pause: `POST /jobs/{id}/pause` sent → its answer, the job "
            "`paused`. Resume: `POST /jobs/{id}/resume` sent → `progress.done` of "
            "`GET /jobs/{id}` (polled every 5 ms) first above its value at the pause. "
            f"{len(cycles)} cycles in all; percentiles are linear between the closest ranks. "
            "Latencies in ms, by where in the file (records committed) the pause took effect:"
        ),
        body=bl.table(
            [
                "position",
                "cycles",
                "pause median",
                "pause p99",
                "resume median",
                "resume p99",
                "resume max",
            ],
            [*by_part, overall],
        ),
        profile=profile,
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
