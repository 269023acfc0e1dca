"""The engine on each backend: SQLite and PostgreSQL, the same code and the same guarantees.

Jobs of the kinds that write in the server's process (``count``, of ``test_fourth_kind``,
and teams) are submitted, listed, paused, resumed and terminated through the API, each step
committed exactly once with its checkpoint; and two apps on one database, as two servers
would be, steer each other's jobs. (Imports and exports, through the data plane, are in
the suites marked ``backends``.)
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx

from collect_api.api.deps import Services
from collect_api.app import KINDS
from collect_api.samples import TEAMS_HEADER, team_rows
from tests.conftest import app_services, make_settings
from tests.helpers import csv_bytes, wait_for, wait_progress
from tests.test_fourth_kind import KIND as COUNT
from tests.test_fourth_kind import counted
from tests.test_teams import all_teams, as_expected, expected_teams, start_teams


@asynccontextmanager
async def counting_app(
    tmp_path: Path, database_url: str, name: str = "one"
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """An app, with its own data dir, on ``database_url``."""
    settings = make_settings(
        tmp_path / name, database_url=database_url, node_name=name, lease_s=5.0
    )
    async with app_services(settings, kinds=(*KINDS, COUNT)) as (http, services):
        yield http, services


async def states(http: httpx.AsyncClient, job_id: str) -> list[str]:
    history = (await http.get(f"/jobs/{job_id}/history")).json()["items"]
    return [h["to_state"] for h in history]


async def test_a_job_is_steered_alike_on_each_backend(tmp_path: Path, database_url: str) -> None:
    async with counting_app(tmp_path, database_url) as (http, services):
        job = (await http.post("/counts", json={"upto": 300})).json()
        assert [j["id"] for j in (await http.get("/jobs")).json()["items"]] == [job["id"]]
        await wait_progress(http, job["id"], 20)
        paused = (await http.post(f"/jobs/{job['id']}/pause")).json()
        assert paused["state"] == "paused"
        assert (await http.get(f"/jobs/{job['id']}")).json() == paused
        at_pause = paused["progress"]["done"]
        assert await counted(services, job["id"]) == list(range(1, at_pause + 1))
        assert (await http.post(f"/jobs/{job['id']}/resume")).json()["state"] == "running"
        done = await wait_for(http, job["id"], {"completed"})
        assert done["result"] == {"counted": 300}
        assert await counted(services, job["id"]) == list(range(1, 301))  # each step once
        assert await states(http, job["id"]) == [
            "queued",
            "running",
            "pausing",
            "paused",
            "running",
            "completed",
        ]

        other = (await http.post("/counts", json={"upto": 100_000})).json()
        await wait_progress(http, other["id"], 10)
        ended = (await http.post(f"/jobs/{other['id']}/terminate")).json()
        assert ended["state"] == "terminated"
        assert await counted(services, other["id"]) == []  # its writes undone


async def test_two_servers_on_one_database_steer_each_others_jobs(
    tmp_path: Path, database_url: str
) -> None:
    async with AsyncExitStack() as stack:
        one, one_services = await stack.enter_async_context(
            counting_app(tmp_path, database_url, "one")
        )
        two, _ = await stack.enter_async_context(counting_app(tmp_path, database_url, "two"))
        jobs = [(await one.post("/counts", json={"upto": 2_000})).json() for _ in range(2)]
        for job in jobs:
            await wait_progress(two, job["id"], 10)
        # Each is paused, resumed and then terminated or completed through whichever server
        # does not run it (or either, when both run one).
        for job in jobs:
            paused = (await two.post(f"/jobs/{job['id']}/pause")).json()
            assert paused["state"] == "paused", paused
            assert (await one.get(f"/jobs/{job['id']}")).json()["state"] == "paused"
            at_pause = paused["progress"]["done"]
            assert await counted(one_services, job["id"]) == list(range(1, at_pause + 1))
            assert (await one.post(f"/jobs/{job['id']}/resume")).json()["state"] in {
                "queued",
                "running",
            }
        kept, dropped = jobs
        ended = (await two.post(f"/jobs/{dropped['id']}/terminate")).json()
        assert ended["state"] == "terminated"
        done = await wait_for(one, kept["id"], {"completed"}, timeout=120)
        assert done["result"] == {"counted": 2_000}
        assert await counted(one_services, kept["id"]) == list(range(1, 2_001))
        assert await counted(one_services, dropped["id"]) == []


async def test_teams_are_created_alike_on_each_backend(tmp_path: Path, database_url: str) -> None:
    rows = [list(r) for r in team_rows(600, seed=5)]
    rows[7][3] = "boss"  # one bad role, set aside
    async with counting_app(tmp_path, database_url) as (http, _services):
        job = await start_teams(http, csv_bytes(TEAMS_HEADER, rows), on_error="skip")
        await wait_progress(http, job["id"], 1)
        paused = (await http.post(f"/jobs/{job['id']}/pause")).json()
        if paused["state"] == "paused":
            await http.post(f"/jobs/{job['id']}/resume")
        done = await wait_for(http, job["id"], {"completed"})
        assert done["result"]["rows_rejected"] == 1
        good = rows[:7] + rows[8:]
        assert as_expected(await all_teams(http)) == expected_teams(good)
        # The same file again changes nothing.
        again = await start_teams(http, csv_bytes(TEAMS_HEADER, good))
        repeated = await wait_for(http, again["id"], {"completed"})
        assert (repeated["result"]["teams_created"], repeated["result"]["members_added"]) == (0, 0)
