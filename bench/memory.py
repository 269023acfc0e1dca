"""Benchmark: peak memory of the service importing files of growing size, and the 10M import.

Each size (``--small``, ``--rows``, ``--large``, ``--huge`` records of the generated CSV,
``benchlib.ensure_csv``) is imported ``--repeat`` times, each into a fresh server, timed as
``import_vs_sqlite.py`` times Collect (upload included). Meanwhile a thread samples, every
``--interval`` ms, the resident set size (RSS, ``psutil``) of the server process and of
every process below it -- the data-plane workers (``python -m
collect_api.storage.dataplane.serve``) that read and write the rows. The figures:

* the peak of the tree's summed RSS importing ``--large`` records over importing
  ``--small`` (target 1.25x at most: memory must not grow with the file);
* the peak summed RSS importing ``--huge`` records (target under 256 MB);
* the ``--huge`` import's throughput (records/s, upload included) over the ``--rows`` one's
  (target: within 10%), and its peak RSS over the ``--rows`` one's (flat).

A sum of RSS counts the pages the processes share (the Python runtime, pyarrow's libraries)
once per process; the proportional set size (PSS, shared pages split between the processes
that map them) is sampled too, every 0.5 s, and each process's own high-water mark
(``VmHWM``) is read once its import completed.

Run from the repository root::

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --small 10000 --rows 100000 --large 300000 --huge 0 --no-write
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import benchlib as bl
import psutil

TITLE = "Memory: peak RSS by import size, and the 10,000,000-record import"
GROWTH_TARGET = 1.25
HUGE_TARGET_MB = 256
THROUGHPUT_TARGET = 0.90
PSS_EVERY_S = 0.5


def role(proc: psutil.Process) -> str:
    return "worker" if "collect_api.storage.dataplane.serve" in proc.cmdline() else "server"


def high_water_mb(proc: psutil.Process) -> float:
    """The process's peak RSS so far (``VmHWM`` of ``/proc/PID/status``, Linux)."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):  # in KiB
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until ``stop``."""

    def __init__(self, pid: int, *, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        self.first_mb = 0.0
        self.samples = 0
        self.peaks_by_role: dict[str, float] = {}
        self._halt = threading.Event()

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def run(self) -> None:
        last_pss = 0.0
        while not self._halt.is_set():
            total = 0.0
            for proc in self.tree():
                try:
                    mb = proc.memory_info().rss / 1e6
                    name = role(proc)
                except psutil.Error:  # it ended between the listing and the reading
                    continue
                total += mb
                self.peaks_by_role[name] = max(self.peaks_by_role.get(name, 0.0), mb)
            if self.samples == 0:
                self.first_mb = total
            self.samples += 1
            self.peak_mb = max(self.peak_mb, total)
            if time.monotonic() - last_pss >= PSS_EVERY_S:
                last_pss = time.monotonic()
                pss = 0.0
                for proc in self.tree():
                    try:
                        pss += proc.memory_full_info().pss / 1e6
                    except (psutil.Error, AttributeError):
                        continue
                self.peak_pss_mb = max(self.peak_pss_mb, pss)
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class Run:
    rows: int
    csv_mb: float
    total_s: float
    peak_mb: float
    peak_pss_mb: float
    first_mb: float  # the tree at the first sample, just before the upload
    samples: int
    by_role: dict[str, float] = field(default_factory=dict)
    high_water: dict[str, float] = field(default_factory=dict)  # VmHWM, largest per role

    @property
    def rate(self) -> float:
        return self.rows / self.total_s


def measure(args: argparse.Namespace, rows: int, i: int) -> Run:
    workdir = args.workdir
    csv_path = bl.ensure_csv(workdir, rows)
    run_dir = workdir / f"memory-run-{rows}-{i + 1}"
    env = bl.settings_env(chunk_rows=args.chunk_rows)
    with bl.Server.fresh(run_dir, env=env) as server:
        sampler = TreeSampler(server.pid, interval_s=args.interval / 1000)
        sampler.start()
        try:
            r = bl.import_csv(server, csv_path, rows=rows)
        finally:
            sampler.stop()
        high_water: dict[str, float] = {}
        for proc in sampler.tree():
            try:
                name = role(proc)
            except psutil.Error:
                continue
            high_water[name] = max(high_water.get(name, 0.0), high_water_mb(proc))
    if not args.keep:
        bl.remove(run_dir)
    run = Run(
        rows=rows,
        csv_mb=csv_path.stat().st_size / 1e6,
        total_s=r.total_s,
        peak_mb=sampler.peak_mb,
        peak_pss_mb=sampler.peak_pss_mb,
        first_mb=sampler.first_mb,
        samples=sampler.samples,
        by_role=dict(sampler.peaks_by_role),
        high_water=high_water,
    )
    print(
        f"  {rows:>10,} records: {r.total_s:7.2f} s ({run.rate:,.0f}/s), peak RSS "
        f"{run.peak_mb:.0f} MB (server {run.by_role.get('server', 0):.0f}, worker "
        f"{run.by_role.get('worker', 0):.0f}), PSS {run.peak_pss_mb:.0f} MB"
    )
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000, repeat=1)
    parser.add_argument("--small", type=int, default=100_000, help="the small import")
    parser.add_argument("--large", type=int, default=3_000_000, help="the large import")
    parser.add_argument("--huge", type=int, default=10_000_000, help="the huge one (0: none)")
    parser.add_argument("--interval", type=float, default=100.0, help="ms between samples")
    args = bl.parse(parser, argv)
    sizes = sorted({n for n in (args.small, args.rows, args.large, args.huge) if n > 0})
    load_before = bl.load()

    runs: dict[int, list[Run]] = {}
    for rows in sizes:
        for i in range(args.repeat):
            runs.setdefault(rows, []).append(measure(args, rows, i))

    def peak(rows: int) -> float:
        return bl.median(r.peak_mb for r in runs[rows])

    def rate(rows: int) -> float:
        return bl.median(r.rate for r in runs[rows])

    growth = peak(args.large) / peak(args.small)
    figures = [
        bl.Figure(
            f"peak RSS (server + workers) importing {args.large:,} records against {args.small:,}",
            f"{growth:.2f}×",
            f"≤ {GROWTH_TARGET}×",
            growth <= GROWTH_TARGET,
        )
    ]
    if args.huge:
        huge_peak = peak(args.huge)
        speed = rate(args.huge) / rate(args.rows)
        flat = huge_peak / peak(args.rows)
        figures += [
            bl.Figure(
                f"peak RSS (server + workers) importing {args.huge:,} records",
                f"{huge_peak:.0f} MB",
                f"< {HUGE_TARGET_MB} MB",
                huge_peak < HUGE_TARGET_MB,
            ),
            bl.Figure(
                f"throughput importing {args.huge:,} records against {args.rows:,}",
                f"{speed:.2f}×",
                f"≥ {THROUGHPUT_TARGET:.2f}× (within 10%)",
                speed >= THROUGHPUT_TARGET,
            ),
            bl.Figure(
                f"peak RSS importing {args.huge:,} records against {args.rows:,}",
                f"{flat:.2f}×",
                f"flat (≤ {GROWTH_TARGET}×)",
                flat <= GROWTH_TARGET,
            ),
        ]
    rows_table = []
    for rows in sizes:
        rs = runs[rows]
        rows_table.append(
            (
                f"{rows:,}",
                f"{rs[0].csv_mb:,.0f}",
                bl.fmt(bl.median(r.total_s for r in rs)),
                f"{rate(rows):,.0f}",
                f"{bl.median(r.first_mb for r in rs):.0f}",
                f"{peak(rows):.0f}",
                f"{bl.median(r.by_role.get('server', 0) for r in rs):.0f}",
                f"{bl.median(r.by_role.get('worker', 0) for r in rs):.0f}",
                f"{bl.median(r.high_water.get('worker', 0) for r in rs):.0f}",
                f"{bl.median(r.peak_pss_mb for r in rs):.0f}",
            )
        )
    last = runs[sizes[-1]][0]
    text = bl.section(
        TITLE,
        figures=figures,
        load_before=load_before,
        method=(
            f"Each size imported {args.repeat} time(s) from `make_csv.py` output (seed "
            f"{bl.SEED}, nasty) into a fresh server, chunk rows "
            f"{bl.chunk_rows_text(args.chunk_rows)}, timed from the start of the upload to "
            "`completed` (polled every 50 ms). RSS of the server process and every process "
            f"below it (its data-plane workers), summed, sampled every {args.interval:g} ms "
            "with `psutil`; *at start*: the first sample, before the upload; *server* and "
            "*worker*: the largest single process of each; *worker VmHWM*: the worker's own "
            "high-water mark read by the kernel; *PSS*: shared pages split between the "
            "processes, sampled every 0.5 s. Sizes in MB (10⁶ bytes):"
        ),
        body=bl.table(
            [
                "records",
                "CSV (MB)",
                "import (s)",
                "records/s",
                "RSS at start",
                "peak RSS, tree",
                "server",
                "worker",
                "worker VmHWM",
                "peak PSS, tree",
            ],
            rows_table,
        ),
        profile=(
            f"at {sizes[-1]:,} records the tree held {last.first_mb:.0f} MB before the "
            f"upload began (the server alone, its libraries loaded) and peaked at "
            f"{last.peak_mb:.0f} MB: server {last.by_role.get('server', 0):.0f} MB, worker "
            f"{last.by_role.get('worker', 0):.0f} MB (its own high-water mark "
            f"{last.high_water.get('worker', 0):.0f} MB); most of each is the Python runtime "
            "and the libraries it imports (FastAPI, SQLAlchemy; pyarrow, numpy, ADBC), which "
            "the size of the file does not change."
        ),
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
