"""A full disk: the job fails with a clear error, nothing committed is lost, and the service
keeps answering. The database lives on a small tmpfs."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from make_csv import write_responses_csv

from tests.conftest import app_client, make_settings
from tests.helpers import dataset_rows, start_import, upload, wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


async def test_a_full_disk_fails_the_job_and_loses_nothing(
    tmp_path: Path, small_disk: Path
) -> None:
    ballast = small_disk / "ballast"  # leaves the database about 3 MB of the 8
    ballast.write_bytes(os.urandom(4 * 1024 * 1024))
    source = tmp_path / "big.csv"
    write_responses_csv(source, 60_000, seed=4)  # ~6 MB of CSV: more than the disk holds
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{small_disk / 'collect.db'}",
        chunk_rows=2_000,
        housekeeping_interval_s=0.1,
        disk_reserve_bytes=1024 * 1024,
    )
    async with app_client(settings) as client:
        kept = await start_import(client, b"a,b\r\n1,x\r\n2,y\r\n", "keep")
        await wait_for(client, kept["id"], {"completed"})

        big = await start_import(client, source, "big")
        failed = await wait_for(client, big["id"], {"failed"}, timeout=120)
        assert failed["error"]["code"] == "disk_full"
        assert "disk is full" in failed["error"]["message"]
        assert (await client.get("/datasets/big")).status_code == 404
        assert (await dataset_rows(client, "keep"))[1] == [["1", "x"], ["2", "y"]]
        assert (await client.get("/healthz")).status_code == 200

        # While the disk stays full, requests that need room are told so, never a 500.
        response = await upload(client, b"a\r\n1\r\n", "after")
        assert response.status_code in (202, 507), response.text
        if response.status_code == 507:
            assert response.headers["content-type"] == "application/problem+json"
            assert "disk is full" in response.json()["detail"]
        assert (await dataset_rows(client, "keep"))[1] == [["1", "x"], ["2", "y"]]
