"""What an operator watches: the log, as an operator reads it (a real server, its jobs
started, paused, resumed, completed, failed and terminated, each change in one line with the
job's id), and the metrics that ``GET /metrics`` gives Prometheus."""

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collect_api.samples import write_responses_csv
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


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_jobs_their_records_chunks_controls_and_followers(
    tmp_path: Path,
) -> None:
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    write_responses_csv(small, 2_000, seed=43)
    write_responses_csv(large, 200_000, seed=44)  # chunks of 100: still running when steered
    size = small.stat().st_size
    server = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="100").start()
    try:
        done = submit(server, small.read_bytes(), "counted")
        wait_state(server, done, {"completed"})
        steered = submit(server, large.read_bytes(), "steered")
        wait_state(server, steered, {"running"})
        paused = httpx.post(f"{server.url}/jobs/{steered}/pause", timeout=30).json()
        assert paused["state"] == "paused"
        httpx.post(f"{server.url}/jobs/{steered}/resume", timeout=30)
        wait_state(server, steered, {"running"})
        with httpx.stream("GET", f"{server.url}/jobs/{steered}/events", timeout=30) as events:
            lines = events.iter_lines()  # kept: dropping it would close the stream
            assert next(lines).startswith(("id:", "event:", "data:"))
            response = httpx.get(f"{server.url}/metrics", timeout=30)
            assert response.headers["content-type"].startswith("text/plain")
            during = scrape(response.text)
        ended = httpx.post(f"{server.url}/jobs/{steered}/terminate", timeout=30).json()
        assert ended["state"] == "terminated"
        after = scrape(httpx.get(f"{server.url}/metrics", timeout=30).text)
    finally:
        server.stop()

    assert during[("collect_sse_followers", ())] == 1
    assert during[("collect_run_slots_in_use", ())] == 1
    assert during[("collect_run_slots", ())] == 2
    assert during[("collect_jobs", (("kind", "import"), ("state", "running")))] == 1
    assert after[("collect_sse_followers", ())] == 0
    assert after[("collect_run_slots_in_use", ())] == 0
    assert after[("collect_jobs", (("kind", "import"), ("state", "completed")))] == 1
    assert after[("collect_jobs", (("kind", "import"), ("state", "terminated")))] == 1
    assert after[("collect_jobs", (("kind", "import"), ("state", "queued")))] == 0
    # What chunks committed: all of the first job, and some of the terminated one.
    records = after[("collect_records_processed_total", (("kind", "import"),))]
    assert 2_000 < records < 202_000
    assert after[("collect_bytes_processed_total", (("kind", "import"),))] > size
    chunks = after[("collect_chunk_duration_seconds_count", (("kind", "import"),))]
    assert chunks >= 2
    for action in ("pause", "resume", "terminate"):
        assert after[("collect_control_latency_seconds_count", (("action", action),))] == 1
    inf = after[("collect_control_latency_seconds_bucket", (("action", "pause"), ("le", "+Inf")))]
    assert inf == 1


@pytest.mark.settings(api_keys="acme:key-of-acme")
async def test_metrics_need_a_key_when_keys_are_set(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    answer = await client.get("/metrics", headers={"Authorization": "Bearer key-of-acme"})
    assert answer.status_code == 200
    assert "collect_jobs" in answer.text
