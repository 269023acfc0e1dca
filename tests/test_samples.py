"""samples: the command line writes what the functions write, under both of its names.

``python -m collect_api.samples`` is the users' entry, ``bench/make_csv.py`` the benchmarks'
and the README's; each runs as its own process, as a reader runs it.
"""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from collect_api.samples import write_responses_csv, write_teams_csv
from tests.conftest import ROOT

ENTRIES = {
    "module": [sys.executable, "-m", "collect_api.samples"],
    "bench": [sys.executable, str(ROOT / "bench" / "make_csv.py")],
}


def run(entry: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENTRIES[entry], *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    ("options", "write"),
    [
        ([], lambda path: write_responses_csv(path, 120)),
        (
            ["--seed", "7", "--bom", "--lf", "--plain"],
            lambda path: write_responses_csv(
                path, 120, seed=7, bom=True, lineterminator="\n", nasty=False
            ),
        ),
        (["--teams", "--seed", "3"], lambda path: write_teams_csv(path, 120, seed=3)),
    ],
    ids=["responses", "plain-lf-bom", "teams"],
)
def test_the_command_line_writes_what_the_functions_write(
    tmp_path: Path, entry: str, options: list[str], write: Callable[[Path], int]
) -> None:
    out = tmp_path / "out.csv"
    done = run(entry, str(out), "--rows", "120", *options)
    assert done.returncode == 0, done.stderr
    assert "wrote 120 " in done.stderr and str(out) in done.stderr
    expected = tmp_path / "expected.csv"
    size = write(expected)
    assert out.read_bytes() == expected.read_bytes()
    assert f"{size} bytes" in done.stderr


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_negative_row_count_is_refused(tmp_path: Path, entry: str) -> None:
    done = run(entry, str(tmp_path / "out.csv"), "--rows", "-1")
    assert done.returncode == 2
    assert "--rows must be >= 0" in done.stderr
    assert not (tmp_path / "out.csv").exists()
