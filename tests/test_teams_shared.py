"""Two teams jobs that create the same new team: each job's writes are its own.

A writes 3,000 members of team ``Shared``; B writes 1,500 others and 10 of A's to ``shared``
(the same team, by its normalised name). Both run and are paused half-way; then one ends,
then the other, in every order and with every outcome. Whatever happens, the visible teams
hold exactly the members of the jobs that completed, under one team named as the first of
them wrote it, and each completed job's result counts what its completion made visible.
"""

import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.helpers import csv_bytes, wait_for, wait_progress
from tests.test_teams import all_teams, start_teams

pytestmark = pytest.mark.backends

HEADER = ["team", "member_email", "member_name", "role"]
A_MEMBERS = [[f"a{i}@example.org", f"A {i}"] for i in range(3_000)]
B_MEMBERS = [[f"b{i}@example.org", f"B {i}"] for i in range(1_500)] + A_MEMBERS[:10]
OUTCOMES = ("completed", "failed", "terminated")


def team_file(team: str, members: list[list[str]], *, fails: bool) -> bytes:
    rows = [[team, email, name, "member"] for email, name in members]
    if fails:  # the last record is invalid: with on_error=abort the job fails there
        rows.append([team, "not-an-email", "X", "member"])
    return csv_bytes(HEADER, rows)


async def run_pair(
    first: tuple[str, str],
    second: tuple[str, str],
    via: dict[str, httpx.AsyncClient],
) -> dict[str, dict[str, Any]]:
    """Start A and B, pause both half-way, then end ``first`` and then ``second`` as their
    outcomes say; the two jobs as they ended, by name."""
    outcome = dict([first, second])
    files = {
        "A": team_file("Shared", A_MEMBERS, fails=outcome["A"] == "failed"),
        "B": team_file("shared ", B_MEMBERS, fails=outcome["B"] == "failed"),
    }
    jobs: dict[str, dict[str, Any]] = {}
    for name in ("A", "B"):
        client = via[name]
        job = await start_teams(client, files[name])
        await wait_progress(client, job["id"], 1)  # it has staged a chunk
        paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
        assert paused["state"] == "paused", paused
        jobs[name] = job
    for name, end in (first, second):
        client, job_id = via[name], jobs[name]["id"]
        if end == "terminated":
            ended = (await client.post(f"/jobs/{job_id}/terminate")).json()
        else:
            await client.post(f"/jobs/{job_id}/resume")
            ended = await wait_for(client, job_id, {end}, timeout=120)
        assert ended["state"] == end, ended
        jobs[name] = ended
    return jobs


def check(jobs: dict[str, dict[str, Any]], order: list[str], teams: dict[str, Any]) -> None:
    members = {"A": {e for e, _ in A_MEMBERS}, "B": {e for e, _ in B_MEMBERS}}
    completed = [name for name in order if jobs[name]["state"] == "completed"]
    if not completed:
        assert teams == {}
        return
    spelled = {"A": "Shared", "B": "shared"}
    assert list(teams) == [spelled[completed[0]]]
    visible = {m["email"] for m in teams[spelled[completed[0]]]["members"]}
    assert visible == set().union(*(members[name] for name in completed))
    added: set[str] = set()
    for position, name in enumerate(completed):
        result = jobs[name]["result"]
        assert result["teams_created"] == (1 if position == 0 else 0), (name, result)
        assert result["members_added"] == len(members[name] - added), (name, result)
        assert result["members_already_present"] == len(members[name] & added), (name, result)
        added |= members[name]


@pytest.mark.parametrize(
    ("order", "first_outcome", "second_outcome"),
    [
        (order, a, b)
        for order in (["A", "B"], ["B", "A"])
        for a, b in itertools.product(OUTCOMES, OUTCOMES)
    ],
)
@pytest.mark.settings(chunk_rows=50)
async def test_two_jobs_sharing_a_new_team_stay_independent(
    client: httpx.AsyncClient, order: list[str], first_outcome: str, second_outcome: str
) -> None:
    jobs = await run_pair(
        (order[0], first_outcome), (order[1], second_outcome), {"A": client, "B": client}
    )
    check(jobs, order, await all_teams(client))
    # A job run again after all that changes nothing and says so.
    rerun = await start_teams(client, team_file("SHARED", A_MEMBERS, fails=False))
    done = await wait_for(client, rerun["id"], {"completed"})
    if any(jobs[name]["state"] == "completed" for name in "AB"):
        assert done["result"]["teams_created"] == 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("A", "completed"), ("B", "completed")),
        (("A", "terminated"), ("B", "completed")),
        (("B", "completed"), ("A", "failed")),
    ],
)
async def test_two_servers_sharing_a_new_team_stay_independent(
    tmp_path: Path, database: str, first: tuple[str, str], second: tuple[str, str]
) -> None:
    one = ServerProcess(
        tmp_path, database_url=database, COLLECT_CHUNK_ROWS="50", COLLECT_NODE_NAME="one"
    ).start()
    two = ServerProcess(
        tmp_path, database_url=database, COLLECT_CHUNK_ROWS="50", COLLECT_NODE_NAME="two"
    ).start()
    try:
        async with (
            httpx.AsyncClient(base_url=one.url, timeout=60) as via_one,
            httpx.AsyncClient(base_url=two.url, timeout=60) as via_two,
        ):
            jobs = await run_pair(first, second, {"A": via_one, "B": via_two})
            order = [first[0], second[0]]
            check(jobs, order, await all_teams(via_one))
            assert await all_teams(via_two) == await all_teams(via_one)
    finally:
        one.stop()
        two.stop()
