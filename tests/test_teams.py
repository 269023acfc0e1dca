"""Teams jobs: exact creation, idempotent re-runs, invisible until complete, clean rollback."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from collect_api.samples import TEAMS_HEADER, team_rows, write_teams_csv
from tests.helpers import csv_bytes, read_csv, wait_for, wait_progress

pytestmark = pytest.mark.backends


async def start_teams(client: httpx.AsyncClient, content: bytes, **fields: str) -> dict[str, Any]:
    response = await client.post(
        "/teams/imports", files={"file": ("teams.csv", content, "text/csv")}, data=fields
    )
    assert response.status_code == 202, response.text
    return response.json()


async def all_teams(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every visible team with its members, by name, following the list's cursor."""
    teams: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        params: dict[str, Any] = {"limit": 7, **({"after": after} if after else {})}
        page = (await client.get("/teams", params=params)).json()
        for item in page["items"]:
            team = (await client.get(f"/teams/{item['id']}")).json()
            assert team["member_count"] == item["member_count"] == len(team["members"])
            teams[team["name"]] = team
        after = page["next"]
        if after is None:
            return teams


def expected_teams(rows: list[list[str]]) -> dict[str, dict[str, tuple[str, str]]]:
    """Independently of the service: name as first written → email → (name, role)."""
    names: dict[str, str] = {}
    members: dict[str, dict[str, tuple[str, str]]] = {}
    for team, email, person, role in rows:
        spelled = " ".join(team.split())
        key = spelled.casefold()
        names.setdefault(key, spelled)
        members.setdefault(key, {})
        known = {e.casefold() for e in members[key]}
        if email.casefold() not in known:
            members[key][email] = (person, role.lower())
    return {names[k]: v for k, v in members.items()}


def as_expected(teams: dict[str, dict[str, Any]]) -> dict[str, dict[str, tuple[str, str]]]:
    return {
        name: {m["email"]: (m["name"], m["role"]) for m in team["members"]}
        for name, team in teams.items()
    }


async def test_teams_are_created_exactly_and_a_rerun_changes_nothing(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "teams.csv"
    write_teams_csv(path, 500, seed=42)
    job = await start_teams(client, path.read_bytes())
    done = await wait_for(client, job["id"], {"completed"})
    expected = expected_teams(list(team_rows(500, seed=42)))
    teams = await all_teams(client)
    assert as_expected(teams) == expected
    assert done["result"]["teams_created"] == len(expected)
    assert done["result"]["members_added"] == sum(len(m) for m in expected.values())

    again = await start_teams(client, path.read_bytes())
    second = await wait_for(client, again["id"], {"completed"})
    assert second["result"]["teams_created"] == 0
    assert second["result"]["members_added"] == 0
    assert await all_teams(client) == teams


@pytest.mark.settings(chunk_rows=5)
@pytest.mark.parametrize("when", ["running", "paused"])
async def test_terminate_leaves_exactly_the_teams_that_existed(
    client: httpx.AsyncClient, when: str
) -> None:
    first = await start_teams(
        client,
        csv_bytes(
            TEAMS_HEADER,
            [
                ["Sales", "ann@example.org", "Ann", "lead"],
                ["Support", "bob@example.org", "", "member"],
            ],
        ),
    )
    await wait_for(client, first["id"], {"completed"})
    before = await all_teams(client)
    # Extends "sales" (another spelling) and creates many other teams.
    rows = [["  SALES ", "new@example.org", "New", "member"]] + [
        [f"Team {i // 3}", f"m{i}@example.org", f"M {i}", "member"] for i in range(3000)
    ]
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows))
    await wait_progress(client, job["id"], 50)
    assert await all_teams(client) == before  # nothing visible while it runs
    if when == "paused":
        assert (await client.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
        assert await all_teams(client) == before
    ended = await client.post(f"/jobs/{job['id']}/terminate")
    assert ended.json()["state"] == "terminated"
    assert await all_teams(client) == before


@pytest.mark.settings(chunk_rows=5)
async def test_paused_teams_job_resumes_to_the_exact_result(client: httpx.AsyncClient) -> None:
    rows = [list(r) for r in team_rows(300, seed=8)]
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows))
    for _ in range(3):
        await wait_progress(client, job["id"], 1)
        paused = (await client.post(f"/jobs/{job['id']}/pause")).json()
        if paused["state"] == "completed":
            break
        assert paused["state"] == "paused"
        await client.post(f"/jobs/{job['id']}/resume")
    await wait_for(client, job["id"], {"completed"})
    assert as_expected(await all_teams(client)) == expected_teams(rows)


async def test_invalid_rows_abort_naming_the_line(client: httpx.AsyncClient) -> None:
    rows = [["A", "a@example.org", "", "lead"], ["A", "not-an-email", "", "member"]]
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows))
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["line"] == 3
    assert failed["error"]["column"] == "member_email"
    assert "not-an-email" in failed["error"]["message"]
    assert await all_teams(client) == {}


async def test_invalid_rows_are_skipped_and_reported(client: httpx.AsyncClient) -> None:
    rows = [
        ["A", "a@example.org", "", "lead"],
        ["A", "b@example.org", "", "boss"],
        ["", "c@example.org", "", "member"],
        ["B", "d@example.org", "Dee", "Member"],
    ]
    job = await start_teams(
        client,
        csv_bytes(
            ["role", "team", "member_email", "member_name"],
            [[r[3], r[0], r[1], r[2]] for r in rows],
        ),
        on_error="skip",
    )
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_rejected"] == 2
    assert as_expected(await all_teams(client)) == {
        "A": {"a@example.org": (None, "lead")},
        "B": {"d@example.org": ("Dee", "member")},
    }
    report = read_csv((await client.get(f"/jobs/{job['id']}/errors")).content)
    assert [(r[0], r[2]) for r in report[1:]] == [("3", "role"), ("4", "team")]


def _every_50th_bad(count: int) -> tuple[list[list[str]], list[int]]:
    """Rows with a bad role at every 50th, and the lines those are on (the header is 1)."""
    rows = [list(r) for r in team_rows(count, seed=3)]
    bad = []
    for i in range(0, count, 50):
        rows[i][3] = "boss"
        bad.append(i + 2)
    return rows, bad


async def test_rejections_are_counted_across_chunks(client: httpx.AsyncClient) -> None:
    """Bad records in every chunk (of 200 records here) add up, in the result and the list."""
    rows, bad = _every_50th_bad(1000)
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows), on_error="skip")
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["rows_rejected"] == len(bad) == 20
    report = read_csv((await client.get(f"/jobs/{job['id']}/errors")).content)
    assert [int(r[0]) for r in report[1:]] == bad
    good = [r for i, r in enumerate(rows) if i + 2 not in bad]
    assert as_expected(await all_teams(client)) == expected_teams(good)


async def test_max_errors_counts_rejections_of_earlier_chunks(client: httpx.AsyncClient) -> None:
    """Four bad records a chunk, never more than 10 in one: the eleventh in all fails it."""
    rows, _bad = _every_50th_bad(1000)
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows), on_error="skip", max_errors="10")
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["code"] == "too_many_errors"
    assert await all_teams(client) == {}


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (["team", "member_email", "role", "age"], "age"),
        (["team", "role"], "member_email"),
    ],
)
async def test_wrong_columns_get_422(
    client: httpx.AsyncClient, header: list[str], named: str
) -> None:
    response = await client.post(
        "/teams/imports",
        files={"file": ("t.csv", csv_bytes(header, [["x"] * len(header)]), "text/csv")},
    )
    assert response.status_code == 422
    assert named in response.json()["detail"]


async def test_unknown_team_is_404(client: httpx.AsyncClient) -> None:
    for team_id in ("12345", "abc"):
        response = await client.get(f"/teams/{team_id}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_teams_search_by_name(client: httpx.AsyncClient) -> None:
    rows = [["Field Ops", "a@example.org", "", "lead"], ["Sales", "b@example.org", "", "lead"]]
    job = await start_teams(client, csv_bytes(TEAMS_HEADER, rows))
    await wait_for(client, job["id"], {"completed"})
    found = (await client.get("/teams", params={"q": "field"})).json()["items"]
    assert [t["name"] for t in found] == ["Field Ops"]
    assert found[0]["member_count"] == 1
