"""The ``collect`` client, run as a subprocess against a real ``collect serve`` process.

Long jobs are steered early (chunks of 20 records, a 200,000-record file) and their states
checked rather than their timing, so the tests hold however fast the engine gets.
"""

import csv
import gzip
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

from collect_api.samples import responses, write_responses_csv
from tests.conftest import ServerProcess

COLLECT = Path(sys.executable).with_name("collect")
T = TypeVar("T")


def collect_command(*args: str) -> list[str]:
    if COLLECT.exists():
        return [str(COLLECT), *args]
    return [sys.executable, "-m", "collect_api", *args]


def cli_env(server: ServerProcess, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECT_")}
    return {**env, "COLLECT_SERVER": server.url, **extra}


def collect(
    server: ServerProcess, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``collect ARGS`` to its end without a terminal (stdin, stdout and stderr are not)."""
    return subprocess.run(
        collect_command(*args),
        env=cli_env(server, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_collect(
    server: ServerProcess, *args: str, stdout: int = subprocess.PIPE
) -> "subprocess.Popen[str]":
    """Start ``collect ARGS`` without a terminal; end it with ``reap``."""
    return subprocess.Popen(
        collect_command(*args),
        env=cli_env(server),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def reap(proc: "subprocess.Popen[str]") -> None:
    """Kill the process if it still runs, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll ``check`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Lines:
    """The lines a process writes to a pipe, read as they come by a thread of their own."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        with pipe:
            for line in pipe:
                self._lines.append(line)

    def join(self) -> None:
        """Once the process has ended: the last lines, and the pipe closed."""
        self._thread.join(timeout=30)

    def has(self, text: str, timeout: float = 0) -> bool | None:
        """Whether a line holds ``text`` (waiting up to ``timeout``); None if none does."""
        deadline = time.monotonic() + timeout
        while True:
            if any(text in line for line in list(self._lines)):
                return True
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)


def get_job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def job_for(server: ServerProcess, dataset: str) -> dict[str, Any]:
    """The job working on ``dataset``, once the service has it."""

    def find() -> dict[str, Any] | None:
        items = httpx.get(f"{server.url}/jobs", params={"limit": 1000}, timeout=30).json()["items"]
        return next((j for j in items if j["params"].get("dataset") == dataset), None)

    return wait_until(find, f"a job for dataset {dataset}")


def wait_running(server: ServerProcess, job_id: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        job = get_job(server, job_id)
        assert job["state"] not in ("completed", "failed", "terminated"), job
        return job if job["state"] == "running" and job["progress"]["done"] > 0 else None

    return wait_until(running, f"job {job_id} to be running")


def wait_state(server: ServerProcess, job_id: str, state: str) -> dict[str, Any]:
    return wait_until(
        lambda: job if (job := get_job(server, job_id))["state"] == state else None,
        f"job {job_id} to be {state}",
    )


def followers_seen(server: ServerProcess, job_id: str) -> int:
    """How many times the job's event stream was opened, by the server's access log."""
    return server.log.read_text().count(f'"GET /jobs/{job_id}/events HTTP/1.1" 200')


def wait_followed(server: ServerProcess, job_id: str, times: int = 1) -> None:
    wait_until(
        lambda: True if followers_seen(server, job_id) >= times else None,
        f"{times} follower(s) of job {job_id}",
    )


def dataset_rows(server: ServerProcess, name: str) -> list[list[str]]:
    rows: list[list[str]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = httpx.get(f"{server.url}/datasets/{name}/rows", params=params, timeout=30).json()
        rows += page["rows"]
        if page["next"] is None:
            return rows
        params["after"] = page["next"]


def end_job(server: ServerProcess, job_id: str) -> None:
    """Clean up after a test: pause the job, then terminate it.

    A running job is terminated by cancelling its coroutine mid-chunk, and a service has been
    seen to come out of that with its write lock still held, refusing every later write; a
    paused job is terminated in one transaction. A test's cleanup takes the path that cannot
    wedge the service the next tests share.
    """
    httpx.post(f"{server.url}/jobs/{job_id}/pause", timeout=60)
    httpx.post(f"{server.url}/jobs/{job_id}/terminate", timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One service for the module's tests (each uses datasets of its own), in small chunks."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("server"), COLLECT_CHUNK_ROWS="20", COLLECT_MAX_RUNNING_JOBS="4"
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def steering(tmp_path: Path) -> Iterator[ServerProcess]:
    """A service of the test's own, for a test that freezes it or terminates a running job."""
    proc = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="20").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "big.csv"
    write_responses_csv(path, 200_000, seed=7)
    return path


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.csv"
    write_responses_csv(path, 2_000, seed=5)
    return path


def test_import_is_followed_to_the_end_and_every_row_arrives(
    server: ServerProcess, small_csv: Path
) -> None:
    done = collect(server, "import", str(small_csv), "--dataset", "followed")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Imported 2,000 rows into dataset followed in ")
    assert "0 rejected" in done.stdout
    assert done.stderr == ""  # no terminal: no progress bars
    assert dataset_rows(server, "followed") == list(responses(2_000, seed=5))


def test_import_json_is_the_job_as_the_api_returns_it(
    server: ServerProcess, small_csv: Path
) -> None:
    done = collect(server, "import", str(small_csv), "-d", "as_json", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job == get_job(server, job["id"])
    assert job["state"] == "completed" and job["result"]["rows_imported"] == 2_000
    assert done.stderr == ""


def test_detach_then_watch(server: ServerProcess, small_csv: Path) -> None:
    detached = collect(server, "import", str(small_csv), "-d", "detached", "--detach")
    assert detached.returncode == 0, detached.stderr
    job_id = detached.stdout.strip()
    assert get_job(server, job_id)["params"]["dataset"] == "detached"

    watched = collect(server, "watch", job_id)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.startswith("Imported 2,000 rows into dataset detached")
    assert dataset_rows(server, "detached") == list(responses(2_000, seed=5))

    as_json = collect(server, "watch", job_id, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == get_job(server, job_id)

    json_detached = collect(
        server, "import", str(small_csv), "-d", "detached2", "--detach", "--json"
    )
    job = json.loads(json_detached.stdout)
    assert job["state"] in ("queued", "running", "completed")
    assert get_job(server, job["id"])["params"] == job["params"]


def test_pause_resume_and_terminate_by_id(server: ServerProcess, big_csv: Path) -> None:
    job_id = collect(server, "import", str(big_csv), "-d", "steered", "--detach").stdout.strip()
    try:
        wait_running(server, job_id)
        paused = collect(server, "pause", job_id)
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith(f"Job {job_id} is paused (")
        assert f"collect resume {job_id}" in paused.stdout
        at = get_job(server, job_id)
        assert at["state"] == "paused"

        again = collect(server, "pause", job_id, "--json")  # idempotent
        assert again.returncode == 0 and json.loads(again.stdout) == at

        resumed = collect(server, "resume", job_id, "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["state"] in ("queued", "running")
        # It goes on from its checkpoint, not from the start.
        assert get_job(server, job_id)["progress"]["done"] >= at["progress"]["done"]

        # (A running job's terminate is test_watch_exits_3_when_the_job_is_terminated's.)
        assert collect(server, "pause", job_id).returncode == 0
        ended = collect(server, "terminate", job_id, "--yes")
        assert ended.returncode == 0, ended.stderr
        assert ended.stdout.startswith(f"Job {job_id} is terminated")
        assert get_job(server, job_id)["state"] == "terminated"
        assert httpx.get(f"{server.url}/datasets/steered").status_code == 404

        # Without a terminal, terminate asks nothing.
        as_json = collect(server, "terminate", job_id, "--json")
        assert as_json.returncode == 0 and json.loads(as_json.stdout)["state"] == "terminated"

        refused = collect(server, "resume", job_id)
        problem = httpx.post(f"{server.url}/jobs/{job_id}/resume").json()
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr == problem["detail"] + "\n"
    finally:
        end_job(server, job_id)


def test_sigint_pauses_a_following_import_and_exits_130(
    server: ServerProcess, big_csv: Path
) -> None:
    following = start_collect(server, "import", str(big_csv), "-d", "interrupted", "--json")
    job = job_for(server, "interrupted")
    try:
        wait_followed(server, job["id"])
        wait_running(server, job["id"])
        following.send_signal(signal.SIGINT)
        out, err = following.communicate(timeout=60)
        assert following.returncode == 130, err
        paused = get_job(server, job["id"])
        assert paused["state"] == "paused" and paused["progress"]["done"] > 0
        assert f"collect resume {job['id']}" in err
        assert "Traceback" not in err
        assert json.loads(out) == paused  # the job as the service has it, after the pause

        resumed = collect(server, "resume", job["id"])
        assert resumed.returncode == 0
        assert get_job(server, job["id"])["progress"]["done"] >= paused["progress"]["done"]
    finally:
        reap(following)
        end_job(server, job["id"])


def test_a_second_sigint_exits_at_once(steering: ServerProcess, big_csv: Path) -> None:
    server = steering
    following = start_collect(
        server, "import", str(big_csv), "-d", "twice", stdout=subprocess.DEVNULL
    )
    stderr = Lines(following.stderr)
    job = job_for(server, "twice")
    assert server.proc is not None
    try:
        wait_followed(server, job["id"])
        wait_running(server, job["id"])
        # A frozen service cannot answer the pause, so the client is surely still waiting.
        server.proc.send_signal(signal.SIGSTOP)
        following.send_signal(signal.SIGINT)
        wait_until(lambda: stderr.has("Pausing job"), "the pause to be asked for")
        following.send_signal(signal.SIGINT)
        assert following.wait(timeout=30) == 130
        assert stderr.has(f"collect show {job['id']}", timeout=10)
        assert not stderr.has("Traceback", timeout=0)
    finally:
        server.proc.send_signal(signal.SIGCONT)
        if following.poll() is None:
            reap(following)
        stderr.join()
    # Left as the service has it: never ended by the client.
    assert get_job(server, job["id"])["state"] in ("running", "pausing", "paused")
    end_job(server, job["id"])


def test_export_with_where_and_columns_downloads_the_file(
    server: ServerProcess, small_csv: Path, tmp_path: Path
) -> None:
    assert collect(server, "import", str(small_csv), "-d", "to_export").returncode == 0
    out = tmp_path / "adults.csv"
    done = collect(
        server, "export", "to_export",
        "--columns", "response_id,country,age",
        "--where", "age > 30", "--where", "country = France", "--where", "age<=60",
        "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = [
        [r[0], r[3], r[4]]
        for r in responses(2_000, seed=5)
        if 30 < int(r[4]) <= 60 and r[3] == "France"
    ]
    assert expected  # the filters leave something to compare
    assert done.stdout.startswith(f"Exported {len(expected):,} rows (")
    assert f"Saved to {out}." in done.stdout
    assert list(csv.reader(io.StringIO(out.read_text("utf-8"), newline=""))) == [
        ["response_id", "country", "age"],
        *expected,
    ]

    zipped = tmp_path / "all.csv.gz"
    as_json = collect(server, "export", "to_export", "--gzip", "-w", "comment ~ emoji",
                      "-o", str(zipped), "--json")  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    job = json.loads(as_json.stdout)
    assert job == get_job(server, job["id"]) and job["state"] == "completed"
    assert job["params"]["filters"] == [{"column": "comment", "op": "contains", "value": "emoji"}]
    rows = list(csv.reader(io.StringIO(gzip.decompress(zipped.read_bytes()).decode(), newline="")))
    assert rows[1:] == [r for r in responses(2_000, seed=5) if "emoji" in r[7]]
    assert job["result"]["rows"] == len(rows) - 1


def test_json_of_the_listing_commands(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "some.csv"
    source.write_text("a,b\r\n1,2\r\n3\r\n4,5\r\n", encoding="utf-8")
    imported = collect(
        server, "import", str(source), "-d", "listed", "--on-error", "skip", "--json"
    )
    assert imported.returncode == 0, imported.stderr
    job = json.loads(imported.stdout)
    assert job["result"]["rows_rejected"] == 1

    listed = json.loads(collect(server, "jobs", "--json", "--limit", "1000").stdout)
    api_list = httpx.get(f"{server.url}/jobs", params={"limit": 1000}).json()["items"]
    assert [j["id"] for j in listed] == [j["id"] for j in api_list]
    assert listed[0] == get_job(server, job["id"])
    only = json.loads(collect(server, "jobs", "--json", "--kind", "import", "-n", "1").stdout)
    assert [j["id"] for j in only] == [job["id"]]

    shown = json.loads(collect(server, "show", job["id"], "--json").stdout)
    assert shown == get_job(server, job["id"])

    assert json.loads(collect(server, "version", "--json").stdout)["version"]
    datasets = json.loads(collect(server, "datasets", "--json").stdout)
    listed_ds = next(d for d in datasets if d["name"] == "listed")
    assert listed_ds["row_count"] == 2 and listed_ds["columns"] == ["a", "b"]

    rows = json.loads(collect(server, "rows", "listed", "--json").stdout)
    assert rows["columns"] == ["a", "b"] and rows["rows"] == [["1", "2"], ["4", "5"]]

    rejected = json.loads(collect(server, "errors", job["id"], "--json").stdout)
    assert [(r["line"], r["record"], r["raw"]) for r in rejected] == [(3, 2, "3")]

    teams_csv = tmp_path / "teams.csv"
    teams_csv.write_text(
        "team,member_email,member_name,role\r\nSales,a@example.org,A,lead\r\n"
        "sales ,b@example.org,B,member\r\n",
        encoding="utf-8",
    )
    teams = collect(server, "teams", str(teams_csv), "--json")
    assert teams.returncode == 0, teams.stderr
    team_job = json.loads(teams.stdout)
    assert team_job["kind"] == "teams" and team_job["result"]["teams_created"] == 1
    assert team_job == get_job(server, team_job["id"])


def test_human_output_of_the_listing_commands(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("name,city\r\nAda,London\r\nRené,Paris\r\nbad\r\n", encoding="utf-8")
    imported = collect(server, "import", str(source), "-d", "people", "--on-error", "skip")
    assert imported.returncode == 0, imported.stderr
    job_id = get_job_id_from_list(server, "people")
    assert f"See the rejected rows with: collect errors {job_id}" in imported.stdout

    table = collect(server, "jobs", "--kind", "import")
    assert table.returncode == 0
    header, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "STATE"]
    assert any(line.split()[:3] == [job_id, "import", "completed"] for line in lines)

    page = collect(server, "show", job_id)
    assert f"Job {job_id}  import  completed" in page.stdout
    for part in ("Parameters", "Progress", "Result", "History", "rows_imported", "submitted"):
        assert part in page.stdout

    assert "René" in collect(server, "rows", "people").stdout
    assert "people" in collect(server, "datasets").stdout
    # Piped, the rejected records are the service's CSV itself; -o writes them to a file.
    served = httpx.get(f"{server.url}/jobs/{job_id}/errors").content
    piped = collect(server, "errors", job_id)
    assert piped.stdout == served.decode().replace("\r\n", "\n")  # read as text, hence \n
    saved = tmp_path / "rejected.csv"
    assert collect(server, "errors", job_id, "-o", str(saved)).returncode == 0
    assert saved.read_bytes() == served


def get_job_id_from_list(server: ServerProcess, dataset: str) -> str:
    return str(job_for(server, dataset)["id"])


def test_exit_codes(server: ServerProcess, small_csv: Path, tmp_path: Path) -> None:
    # 1: the job failed; the error says where.
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\r\n1,2\r\n3\r\n", encoding="utf-8")
    failed = collect(server, "import", str(ragged), "-d", "ragged", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["state"] == "failed"
    assert "failed" in failed.stderr and "line 3" in failed.stderr

    # 1: the service refused the request; stderr is its problem's detail.
    assert collect(server, "import", str(small_csv), "-d", "exists").returncode == 0
    refused = collect(server, "import", str(small_csv), "-d", "exists")
    detail = httpx.post(
        f"{server.url}/imports",
        files={"file": ("x.csv", b"a\r\n1\r\n")},
        data={"dataset": "exists"},
    ).json()["detail"]
    assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", detail + "\n")
    unknown = collect(server, "show", "01jzzzzzzzzzzzzzzzzzzzzzzz")
    assert unknown.returncode == 1 and "No job with id" in unknown.stderr

    # 1: no service there; one line naming the URL.
    nowhere = collect(server, "jobs", "--server", "http://127.0.0.1:9")
    assert nowhere.returncode == 1
    assert nowhere.stderr.count("\n") == 1 and "http://127.0.0.1:9" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr

    # 2: usage errors, before anything is sent.
    before = len(httpx.get(f"{server.url}/jobs", params={"limit": 1000}).json()["items"])
    for args in (
        ["import", str(small_csv)],  # no --dataset
        ["import", str(tmp_path / "missing.csv"), "-d", "missing"],
        ["import", str(tmp_path), "-d", "directory"],
        ["teams", str(tmp_path)],
        ["import", str(small_csv), "-d", "x", "--mode", "merge"],
        ["export", "exists", "-o", str(tmp_path / "x.csv"), "--where", "age 30"],
        ["export", "exists"],  # no -o
        ["export", "exists", "-o", str(tmp_path / "nowhere" / "x.csv")],
        ["jobs", "--state", "sleeping"],
        ["jobs", "--server", "localhost:8000"],
        ["frobnicate"],
    ):
        usage = collect(server, *args)
        assert usage.returncode == 2, (args, usage.stderr)
        assert usage.stdout == "" and usage.stderr
    assert len(httpx.get(f"{server.url}/jobs", params={"limit": 1000}).json()["items"]) == before


def test_watch_exits_3_when_the_job_is_terminated(steering: ServerProcess, big_csv: Path) -> None:
    server = steering
    job_id = collect(server, "import", str(big_csv), "-d", "doomed", "--detach").stdout.strip()
    watching = start_collect(server, "watch", job_id, "--json")
    try:
        wait_followed(server, job_id)
        wait_running(server, job_id)
        ended = collect(server, "terminate", job_id, "--yes")
        assert ended.returncode == 0, ended.stderr
        out, err = watching.communicate(timeout=60)
        assert watching.returncode == 3, err
        assert json.loads(out)["state"] == "terminated"
        assert "terminated" in err
    finally:
        reap(watching)
        end_job(server, job_id)


def test_api_keys_are_sent_from_key_or_the_environment(tmp_path: Path) -> None:
    keyed = ServerProcess(tmp_path, COLLECT_API_KEYS="acme:s3cret").start()
    try:
        refused = collect(keyed, "jobs")
        assert refused.returncode == 1 and "API key is required" in refused.stderr
        assert collect(keyed, "jobs", "--key", "s3cret", "--json").stdout.strip() == "[]"
        assert collect(keyed, "datasets", "--json", COLLECT_API_KEY="s3cret").returncode == 0
        wrong = collect(keyed, "jobs", "--key", "guess")
        assert wrong.returncode == 1 and "not known" in wrong.stderr
    finally:
        keyed.stop()


def test_a_follower_survives_a_server_restart(tmp_path: Path) -> None:
    source = tmp_path / "restart.csv"
    write_responses_csv(source, 20_000, seed=9)
    service = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="50").start()
    watching = None
    try:
        with source.open("rb") as file:
            job = httpx.post(
                f"{service.url}/imports",
                files={"file": ("restart.csv", file)},
                data={"dataset": "restarted"},
                timeout=60,
            ).json()
        # Paused at once, so that the restart surely happens in the middle of the job.
        assert httpx.post(f"{service.url}/jobs/{job['id']}/pause", timeout=60).json()["state"] == (
            "paused"
        )
        watching = start_collect(service, "watch", job["id"], "--json")
        wait_followed(service, job["id"])
        service.stop()
        service.start()
        wait_followed(service, job["id"], times=2)  # it came back by itself
        assert watching.poll() is None
        httpx.post(f"{service.url}/jobs/{job['id']}/resume", timeout=60)
        out, err = watching.communicate(timeout=120)
        assert watching.returncode == 0, err
        ended = json.loads(out)
        assert ended["state"] == "completed" and ended["result"]["rows_imported"] == 20_000
        assert dataset_rows(service, "restarted") == list(responses(20_000, seed=9))
    finally:
        if watching is not None:
            reap(watching)
        service.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_ctrl_c_in_a_terminal_asks_what_to_do(
    server: ServerProcess, big_csv: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "tmux.sock"

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", str(socket), *args], check=True, capture_output=True, text=True
        ).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-J", "-S", "-100", "-t", "cli")

    def shows(text: str, times: int = 1) -> bool | None:
        return True if screen().count(text) >= times else None

    command = shlex.join([*collect_command("import", str(big_csv), "-d", "tty")])
    tmux("new-session", "-d", "-s", "cli", "-x", "160", "-y", "40", "bash --norc --noprofile")
    job_id = None
    try:
        tmux("send-keys", "-t", "cli", f"export COLLECT_SERVER={server.url}", "Enter")
        tmux("send-keys", "-t", "cli", f'{command}; echo "exit=$?"', "Enter")
        job_id = job_for(server, "tty")["id"]
        wait_until(lambda: shows("accepted; following it"), "the follower to start")
        wait_followed(server, job_id)
        wait_until(lambda: shows("records/s"), "the job's progress bar")

        tmux("send-keys", "-t", "cli", "C-c")
        wait_until(lambda: shows("Choice [p/t/d/k]"), "the question")
        assert "keep following" in screen() and "terminate it" in screen()
        tmux("send-keys", "-t", "cli", "k", "Enter")
        # Keeps following: the stream is opened again, and the job was left running.
        wait_followed(server, job_id, times=2)
        assert get_job(server, job_id)["state"] == "running"

        tmux("send-keys", "-t", "cli", "C-c")
        wait_until(lambda: shows("Choice [p/t/d/k]", times=2), "the question, again")
        tmux("send-keys", "-t", "cli", "p", "Enter")
        # The command line itself shows 'exit=$?'; its end shows the number.
        ended = wait_until(lambda: re.search(r"exit=(\d+)", screen()), "the command to end")
        assert ended[1] == "130"
        text = screen()
        assert f"Resume it with: collect resume {job_id}" in text
        assert get_job(server, job_id)["state"] == "paused"
    finally:
        if job_id is not None:
            end_job(server, job_id)
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], check=False)


def test_the_client_loads_nothing_of_the_service() -> None:
    """Client verbs talk HTTP only, and start without loading the server's stack."""
    code = (
        "import sys, collect_api.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'uvicorn', 'fastapi', 'starlette', 'sqlalchemy', 'sqlmodel', 'aiosqlite'} "
        "or (m.startswith('collect_api.') and not m.startswith(('collect_api.cli', "
        "'collect_api.client')))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
