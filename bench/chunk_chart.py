"""Benchmark: import throughput and pause latency against the chunk size, as a chart.

For each ``COLLECT_CHUNK_ROWS`` in ``--chunk-sizes``, a fresh server imports the generated
CSV (``benchlib.ensure_csv``) twice, into two datasets:

* **throughput** -- once undisturbed, timed as ``import_vs_sqlite.py`` times Collect (from
  the start of the upload until ``completed``), ``--repeat`` times: records/s;
* **pause latency** -- once more, paused ``--cycles`` times evenly through the file and
  resumed straight after each pause, as ``pause_resume.py`` does: the median and the 99th
  percentile of ``POST /jobs/{id}/pause`` → its answer ``paused``, and the median resume
  (``POST /jobs/{id}/resume`` → the next committed chunk).

The worker also ends a chunk after about 250 ms of work whatever ``COLLECT_CHUNK_ROWS``
says, so a large value mostly lifts the cap on rows and leaves the chunks to the time
budget. The chart (matplotlib, Agg) goes to ``--chart`` (``docs/throughput.png``) and the
table to ``BENCHMARKS.md``, with the chunk size they suggest as a default: the one with the
best throughput among those whose median pause is within half again of the lowest median
(the p99 of 20 pauses is their slowest, too noisy to choose by).

Run from the repository root::

    .venv/bin/python bench/chunk_chart.py --rows 500000
    .venv/bin/python bench/chunk_chart.py --rows 100000 --chunk-sizes 1000 20000 --no-write
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import benchlib as bl
import matplotlib.pyplot as plt

from collect_api.settings import Settings

TITLE = "Chunk size: import throughput and pause latency"
SIZES = [1_000, 5_000, 20_000, 50_000, 100_000, 250_000, 1_000_000]
DEFAULT_CHUNK_ROWS = Settings.model_fields["chunk_rows"].default
PAUSE_SLACK = 1.5
PAUSE_TARGET_S = 0.050  # the pause figure's target (pause_resume.py)


@dataclass
class Point:
    chunk_rows: int
    rates: list[float]  # records/s of each undisturbed import
    pauses: list[float]
    resumes: list[float]
    chunks: int | None  # chunks of the last undisturbed import, from the server's log

    @property
    def rate(self) -> float:
        return bl.median(self.rates)

    @property
    def pause_med(self) -> float:
        return bl.median(self.pauses) if self.pauses else math.nan

    @property
    def pause_p99(self) -> float:
        return bl.percentile(self.pauses, 99) if self.pauses else math.nan

    @property
    def resume_med(self) -> float:
        return bl.median(self.resumes) if self.resumes else math.nan


def measure(args: argparse.Namespace, csv_path: Path, chunk_rows: int) -> Point:
    rows: int = args.rows
    run_dir = args.workdir / f"chunks-{chunk_rows}"
    rates: list[float] = []
    chunks = None
    with bl.Server.fresh(run_dir, env=bl.settings_env(chunk_rows=chunk_rows)) as server:
        for i in range(args.repeat):
            r = bl.import_csv(server, csv_path, rows=rows, dataset=f"plain_{i}")
            rates.append(rows / r.total_s)
            if profile := server.import_profiles().get(r.job_id):
                chunks = profile.chunks
        job, _, _ = bl.upload(server.client, csv_path, dataset="paused")
        cycles = bl.cycle_through(server.client, job["id"], rows=rows, cycles=args.cycles)
        bl.completed(bl.wait_job(server.client, job["id"])[0], rows=rows)
    if not args.keep:
        bl.remove(run_dir)
    if not cycles:  # a file this small for chunks this big: no pause could land
        print(f"  chunk rows {chunk_rows:,}: the import ended before any pause")
    point = Point(
        chunk_rows=chunk_rows,
        rates=rates,
        pauses=[c.pause_s for c in cycles],
        resumes=[c.resume_s for c in cycles],
        chunks=chunks,
    )
    print(
        f"  chunk rows {chunk_rows:>9,}: {point.rate:>9,.0f} records/s; pause median "
        f"{bl.ms(point.pause_med)} ms, p99 {bl.ms(point.pause_p99)} ms ({len(cycles)} pauses)"
    )
    return point


def chart(points: list[Point], path: Path, *, rows: int) -> None:
    xs = [p.chunk_rows for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 7), dpi=110)
    top.plot(xs, [p.rate / 1000 for p in points], "o-", color="tab:blue")
    top.set_ylabel("import throughput (thousand records/s)")
    top.set_ylim(bottom=0)
    top.set_title(f"Importing {rows:,} records, upload included, by COLLECT_CHUNK_ROWS")
    bottom.plot(xs, [p.pause_med * 1000 for p in points], "o-", label="pause, median")
    bottom.plot(xs, [p.pause_p99 * 1000 for p in points], "s--", label="pause, p99")
    bottom.plot(xs, [p.resume_med * 1000 for p in points], "^:", label="resume, median")
    bottom.set_ylabel("latency (ms)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("COLLECT_CHUNK_ROWS (the most records in a chunk; log scale)")
    bottom.set_xscale("log")
    bottom.legend()
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=500_000, repeat=1)
    parser.add_argument(
        "--chunk-sizes", type=int, nargs="+", default=SIZES, help="COLLECT_CHUNK_ROWS values"
    )
    parser.add_argument("--cycles", type=int, default=20, help="pauses in the paused import")
    parser.add_argument(
        "--chart", type=Path, default=bl.REPO / "docs" / "throughput.png", help="the PNG"
    )
    args = bl.parse(parser, argv)
    if args.chunk_rows is not None:
        parser.error("use --chunk-sizes")
    csv_path = bl.ensure_csv(args.workdir, args.rows)
    load_before = bl.load()

    points = [measure(args, csv_path, n) for n in sorted(args.chunk_sizes)]
    best = max(p.rate for p in points)
    # The pick goes by the pause median: the p99 of 20 pauses is their slowest, which moves
    # by tens of ms between two runs of one size on this machine. The fastest size whose
    # median pause is within half again of the quickest median wins: a pause a little
    # slower is worth more than a throughput several times lower.
    lowest = min((p.pause_med for p in points if not math.isnan(p.pause_med)), default=math.nan)
    bound = lowest * PAUSE_SLACK
    eligible = [p for p in points if p.pause_med <= bound] or points
    pick = max(eligible, key=lambda p: p.rate)
    why = (
        f"the best throughput among the sizes whose median pause is at most {bl.ms(bound)} ms, "
        f"{PAUSE_SLACK}x the lowest median ({bl.ms(lowest)} ms); its pause p99 against the "
        f"{PAUSE_TARGET_S * 1000:.0f} ms target is in the table"
    )
    current = next((p for p in points if p.chunk_rows == DEFAULT_CHUNK_ROWS), None)
    if not args.no_write:
        chart(points, args.chart, rows=args.rows)
        print(f"wrote {args.chart}")

    shown = args.chart.relative_to(bl.REPO) if args.chart.is_relative_to(bl.REPO) else args.chart
    verdict = (
        f"Suggested default: **{pick.chunk_rows:,}** ({pick.rate:,.0f} records/s, "
        f"{pick.rate / best:.0%} of the best measured, {best:,.0f}; pause p99 "
        f"{bl.ms(pick.pause_p99)} ms): {why}."
    )
    if current is not None:
        verdict += (
            f" The current default, {DEFAULT_CHUNK_ROWS:,}, gives {current.rate:,.0f} "
            f"records/s ({current.rate / best:.0%} of the best) and a pause p99 of "
            f"{bl.ms(current.pause_p99)} ms."
        )
    text = bl.section(
        TITLE,
        figures=[
            bl.Figure(
                "chunk size suggested by throughput and pause latency",
                f"{pick.chunk_rows:,} records",
            )
        ],
        load_before=load_before,
        method=(
            f"Input: {bl.input_line(args.rows, csv_path)}. For each `COLLECT_CHUNK_ROWS`, a "
            f"fresh server imports it {args.repeat} time(s) undisturbed (records/s, upload "
            f"included), then once more paused up to {args.cycles} times evenly through the "
            "file and resumed straight away (pause: request → answer `paused`; resume: "
            "request → next committed chunk). Chunks also end after about 250 ms of the "
            "worker's work, so a large value mostly lifts the row cap; *chunks* is the "
            f"count in the server's `collect.imports` line. Chart: `{shown}`."
        ),
        body=[
            *bl.table(
                [
                    "`COLLECT_CHUNK_ROWS`",
                    "records/s",
                    "chunks",
                    "pauses",
                    "pause median (ms)",
                    "pause p99 (ms)",
                    "resume median (ms)",
                ],
                [
                    (
                        f"{p.chunk_rows:,}",
                        f"{p.rate:,.0f}",
                        "-" if p.chunks is None else f"{p.chunks:,}",
                        len(p.pauses),
                        bl.ms(p.pause_med),
                        bl.ms(p.pause_p99),
                        bl.ms(p.resume_med),
                    )
                    for p in points
                ],
            ),
            "",
            verdict,
            "",
            f"![Throughput and pause latency by chunk size]({shown})",
        ],
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
