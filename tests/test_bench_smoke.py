"""Every benchmark script runs, on a tiny input, and prints its figures: none of them rots.

Each script runs as ``make bench`` runs it, as its own process with a real server, but with
a few thousand records, one repeat and small chunks (so that pauses and stops land in a
running job). Only that it exits 0 and prints its table of figures is checked: timings on a
shared machine say nothing here, so no test asserts one.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "bench"
NOT_SCRIPTS = {"benchlib", "make_csv", "run_all"}
NO_WRITE = {"pause_resume"}  # run with --no-write: the file must be left alone

# Each script, the arguments of its tiny run, and a figure its output must name.
RUNS: dict[str, tuple[list[str], str]] = {
    "import_vs_sqlite": (["--rows", "2000"], "| import of 2,000 records through the API"),
    "export_vs_sqlite": (["--rows", "2000"], "| export of 2,000 rows through the API"),
    "pause_resume": (
        ["--rows", "4000", "--chunk-rows", "100", "--cycles", "3"],
        "| pause: request to the answer `paused`",
    ),
    "get_latency": (
        ["--rows", "2000", "--chunk-rows", "100"],
        "| `GET /jobs/{id}` while two imports run (p99)",
    ),
    "sse_followers": (["--rows", "2000", "--followers", "5"], "| import time with 5 SSE"),
    "terminate_staged": (
        ["--rows", "1000", "--chunk-rows", "50"],
        "| terminate of a running import with 1,000 records staged",
    ),
    "memory": (
        ["--small", "500", "--rows", "500", "--large", "1000", "--huge", "1000"],
        "| peak RSS (server + workers) importing 1,000 records |",
    ),
    "chunk_chart": (
        ["--rows", "2000", "--chunk-sizes", "100", "--cycles", "2"],
        "| chunk size suggested by throughput and pause latency",
    ),
    "recovery_times": (
        [
            *("--rows", "20000", "--chunk-rows", "5", "--stop-after", "500"),
            *("--leases", "0.5"),
        ],
        "| restart after `SIGKILL`: spawn → new chunk",
    ),
    "postgres_servers": (
        ["--rows", "2000", "--cycles", "2", "--chunk-rows", "100"],
        "| pause sent through the server that does not run the job",
    ),
}
NEEDS = {
    "import_vs_sqlite": "sqlite3",
    "export_vs_sqlite": "sqlite3",
    "memory": "psutil",
    "get_latency": "psutil",
    "chunk_chart": "matplotlib",
    "postgres_servers": "psql",
}


def available(need: str) -> bool:
    if need in ("sqlite3", "psql"):
        return shutil.which(need) is not None
    return importlib.util.find_spec(need) is not None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir for every script: the tiny CSVs are generated once."""
    return tmp_path_factory.mktemp("bench")


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_every_script_is_run_here_and_by_make_bench() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py")} - NOT_SCRIPTS
    assert scripts == set(RUNS)
    listed = run("run_all", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == list(RUNS)


@pytest.mark.parametrize("script", list(RUNS))
def test_script_prints_its_figures(script: str, workdir: Path) -> None:
    need = NEEDS.get(script)
    if need and not available(need):
        if os.environ.get("CI"):
            pytest.fail(f"{need} is missing: `make install` installs it")
        pytest.skip(f"{need} is missing (pip install -e '.[bench]')")
    args, figure = RUNS[script]
    out = workdir / script
    common = ["--repeat", "1", "--workdir", str(workdir), "--benchmarks", str(out / "B.md")]
    extra = ["--chart", str(out / "chart.png")] if script == "chunk_chart" else []
    extra += ["--no-write"] if script in NO_WRITE else []
    done = run(script, *args, *common, *extra)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "| figure | measured | target | met |" in done.stdout
    assert figure in done.stdout
    if script in NO_WRITE:
        assert not (out / "B.md").exists()
        return
    written = (out / "B.md").read_text(encoding="utf-8")
    assert figure in written and "Command (from the repository root):" in written
    if extra:
        assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")


# Two sections written into the file named by the argument, by benchlib as the scripts
# import it: from bench/, in a process of its own (the tests import nothing from bench/).
WRITE_SECTIONS = """
import sys
from pathlib import Path

import benchlib

path = Path(sys.argv[1])
benchlib.write_section(path, "A", "## A\\n\\nnew a\\n")
benchlib.write_section(path, "C", "## C\\n\\nc\\n")
"""


def test_write_section_replaces_its_own_section_only(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text(
        "# Benchmarks\n\nintro\n\n## A\n\nold a\n\n### sub\n\n```sh\n## not a heading\n```\n\n"
        "## B\n\nb\n",
        encoding="utf-8",
    )
    pythonpath = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", WRITE_SECTIONS, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert path.read_text(encoding="utf-8") == (
        "# Benchmarks\n\nintro\n\n## A\n\nnew a\n\n## B\n\nb\n\n## C\n\nc\n"
    )
