"""API keys and tenants: every resource belongs to the tenant that made it."""

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from collect_api.access import Access
from collect_api.samples import TEAMS_HEADER, responses, write_responses_csv
from tests.conftest import ServerProcess
from tests.helpers import csv_bytes, dataset_rows, start_import, wait_for, wait_progress

KEYS = "alpha:key-of-alpha-0123456789,beta:key-of-beta-9876543210"


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    server = ServerProcess(tmp_path, COLLECT_API_KEYS=KEYS, COLLECT_CHUNK_ROWS="20").start()
    try:
        async with (
            httpx.AsyncClient(
                base_url=server.url,
                timeout=60,
                headers={"Authorization": "Bearer key-of-alpha-0123456789"},
            ) as alpha,
            httpx.AsyncClient(
                base_url=server.url,
                timeout=60,
                headers={"Authorization": "Bearer key-of-beta-9876543210"},
            ) as beta,
        ):
            yield alpha, beta
    finally:
        server.stop()
        assert "key-of-alpha" not in server.log.read_text()  # keys never reach the log


async def test_keys_are_required_except_for_health_and_docs(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    alpha, _ = tenants
    anonymous = httpx.AsyncClient(base_url=str(alpha.base_url), timeout=30)
    async with anonymous:
        for path in ("/healthz", "/docs", "/openapi.json"):
            assert (await anonymous.get(path)).status_code == 200, path
        for method, path in [
            ("GET", "/jobs"),
            ("GET", "/datasets"),
            ("GET", "/teams"),
            ("POST", "/exports"),
            ("GET", "/jobs/x/events"),
        ]:
            response = await anonymous.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["content-type"] == "application/problem+json"
            assert "Authorization: Bearer" in response.json()["detail"]
        wrong = await anonymous.get("/jobs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        # A browser's EventSource cannot send headers: the cookie does.
        cookie = await anonymous.get(
            "/jobs", headers={"Cookie": "collect_key=key-of-beta-9876543210"}
        )
        assert cookie.status_code == 200


async def test_another_tenant_sees_404_for_everything_and_cannot_touch_it(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient], tmp_path: Path
) -> None:
    alpha, beta = tenants
    source = tmp_path / "in.csv"
    write_responses_csv(source, 3_000, seed=2)
    done = await start_import(alpha, b"a,b\r\n1,2\r\n3\r\n", "responses", on_error="skip")
    await wait_for(alpha, done["id"], {"completed"})
    export = (await alpha.post("/exports", json={"dataset": "responses"})).json()
    await wait_for(alpha, export["id"], {"completed"})
    teams = await alpha.post(
        "/teams/imports",
        files={"file": ("t.csv", csv_bytes(TEAMS_HEADER, [["A", "a@x.org", "", "lead"]]))},
    )
    await wait_for(alpha, teams.json()["id"], {"completed"})
    team_id = (await alpha.get("/teams")).json()["items"][0]["id"]
    running = await start_import(alpha, source, "big")
    await wait_progress(alpha, running["id"], 1)

    for job_id in (done["id"], export["id"], running["id"]):
        for method, path in [
            ("GET", "/jobs/{id}"),
            ("POST", "/jobs/{id}/pause"),
            ("POST", "/jobs/{id}/resume"),
            ("POST", "/jobs/{id}/terminate"),
            ("GET", "/jobs/{id}/history"),
            ("GET", "/jobs/{id}/errors"),
            ("GET", "/jobs/{id}/result"),
            ("GET", "/jobs/{id}/events"),
        ]:
            response = await beta.request(method, path.format(id=job_id))
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
    for method, path in [
        ("GET", "/datasets/responses"),
        ("GET", "/datasets/responses/rows"),
        ("DELETE", "/datasets/responses"),
        ("GET", f"/teams/{team_id}"),
    ]:
        assert (await beta.request(method, path)).status_code == 404, path
    assert (await beta.get("/jobs")).json() == {"items": [], "next": None}
    assert (await beta.get("/datasets")).json() == {"items": [], "next": None}
    assert (await beta.get("/teams")).json() == {"items": [], "next": None}
    missing = await beta.post("/exports", json={"dataset": "responses"})
    assert missing.status_code == 422

    # Alpha's work went on untouched, and names are per tenant: beta has its own dataset.
    await wait_for(alpha, running["id"], {"completed"})
    assert (await dataset_rows(alpha, "big"))[1] == list(responses(3_000, seed=2))
    own = await start_import(beta, b"x\r\nbeta\r\n", "responses")
    await wait_for(beta, own["id"], {"completed"})
    assert (await dataset_rows(beta, "responses"))[1] == [["beta"]]
    assert (await dataset_rows(alpha, "responses"))[1] == [["1", "2"]]
    history = (await alpha.get(f"/jobs/{running['id']}/history")).json()["items"]
    assert history[0]["actor"] == "alpha"


async def test_the_event_feed_carries_only_the_callers_jobs(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    alpha, beta = tenants
    seen: list[dict[str, Any]] = []
    beta_done = asyncio.Event()

    async def follow() -> None:
        async with aconnect_sse(beta, "GET", "/events") as sse:
            async for event in sse.aiter_sse():
                job = event.json()
                seen.append(job)
                if job["params"].get("dataset") == "mine" and job["state"] == "completed":
                    beta_done.set()

    follower = asyncio.create_task(follow())
    try:
        other = await start_import(alpha, b"a\r\n" + b"1\r\n" * 500, "theirs")
        mine = await start_import(beta, b"a\r\n" + b"2\r\n" * 500, "mine")
        await wait_for(alpha, other["id"], {"completed"})
        async with asyncio.timeout(30):
            await beta_done.wait()
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert seen and {job["id"] for job in seen} == {mine["id"]}


def test_serve_refuses_to_bind_beyond_loopback_without_keys(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "COLLECT_DATA_DIR": str(tmp_path)}
    refused = subprocess.run(
        [sys.executable, "-m", "collect_api", "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "COLLECT_API_KEYS" in refused.stderr and "COLLECT_ALLOW_OPEN" in refused.stderr


def test_keys_compare_in_constant_time_and_parse_strictly() -> None:
    access = Access.parse("a:one, b:two")
    assert access.tenant_of("two") == "b" and access.tenant_of("three") is None
    for bad in ("a", "a:", ":k", "a:k,b:k"):
        with pytest.raises(ValueError):
            Access.parse(bad)
