"""The README's walk-through and command-line session, pasted in order into a fresh shell.

Every ``sh`` block of those sections is run whole, and every ``$`` line of their ``console``
blocks, in the README's order, in one ``bash`` against a real service, as a reader would with
``make run`` in another shell. Any command that fails fails the test. Two things differ from
the reader's run, and only these: the service's address (a free port, not 8000; the client
finds it in ``COLLECT_SERVER``) and the size of ``big.csv`` (smaller, to keep the test quick;
its import still outlasts the steering that follows it).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess

SECTIONS = ("## Walk-through with `curl`", "## Command-line client")
_BLOCK = re.compile(r"^```(sh|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def walkthrough(markdown: str) -> list[str]:
    """The shell text of the walk-through's blocks, in order."""
    commands = []
    for section in re.split(r"^(?=## )", markdown, flags=re.MULTILINE):
        if not section.startswith(SECTIONS):
            continue
        for kind, body in _BLOCK.findall(section):
            if kind == "sh":
                commands.append(body)
            else:
                commands += [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    return commands


def test_the_walkthrough_finds_every_block() -> None:
    blocks = walkthrough((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any("bench/make_csv.py big.csv" in b for b in blocks)
    assert any("?wait=60" in b and "curl --fail -OJ" in b for b in blocks)
    assert any(b.startswith("collect import ") for b in blocks)
    assert any(b.startswith("collect pause ") for b in blocks)


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the walk-through uses curl and jq"
)
@pytest.mark.skipif(
    not (Path(sys.prefix) / "bin" / "activate").exists(),
    reason="the session activates the virtual environment the tests run in",
)
def test_the_readme_walkthrough_runs_in_order(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="50").start()
    try:
        shell = tmp_path / "shell"
        shell.mkdir()
        # The repository root as the reader's shell sees it, writing its files elsewhere.
        for name in ("sample_data", "bench"):
            (shell / name).symlink_to(ROOT / name)
        (shell / ".venv").symlink_to(Path(sys.prefix))
        script = ["set -eo pipefail"]
        for number, block in enumerate(
            walkthrough((ROOT / "README.md").read_text(encoding="utf-8")), 1
        ):
            block = block.replace("http://127.0.0.1:8000", server.url)
            block = block.replace("--rows 2000000", "--rows 300000")
            script += [f"echo '--- block {number}' >&2", block]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECT_", "VIRTUAL_ENV"))}
        run = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
            cwd=shell,
            env={**env, "COLLECT_SERVER": server.url},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert run.returncode == 0, f"stdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}"
        # What the blocks download is there and whole.
        (export,) = shell.glob("responses-*.csv")
        assert export.read_bytes().startswith(b"response_id,country,age\r\n3,France,87\r\n")
        assert (shell / "adults.csv").read_bytes().startswith(b"response_id,country,age\r\n")
    finally:
        server.stop()
