"""Control requests against a real server, sent the moment the job allows them.

- Pause, resume and terminate answer with the settled state (``paused``; ``running`` or
  ``queued``; ``terminated``), even when the request follows the job's previous transition
  before the server's broker has polled it, so that older changes are still on their way.
- Terminates at random moments (right after the job starts, after a resume, in the middle of
  a chunk) end the job, leave no lock held and no traceback, and the next import goes in.
"""

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from collect_api.samples import write_responses_csv
from tests.conftest import ServerProcess
from tests.helpers import take_write_lock

pytestmark = pytest.mark.backends

ROWS = 120_000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("src") / "responses.csv"
    write_responses_csv(path, ROWS, seed=14)
    return path.read_bytes()


def submit(client: httpx.Client, content: bytes, dataset: str) -> dict[str, Any]:
    response = client.post(
        "/imports",
        files={"file": ("responses.csv", content, "text/csv")},
        data={"dataset": dataset},
    )
    assert response.status_code == 202, response.text
    return response.json()


def until_state(client: httpx.Client, job_id: str, states: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert job["state"] not in {"completed", "failed", "terminated"}, job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.002)


def test_control_requests_answer_with_the_settled_state(
    tmp_path: Path, database: str, source: bytes
) -> None:
    # The broker polls slowly, so that a request made right after a transition always meets
    # older changes still to be delivered; large chunks make the safe point take a while.
    server = ServerProcess(
        tmp_path,
        database_url=database,
        COLLECT_CHUNK_ROWS="50000",
        COLLECT_POLL_INTERVAL_S="0.15",
    ).start()
    answers: list[tuple[str, str]] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for cycle in range(12):
                job = submit(client, source, f"settled_{cycle}")
                until_state(client, job["id"], {"running"})
                paused = client.post(f"/jobs/{job['id']}/pause").json()
                answers.append(("pause", paused["state"]))
                resumed = client.post(f"/jobs/{job['id']}/resume").json()
                answers.append(("resume", resumed["state"]))
                until_state(client, job["id"], {"running"})
                ended = client.post(f"/jobs/{job['id']}/terminate").json()
                answers.append(("terminate", ended["state"]))
    finally:
        server.stop()
    allowed = {"pause": {"paused"}, "resume": {"running", "queued"}, "terminate": {"terminated"}}
    wrong = [(action, state) for action, state in answers if state not in allowed[action]]
    assert not wrong, f"{len(wrong)} of {len(answers)} answers were not settled: {wrong}"
    assert "Traceback" not in server.log.read_text()


def test_two_hundred_terminates_at_random_moments_leave_the_service_serving(
    tmp_path: Path, database: str, source: bytes
) -> None:
    rng = random.Random(200)
    content = source[: len(source) // 2]
    content = content[: content.rindex(b"\n") + 1]  # whole records: 60,000 of them
    server = ServerProcess(tmp_path, database_url=database, COLLECT_CHUNK_ROWS="20000").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for attempt in range(200):
                job = submit(client, content, "wedge")  # the next import is accepted
                moment = rng.choice(("at_start", "mid_chunk", "after_resume"))
                if until_state(client, job["id"], {"running", "completed"})["state"] != "running":
                    assert client.delete("/datasets/wedge").status_code == 204  # too quick
                    continue
                if moment == "mid_chunk":
                    time.sleep(rng.random() * 0.3)
                elif moment == "after_resume":
                    client.post(f"/jobs/{job['id']}/pause")
                    client.post(f"/jobs/{job['id']}/resume")
                ended = client.post(f"/jobs/{job['id']}/terminate")
                assert ended.status_code in (200, 409), ended.text
                if ended.status_code == 409:  # it completed first; nothing to terminate
                    assert ended.json()["state"] == "completed"
                    assert client.delete("/datasets/wedge").status_code == 204
                    continue
                assert ended.json()["state"] == "terminated", (attempt, moment)
                assert asyncio.run(take_write_lock(database, 1.0)) < 1.0
            assert client.get("/datasets/wedge").status_code == 404
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()
