"""CSV export: filters and projections, snapshots, byte-identical resumes, downloads."""

import asyncio
import gzip
import os
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from collect_api.samples import HEADER, responses, write_responses_csv
from collect_api.settings import Settings
from tests.conftest import app_client, make_settings
from tests.helpers import (
    csv_bytes,
    execute,
    query,
    read_csv,
    start_import,
    wait_for,
    wait_progress,
)

pytestmark = pytest.mark.backends

ROWS = 3_000
SEED = 17


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "responses.csv"
    write_responses_csv(path, ROWS, seed=SEED)
    return path


async def load(client: httpx.AsyncClient, source: Path, name: str = "responses") -> None:
    job = await start_import(client, source, name)
    await wait_for(client, job["id"], {"completed"})


async def export(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/exports", json={"dataset": "responses", **body})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['id']}"
    return response.json()


async def download(client: httpx.AsyncClient, job_id: str) -> bytes:
    response = await client.get(f"/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    return response.content


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def select(columns: list[str] | None, keep: Any) -> list[list[str]]:
    """The expected export, computed from the generator, not from the service."""
    names = columns or HEADER
    rows = [dict(zip(HEADER, r, strict=True)) for r in responses(ROWS, seed=SEED)]
    return [names] + [[r[c] for c in names] for r in rows if keep(r)]


CASES = [
    ({}, lambda r: True),
    ({"columns": ["comment", "response_id"]}, lambda r: True),
    (
        {"filters": [{"column": "age", "op": "gt", "value": 30}]},
        lambda r: float(r["age"]) > 30,
    ),
    (
        {
            "columns": ["country", "age", "score"],
            "filters": [
                {"column": "age", "op": "le", "value": 40},
                {"column": "score", "op": "ge", "value": 5.5},
                {"column": "consent", "op": "eq", "value": "yes"},
            ],
        },
        lambda r: float(r["age"]) <= 40 and float(r["score"]) >= 5.5 and r["consent"] == "yes",
    ),
    (
        {"filters": [{"column": "comment", "op": "contains", "value": ","}]},
        lambda r: "," in r["comment"],
    ),
    (
        {"filters": [{"column": "country", "op": "in", "value": ["日本", "España", "France"]}]},
        lambda r: r["country"] in {"日本", "España", "France"},
    ),
    (
        {
            "filters": [
                {"column": "country", "op": "ne", "value": "France"},
                {"column": "response_id", "op": "in", "value": [1, 2, 3, 500, 2999]},
            ]
        },
        lambda r: r["country"] != "France" and int(r["response_id"]) in {1, 2, 3, 500, 2999},
    ),
    (
        # Text comparison when the value is a string: "9" > "30" as text.
        {"filters": [{"column": "age", "op": "gt", "value": "30"}]},
        lambda r: r["age"] > "30",
    ),
    (
        {"filters": [{"column": "age", "op": "lt", "value": 0}]},
        lambda r: False,
    ),
]


@pytest.mark.parametrize(("request_body", "keep"), CASES)
async def test_filters_and_projections_select_exactly(
    client: httpx.AsyncClient, source: Path, request_body: dict[str, Any], keep: Any
) -> None:
    await load(client, source)
    job = await export(client, **request_body)
    done = await wait_for(client, job["id"], {"completed"})
    expected = select(request_body.get("columns"), keep)
    data = await download(client, job["id"])
    assert read_csv(data) == expected
    assert done["result"]["rows"] == len(expected) - 1
    assert done["result"]["bytes"] == len(data)
    assert done["progress"]["total"] == len(expected) - 1


async def test_gzip_export_is_a_gzip_of_the_csv(client: httpx.AsyncClient, source: Path) -> None:
    await load(client, source)
    plain = await export(client)
    zipped = await export(client, gzip=True)
    await wait_for(client, plain["id"], {"completed"})
    await wait_for(client, zipped["id"], {"completed"})
    response = await client.get(f"/jobs/{zipped['id']}/result")
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="responses-{zipped["id"]}.csv.gz"'
    )
    assert gzip.decompress(response.content) == await download(client, plain["id"])


@pytest.mark.settings(chunk_rows=10)
@pytest.mark.parametrize("gzipped", [False, True])
async def test_pause_resume_gives_a_byte_identical_file(
    client: httpx.AsyncClient, source: Path, gzipped: bool
) -> None:
    await load(client, source)
    clean = await export(client, gzip=gzipped)
    await wait_for(client, clean["id"], {"completed"})
    expected = await download(client, clean["id"])

    rng = random.Random(4)
    job = await export(client, gzip=gzipped)
    cycles = 0
    while cycles < 5:
        await wait_progress(client, job["id"], 1)
        await asyncio.sleep(rng.uniform(0, 0.05))
        paused = await client.post(f"/jobs/{job['id']}/pause")
        if paused.status_code == 409 or paused.json()["state"] == "completed":
            break
        assert paused.json()["state"] == "paused"
        cycles += 1
        assert (await client.get(f"/jobs/{job['id']}/result")).status_code == 409
        await client.post(f"/jobs/{job['id']}/resume")
    assert cycles == 5
    await wait_for(client, job["id"], {"completed"})
    assert await download(client, job["id"]) == expected


async def test_restart_mid_export_gives_a_byte_identical_file(
    tmp_path: Path, database: str, source: Path
) -> None:
    settings = make_settings(tmp_path, database_url=database, chunk_rows=5)
    async with app_client(settings) as client:
        await load(client, source)
        clean = await export(client)
        await wait_for(client, clean["id"], {"completed"})
        expected = await download(client, clean["id"])
        job = await export(client)
        interrupted = await wait_progress(client, job["id"], 200)
        assert interrupted["state"] == "running"
    async with app_client(settings) as client:
        await wait_for(client, job["id"], {"completed"})
        assert await download(client, job["id"]) == expected


@pytest.mark.settings(chunk_rows=5)
@pytest.mark.parametrize("when", ["running", "paused"])
async def test_terminated_export_leaves_no_file(
    client: httpx.AsyncClient, settings: Settings, source: Path, when: str
) -> None:
    await load(client, source)
    job = await export(client)
    await wait_progress(client, job["id"], 1)
    assert list(settings.exports_dir.iterdir())  # the partial file exists while it runs
    if when == "paused":
        assert (await client.post(f"/jobs/{job['id']}/pause")).json()["state"] == "paused"
    ended = await client.post(f"/jobs/{job['id']}/terminate")
    assert ended.json()["state"] == "terminated"
    assert list(settings.exports_dir.iterdir()) == []
    result = await client.get(f"/jobs/{job['id']}/result")
    assert result.status_code in (404, 409)
    assert result.headers["content-type"] == "application/problem+json"


@pytest.mark.settings(chunk_rows=5)
async def test_export_is_a_snapshot_of_the_dataset_when_it_started(
    client: httpx.AsyncClient, source: Path
) -> None:
    await load(client, source)
    job = await export(client)
    await wait_progress(client, job["id"], 1)
    late = [[f"late-{i}"] + [""] * (len(HEADER) - 1) for i in range(50)]
    appended = await start_import(client, csv_bytes(HEADER, late), "responses", mode="append")
    await wait_for(client, appended["id"], {"completed"})
    running = (await client.get(f"/jobs/{job['id']}")).json()
    assert running["state"] == "running", "the export should still be running"
    assert running["progress"]["total"] == ROWS  # the rows of its snapshot
    await wait_for(client, job["id"], {"completed"})
    rows = read_csv(await download(client, job["id"]))
    assert rows == select(None, lambda r: True)
    assert (await client.get("/datasets/responses")).json()["row_count"] == ROWS + 50


@pytest.mark.settings(chunk_rows=5)
async def test_replacing_the_dataset_mid_export_fails_the_export(
    client: httpx.AsyncClient, settings: Settings, source: Path
) -> None:
    await load(client, source)
    job = await export(client)
    await wait_progress(client, job["id"], 1)
    replaced = await start_import(client, csv_bytes(["x"], [["1"]]), "responses", mode="replace")
    await wait_for(client, replaced["id"], {"completed"})
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["code"] == "dataset_changed"
    assert "replaced" in failed["error"]["message"]
    assert list(settings.exports_dir.iterdir()) == []


@pytest.mark.settings(chunk_rows=5)
async def test_an_export_whose_dataset_becomes_another_table_mid_run_commits_no_more(
    client: httpx.AsyncClient, settings: Settings, source: Path
) -> None:
    """The dataset's row is pointed at another table while the old one stays readable: the
    next chunk's checkpoint does not apply, and the export fails as replaced."""
    await load(client, source)
    await load(client, source, name="other")
    job = await export(client)
    await wait_progress(client, job["id"], 1)
    [(other,)] = await query(
        settings.database_url, "SELECT table_name FROM dataset WHERE name = 'other'"
    )
    changed = await execute(
        settings.database_url,
        "UPDATE dataset SET table_name = :other WHERE name = 'responses'",
        other=other,
    )
    assert changed == 1
    failed = await wait_for(client, job["id"], {"failed"})
    assert failed["error"]["code"] == "dataset_changed"
    assert "replaced" in failed["error"]["message"]
    assert failed["progress"]["done"] < ROWS
    assert list(settings.exports_dir.iterdir()) == []


# Values that CSV quotes (a delimiter, a quote, a line break) and values it does not.
QUOTED = ["a, b", 'say "hi"', "two\r\nlines", "one\nline", '"', ","]
PLAIN = ["", "plain", "é 日本", "  spaced  "]


def mixed_rows(count: int, width: int, quoted: set[int], seed: int) -> list[list[str]]:
    """Rows whose fields in the columns ``quoted`` sometimes need quotes; the others never."""
    rng = random.Random(seed)
    return [
        [
            rng.choice(QUOTED) + f"{key}"
            if i in quoted and rng.random() < 0.3
            else rng.choice(PLAIN) + (f"{key}" if rng.random() < 0.8 else "")
            for i in range(width)
        ]
        for key in range(count)
    ]


async def exported(client: httpx.AsyncClient, dataset: str, **body: Any) -> bytes:
    job = await export(client, dataset=dataset, **body)
    await wait_for(client, job["id"], {"completed"})
    return await download(client, job["id"])


async def imported(client: httpx.AsyncClient, data: bytes, dataset: str, **fields: str) -> str:
    job = await start_import(client, data, dataset, **fields)
    await wait_for(client, job["id"], {"completed"})
    return str(job["id"])


def reordered(rows: list[list[str]], header: list[str], order: list[str]) -> list[list[str]]:
    """``rows`` (in ``header``'s order) in the column order ``order``."""
    return [[row[header.index(name)] for name in order] for row in rows]


@pytest.mark.settings(chunk_rows=50)
@pytest.mark.parametrize("width", [4, 64])
async def test_appending_columns_in_another_order_keeps_every_fields_quoting(
    client: httpx.AsyncClient, width: int
) -> None:
    """A dataset whose first rows need quotes in one column, appended with rows in another
    column order that need them in two others: the export, whole and projected, is what
    ``csv.writer`` writes of the rows, each field quoted exactly where it must be. With 64
    columns (more than quote bits cover) too."""
    header = [f"col{i}" for i in range(width)]
    first = mixed_rows(300, width, {1}, seed=1)
    later = mixed_rows(300, width, {0, width - 1}, seed=2)
    order = [header[2], header[0], *header[3:], header[1]]
    await imported(client, csv_bytes(header, first), "mixed")
    await imported(
        client, csv_bytes(order, reordered(later, header, order)), "mixed", mode="append"
    )
    assert await exported(client, "mixed") == csv_bytes(header, first + later)
    projection = [header[width - 1], header[1], header[0]]
    assert await exported(client, "mixed", columns=projection) == csv_bytes(
        projection, reordered(first + later, header, projection)
    )
    single = [header[0]]
    assert await exported(client, "mixed", columns=single) == csv_bytes(
        single, reordered(first + later, header, single)
    )


@pytest.mark.settings(chunk_rows=50)
async def test_a_dataset_table_without_quote_bits_exports_the_same_bytes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A table made before rows kept their quote bits (here: the column dropped) exports
    the same file, and takes rows appended to it, bits or none."""
    header = ["a", "b", "c"]
    first = mixed_rows(400, 3, {0, 2}, seed=3)
    await imported(client, csv_bytes(header, first), "old")
    expected = csv_bytes(header, first)
    assert await exported(client, "old") == expected
    [(table,)] = await query(
        settings.database_url, "SELECT table_name FROM dataset WHERE name = 'old'"
    )
    await execute(settings.database_url, f'ALTER TABLE "{table}" DROP COLUMN _q')
    assert await exported(client, "old") == expected
    later = mixed_rows(200, 3, {1}, seed=4)
    await imported(client, csv_bytes(header, later), "old", mode="append")
    assert await exported(client, "old") == csv_bytes(header, first + later)


@pytest.mark.settings(chunk_rows=5)
async def test_rows_staged_without_quote_bits_append_to_a_table_that_keeps_them(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """An import that began before rows kept their quote bits (here: its staging table's
    column dropped while it is paused) appends to a dataset whose table keeps them: the
    export quotes every field of both parts exactly where it must."""
    header = ["a", "b", "c"]
    first = mixed_rows(300, 3, {0}, seed=5)
    await imported(client, csv_bytes(header, first), "both")
    later = mixed_rows(400, 3, {1, 2}, seed=6)
    job = await start_import(client, csv_bytes(header, later), "both", mode="append")
    await wait_progress(client, job["id"], 1)
    paused = await client.post(f"/jobs/{job['id']}/pause")
    assert paused.json()["state"] == "paused", paused.text
    await execute(settings.database_url, f'ALTER TABLE "stage_{job["id"]}" DROP COLUMN _q')
    await client.post(f"/jobs/{job['id']}/resume")
    await wait_for(client, job["id"], {"completed"})
    assert await exported(client, "both") == csv_bytes(header, first + later)


async def test_range_download_returns_the_right_bytes(
    client: httpx.AsyncClient, source: Path
) -> None:
    await load(client, source)
    job = await export(client)
    await wait_for(client, job["id"], {"completed"})
    whole = await download(client, job["id"])
    response = await client.get(f"/jobs/{job['id']}/result", headers={"Range": "bytes=100-1099"})
    assert response.status_code == 206
    assert response.content == whole[100:1100]
    assert response.headers["content-range"] == f"bytes 100-1099/{len(whole)}"
    tail = await client.get(f"/jobs/{job['id']}/result", headers={"Range": "bytes=-10"})
    assert tail.content == whole[-10:]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"dataset": "nope"}, "nope"),
        ({"dataset": "responses", "columns": ["age", "shoe_size"]}, "shoe_size"),
        (
            {"dataset": "responses", "filters": [{"column": "height", "op": "eq", "value": 1}]},
            "height",
        ),
        (
            {"dataset": "responses", "filters": [{"column": "age", "op": "like", "value": 1}]},
            "like",
        ),
        (
            {"dataset": "responses", "filters": [{"column": "age", "op": "in", "value": 3}]},
            "in",
        ),
        (
            {"dataset": "responses", "filters": [{"column": "age", "op": "gt", "value": [1]}]},
            "gt",
        ),
        (
            {"dataset": "responses", "filters": [{"column": "age", "op": "contains", "value": 4}]},
            "contains",
        ),
        ({"dataset": "responses", "gzip": "maybe"}, "gzip"),
    ],
)
async def test_bad_export_requests_get_422_naming_the_problem(
    client: httpx.AsyncClient, source: Path, body: dict[str, Any], named: str
) -> None:
    await load(client, source)
    response = await client.post("/exports", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert named in response.json()["detail"]
    assert (await client.get("/jobs", params={"kind": "export"})).json()["items"] == []


async def test_an_import_has_no_result_file(client: httpx.AsyncClient, source: Path) -> None:
    job = await start_import(client, source, "responses")
    assert (await client.get(f"/jobs/{job['id']}/result")).status_code in (404, 409)


@pytest.mark.settings(result_ttl=0.5, housekeeping_interval_s=0.05)
async def test_results_expire_after_the_ttl_and_the_job_says_so(
    client: httpx.AsyncClient, settings: Settings, source: Path
) -> None:
    await load(client, source)
    job = await export(client)
    done = await wait_for(client, job["id"], {"completed"})
    assert done["result"]["download_url"] == f"/jobs/{job['id']}/result"
    deadline = asyncio.get_running_loop().time() + 30
    while not (await client.get(f"/jobs/{job['id']}")).json()["result"].get("expired"):
        assert asyncio.get_running_loop().time() < deadline, "the result never expired"
        await asyncio.sleep(0.05)
    expired = (await client.get(f"/jobs/{job['id']}")).json()
    assert expired["state"] == "completed"
    assert expired["result"]["download_url"] is None and expired["result"]["expired_at"]
    assert list(settings.exports_dir.iterdir()) == []
    gone = await client.get(f"/jobs/{job['id']}/result")
    assert gone.status_code == 410 and "export the dataset again" in gone.json()["detail"]


@pytest.mark.settings(housekeeping_interval_s=0.05)
async def test_leftover_files_of_finished_or_unknown_jobs_are_deleted(
    client: httpx.AsyncClient, settings: Settings, source: Path
) -> None:
    """What a crash can leave: an upload whose submission never finished, and files of jobs
    that are final; recent files of unknown jobs may be uploads still arriving."""
    job = await start_import(client, source, "responses")
    await wait_for(client, job["id"], {"completed"})
    old_upload = settings.uploads_dir / "01aaaaaaaaaaaaaaaaaaaaaaaa.csv"
    fresh_upload = settings.uploads_dir / "01bbbbbbbbbbbbbbbbbbbbbbbb.csv"
    finished = settings.uploads_dir / f"{job['id']}.csv"
    stray_export = settings.exports_dir / "01cccccccccccccccccccccccc.csv"
    for path in (old_upload, fresh_upload, finished, stray_export):
        path.write_bytes(b"a\r\n1\r\n")
    for path in (old_upload, stray_export):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    deadline = time.monotonic() + 30
    while old_upload.exists() or finished.exists() or stray_export.exists():
        assert time.monotonic() < deadline, "leftover files were not deleted"
        await asyncio.sleep(0.05)
    assert fresh_upload.exists()
