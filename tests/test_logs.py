"""The service's log, as an operator reads it: a real server, its jobs started, paused,
resumed, completed, failed and terminated, and each change in one line with the job's id."""

import json
import re
import time
from pathlib import Path

import httpx
from make_csv import write_responses_csv

from tests.conftest import ServerProcess

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def wait_state(server: ServerProcess, job_id: str, states: set[str]) -> dict:
    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(f"{server.url}/jobs/{job_id}", timeout=10).json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.02)


def submit(server: ServerProcess, content: bytes, dataset: str) -> str:
    response = httpx.post(
        f"{server.url}/imports",
        data={"dataset": dataset},
        files={"file": ("in.csv", content, "text/csv")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def run_jobs(server: ServerProcess, source: Path) -> dict[str, str]:
    """A job steered through every change; one that completes, one that fails."""
    data = source.read_bytes()
    steered = submit(server, data, "steered")
    wait_state(server, steered, {"running"})
    assert httpx.post(f"{server.url}/jobs/{steered}/pause", timeout=30).json()["state"] == "paused"
    httpx.post(f"{server.url}/jobs/{steered}/resume", timeout=30)
    ended = httpx.post(f"{server.url}/jobs/{steered}/terminate", timeout=30).json()
    assert ended["state"] == "terminated"
    completed = submit(server, b"a,b\r\n1,2\r\n3,4\r\n", "small")
    wait_state(server, completed, {"completed"})
    failed = submit(server, b"a,b\r\n1,2\r\n3,4,5\r\n", "ragged")
    wait_state(server, failed, {"failed"})
    return {"steered": steered, "completed": completed, "failed": failed}


def test_each_change_of_a_job_is_one_line_with_a_timestamp_a_level_and_its_id(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 200_000, seed=41)
    server = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="100").start()
    try:
        jobs = run_jobs(server, source)
    finally:
        server.stop()
    lines = server.log.read_text().splitlines()
    assert lines and all(re.match(TIMESTAMP + r" (DEBUG|INFO|WARNING|ERROR) ", x) for x in lines)
    assert any(f"database: sqlite+aiosqlite:///{tmp_path}" in x for x in lines)
    assert any(" access: " in x for x in lines)

    def changes(job_id: str) -> list[str]:
        mine = [x for x in lines if f"[job {job_id}]" in x and " collect.jobs " in x]
        return [x.split(f"[job {job_id}] import job ", 1)[1] for x in mine]

    steered = changes(jobs["steered"])
    assert [c.split(" by ")[0] for c in steered] == [
        "submitted",
        "started",
        "pausing",
        "paused",
        "resumed",
        "started",
        "terminating",
        "terminated",
    ]
    assert all(" INFO " in x for x in lines if f"[job {jobs['steered']}]" in x)
    assert [c.split(" by ")[0] for c in changes(jobs["completed"])] == [
        "submitted",
        "started",
        "completed",
    ]
    failed = changes(jobs["failed"])
    assert failed[-1].startswith("failed by system: ")
    assert "line 3" in failed[-1]  # the reason, as the job's error gives it


def test_json_logs_give_one_object_a_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_responses_csv(source, 200_000, seed=42)
    server = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="100", COLLECT_LOG_FORMAT="json").start()
    try:
        jobs = run_jobs(server, source)
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert all(re.fullmatch(TIMESTAMP, r["time"]) for r in records)
    mine = [r for r in records if r.get("job_id") == jobs["completed"]]
    assert [r["message"].split(" by ")[0] for r in mine] == [
        "import job submitted",
        "import job started",
        "import job completed",
    ]
    assert any(r["logger"] == "uvicorn.access" for r in records)
