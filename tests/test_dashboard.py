"""The dashboard at /, in a real browser (Debian's Chromium driven by Playwright)."""

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from make_csv import write_responses_csv
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import ROOT, ServerProcess
from tests.helpers import start_import, wait_progress

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[tuple[Page, str]]:
    if not HAVE_CHROMIUM:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    server = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="10").start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                tab = await browser.new_page()
                await tab.goto(server.url + "/")
                yield tab, server.url
            finally:
                await browser.close()
    finally:
        server.stop()


async def test_upload_watch_and_steer_jobs_in_the_browser(
    page: tuple[Page, str], tmp_path: Path
) -> None:
    tab, url = page
    await expect(tab.locator("#feed-state")).to_have_text("live")
    # Upload the sample through the form and watch it complete, live.
    await tab.set_input_files("input[name=file]", str(ROOT / "sample_data" / "responses.csv"))
    await tab.fill("input[name=dataset]", "responses")
    await tab.click("#import-form button[type=submit]")
    await expect(tab.locator("#message")).to_contain_text("queued")
    first = tab.locator("#jobs tr").first
    await expect(first).to_have_attribute("data-state", "completed", timeout=30_000)
    await expect(tab.locator("#datasets")).to_contain_text("responses: 1,000 rows")

    # A long import started elsewhere shows up, and the buttons steer it.
    source = tmp_path / "big.csv"
    write_responses_csv(source, 20_000, seed=3)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        job = await start_import(client, source, "big")
        await wait_progress(client, job["id"], 10)
        row = tab.locator(f"#job-{job['id']}")
        await expect(row).to_have_attribute("data-state", "running", timeout=10_000)
        await row.locator("button[data-action=pause]").click()
        await expect(row).to_have_attribute("data-state", "paused")
        assert (await client.get(f"/jobs/{job['id']}")).json()["state"] == "paused"
        await row.locator("button[data-action=resume]").click()
        await expect(row).to_have_attribute("data-state", "running")
        await row.locator("button[data-action=terminate]").click()
        await expect(row).to_have_attribute("data-state", "terminated")
        assert (await client.get("/datasets/big")).status_code == 404

    # A bad upload is explained, not swallowed.
    await tab.set_input_files("input[name=file]", str(ROOT / "sample_data" / "responses.csv"))
    await tab.fill("input[name=dataset]", "responses")
    await tab.click("#import-form button[type=submit]")
    await expect(tab.locator("#message")).to_contain_text("already exists")
