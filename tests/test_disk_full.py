"""A full disk: the job fails with a clear error, nothing committed is lost, and the service
keeps answering. The database lives on a small tmpfs."""

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collect_api.samples import write_responses_csv
from tests.conftest import app_client, make_settings
from tests.helpers import dataset_rows, start_import, upload, wait_for, wait_progress


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


def fill(disk: Path) -> Path:
    """Take every byte left on ``disk``; the ballast file that holds them."""
    ballast = disk / "filler"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return ballast


async def test_an_end_that_cannot_be_written_is_retried_slowly_until_there_is_room(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "big.csv"
    write_responses_csv(source, 60_000, seed=5)
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{small_disk / 'collect.db'}",
        chunk_rows=500,
        housekeeping_interval_s=0.1,
        disk_reserve_bytes=0,  # no reserve to give back: the end cannot be written
    )
    caplog.set_level(logging.WARNING, logger="collect")
    async with app_client(settings) as client:
        job = await start_import(client, source, "big")
        await wait_progress(client, job["id"], 2_000)
        filler = await asyncio.to_thread(fill, small_disk)
        # The job runs into the full disk, and its end has no room either: it stays running
        # while its end is tried again, with a growing delay, not in a hot loop.
        deadline = time.monotonic() + 60
        while not [r for r in caplog.records if "cannot be written" in r.getMessage()]:
            assert time.monotonic() < deadline, "the job never found the disk full"
            state = (await client.get(f"/jobs/{job['id']}")).json()["state"]
            assert state == "running", state
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)
        retries = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
        assert 2 <= len(retries) <= 12, retries
        delays = [float(m.rsplit("again in ", 1)[1].split()[0]) for m in retries]
        assert delays == sorted(delays) and delays[-1] > delays[0]
        floods = [r for r in caplog.records if "failed; retrying" in r.getMessage()]
        assert len(floods) <= 6, [r.getMessage() for r in floods]
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get(f"/jobs/{job['id']}")).json()["state"] == "running"

        # Room again: the job ends at its next try, with nothing of it left visible, and the
        # service takes new work without a restart.
        filler.unlink()
        failed = await wait_for(client, job["id"], {"failed"}, timeout=60)
        assert failed["error"]["code"] == "disk_full"
        assert (await client.get("/datasets/big")).status_code == 404
        after = await start_import(client, b"a,b\r\n1,x\r\n", "after")
        await wait_for(client, after["id"], {"completed"})
        assert (await dataset_rows(client, "after"))[1] == [["1", "x"]]


async def test_an_upload_that_does_not_fit_is_507_and_leaves_no_file(
    tmp_path: Path, small_disk: Path
) -> None:
    (small_disk / "ballast").write_bytes(os.urandom(3 * 1024 * 1024))  # 5 MB of 8 left
    source = tmp_path / "big.csv"
    write_responses_csv(source, 70_000, seed=6)  # about 7 MB
    assert source.stat().st_size > 6 * 1024 * 1024
    settings = make_settings(tmp_path, data_dir=small_disk / "data")
    async with app_client(settings) as client:
        response = await upload(client, source, "big")
        assert response.status_code == 507, response.text
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert str(small_disk / "data" / "uploads") in detail and "bytes free" in detail
        assert list((small_disk / "data" / "uploads").iterdir()) == []
        assert (await client.get("/healthz")).status_code == 200
        small = await start_import(client, b"a\r\n1\r\n", "small")
        await wait_for(client, small["id"], {"completed"})
