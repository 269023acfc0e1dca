"""Run every benchmark in order at full size and rewrite ``BENCHMARKS.md`` (``make bench``).

Each script runs as its own process (the interpreter running this one, with its
environment) and replaces its own section of ``--benchmarks``; then the summary at the top
of the file -- every section's figures in one table, each with its section -- is rebuilt
from the sections. A script that fails stops the run (its section is left as it was).

Run from the repository root::

    .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only import_vs_sqlite export_vs_sqlite
    .venv/bin/python bench/run_all.py --list
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import benchlib as bl

# The order of the file's sections, each script with the arguments of its full-size run.
# Import and export run five times a side: on this shared machine one run of either side
# took from 0.5x to 1.5x the other runs' median (2026-12-04).
SCRIPTS: list[tuple[str, list[str]]] = [
    ("import_vs_sqlite", ["--rows", "1000000", "--repeat", "5"]),
    ("export_vs_sqlite", ["--rows", "1000000", "--repeat", "5"]),
    ("pause_resume", ["--rows", "1000000", "--repeat", "3"]),
    ("get_latency", ["--rows", "1000000", "--repeat", "3"]),
    ("sse_followers", ["--rows", "1000000", "--repeat", "3"]),
    ("terminate_staged", ["--rows", "1000000", "--repeat", "3"]),
    ("memory", ["--small", "100000", "--rows", "1000000", "--large", "3000000"]),
    ("chunk_chart", ["--rows", "500000", "--repeat", "3"]),
    ("recovery_times", ["--rows", "1000000", "--repeat", "3"]),
    ("postgres_servers", ["--rows", "1000000", "--repeat", "3"]),
]

PREAMBLE = """# Benchmarks

Every figure below is measured by a script in `bench/`, against a reference measured in the
same run where it is a ratio, on a real server (`collect serve`) over loopback. Each section
names the command that reproduces it, the machine and the date. `make bench` runs them all
in order (`bench/run_all.py`) and rewrites this file; each script also runs alone, with
`--rows` and friends, and `--no-write` to leave this file as it is.

## Summary
"""


def split(text: str) -> dict[str, str]:
    """Each ``##`` section's text by its title
    (``###`` sub-headings stay in their section; headings in code fences are not headings)."""
    lines = text.splitlines(keepends=True)
    starts, fenced = [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            starts.append(i)
    bounds = [*starts, len(lines)]
    found = {}
    for start, end in itertools.pairwise(bounds):
        found[lines[start][3:].strip()] = "".join(lines[start:end]).strip("\n") + "\n"
    return found


def figures(section: str) -> list[str]:
    """The rows of the section's table of figures, the first of its tables."""
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows[2:] if rows and rows[0].startswith("| figure |") else []


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def summarise(path: Path) -> None:
    """Rewrite the file: the preamble, one table of every section's figures, then the
    sections in the scripts' order (any others after them)."""
    found = split(path.read_text(encoding="utf-8"))
    found.pop("Summary", None)
    order = [importlib.import_module(name).TITLE for name, _ in SCRIPTS]
    titles = [t for t in order if t in found] + [t for t in found if t not in order]
    rows = [
        row.rstrip().rstrip("|") + f"| [{title}](#{anchor(title)}) |"
        for title in titles
        for row in figures(found[title])
    ]
    head = bl.table(["figure", "measured", "target", "met", "section"], [])
    text = "\n".join([PREAMBLE, *head, *rows, ""])
    text += "".join("\n" + found[title] for title in titles)
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", default=None, help="these scripts alone")
    parser.add_argument("--benchmarks", type=Path, default=bl.BENCHMARKS, help="the file")
    parser.add_argument("--list", action="store_true", help="print the scripts and stop")
    args = parser.parse_args(argv)
    names = [name for name, _ in SCRIPTS]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = set(args.only or []) - set(names)
    if unknown:
        parser.error(f"unknown scripts: {', '.join(sorted(unknown))}")

    here = Path(__file__).resolve().parent
    started = time.monotonic()
    for name, script_args in SCRIPTS:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(here / f"{name}.py"), *script_args]
        if args.benchmarks.resolve() != bl.BENCHMARKS:
            cmd += ["--benchmarks", str(args.benchmarks)]
        print(f"\n=== {name} ({time.monotonic() - started:.0f} s so far)", flush=True)
        if subprocess.run(cmd, cwd=bl.REPO).returncode != 0:
            print(f"{name} failed; stopping", file=sys.stderr)
            return 1
    summarise(args.benchmarks)
    print(f"\nall done in {time.monotonic() - started:.0f} s; updated {args.benchmarks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
