"""The dashboard at /, and /docs and /redoc, in a real browser: Debian's Chromium, driven by
Playwright, against a real server (``collect serve`` in a subprocess).

Without Chromium the tests are skipped, unless ``CI`` is set: there they fail. Screenshots of
the main views, at 1280 and 390 px, are saved in ``$COLLECT_SCREENSHOTS`` (or the test's
temporary directory) for a person to look at.

The server runs with chunks of 20 records, so that a big import runs long enough to be
steered; tests steer it early and check states, and wait on conditions with deadlines.
"""

import csv
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from collect_api.samples import write_responses_csv
from tests.conftest import ROOT, ServerProcess
from tests.helpers import TERMINAL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESPONSES_CSV = ROOT / "sample_data" / "responses.csv"
TEAMS_CSV = ROOT / "sample_data" / "teams.csv"
RAGGED_CSV = b"id,name\r\n1,Ada\r\n2,Grace,extra\r\n3,Linus\r\n4\r\n5,Alan\r\n"
BIG_ROWS = 300_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Generous: the machine is shared, and the job engine runs in the same process as the server.
WAIT_MS = 30_000


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("dashboard"), COLLECT_CHUNK_ROWS="20").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    write_responses_csv(path, BIG_ROWS, seed=11)
    return path


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("COLLECT_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Tab:
    """A browser tab on the server, with the script errors it met."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.context = context
        self.url = url
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, route: str = "") -> Page:
        self.page.goto(f"{self.url}/{route}")
        return self.page


@pytest.fixture
def tab_factory(browser: Browser, server: ServerProcess) -> Iterator[Callable[..., Tab]]:
    tabs: list[Tab] = []

    def make(url: str | None = None, **options: Any) -> Tab:
        context = browser.new_context(
            viewport=options.pop("viewport", DESKTOP), accept_downloads=True, **options
        )
        context.set_default_timeout(WAIT_MS)
        tab = Tab(context, url or server.url)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.context.close()
    errors = [error for tab in tabs for error in tab.errors]
    assert not errors, f"script errors in the page: {errors}"


@pytest.fixture
def tab(tab_factory: Callable[..., Tab]) -> Tab:
    return tab_factory()


# --- helpers -----------------------------------------------------------------------------


def upload(client: httpx.Client, content: bytes | Path, dataset: str, **fields: str) -> str:
    data = content.read_bytes() if isinstance(content, Path) else content
    response = client.post(
        "/imports",
        files={"file": ("data.csv", data, "text/csv")},
        data={"dataset": dataset, **fields},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def wait_job(
    client: httpx.Client, job_id: str, states: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert job["state"] not in TERMINAL, f"job ended {job['state']}: {job['error']}"
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s"
        time.sleep(0.02)


def card(page: Page, job_id: str, within: str = "") -> Any:
    return page.locator(f'{within} article.job[data-job-id="{job_id}"]'.strip())


def count_updates(page: Page, job_id: str) -> None:
    """Count, in the page, the updates of the job's progress text from now on."""
    page.evaluate(
        """(id) => {
          window.updates = 0;
          const numbers = document.querySelector(`article[data-job-id="${id}"] .numbers`);
          new MutationObserver(() => { window.updates += 1; })
            .observe(numbers, {childList: true, characterData: true, subtree: true});
        }""",
        job_id,
    )


def updates(page: Page) -> int:
    return int(page.evaluate("window.updates"))


def wait_updates(page: Page, more_than: int) -> int:
    page.wait_for_function("(n) => window.updates > n", arg=more_than, timeout=WAIT_MS)
    return updates(page)


def press_like_a_person(page: Page, button: Any, hold_ms: int = 150) -> None:
    box = button.bounding_box()
    assert box is not None, "the button is not on screen"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(hold_ms)  # the press itself, not a wait for something
    page.mouse.up()


def live(page: Page) -> None:
    expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# --- controls under live updates ---------------------------------------------------------


def test_pause_resume_and_terminate_take_effect_while_progress_streams(
    tab: Tab, client: httpx.Client, big_csv: Path
) -> None:
    job_id = upload(client, big_csv, "steered")
    page = tab.open()
    live(page)
    job = card(page, job_id)
    expect(job).to_have_attribute("data-state", "running")
    count_updates(page, job_id)
    pause = job.locator("button[data-action=pause]")
    resume = job.locator("button[data-action=resume]")
    # Marks on the buttons show that live updates never replace them.
    pause.evaluate("(b) => { b.dataset.mark = 'kept'; }")
    seen = 0
    for attempt in range(5):
        # Progress keeps arriving while the button is pressed.
        seen = wait_updates(page, wait_updates(page, seen))
        press_like_a_person(page, pause)
        expect(job, f"pause {attempt + 1} of 5").to_have_attribute("data-state", "paused")
        assert client.get(f"/jobs/{job_id}").json()["state"] == "paused"
        expect(job.locator(".numbers")).not_to_contain_text("/s")
        expect(job.locator(".numbers")).not_to_contain_text("left")
        resume.click()
        expect(job).to_have_attribute("data-state", "running")
        wait_job(client, job_id, {"running"})
    assert pause.evaluate("(b) => b.dataset.mark") == "kept"

    # The keyboard focus stays on a button while updates arrive, and moves to the button
    # that takes the place of the one pressed.
    pause.focus()
    seen = wait_updates(page, wait_updates(page, updates(page)))
    assert pause.evaluate("(b) => document.activeElement === b")
    page.keyboard.press("Enter")
    expect(job).to_have_attribute("data-state", "paused")
    expect(resume).to_be_focused()
    page.keyboard.press("Enter")
    expect(job).to_have_attribute("data-state", "running")

    # Terminate asks first; the job runs on while the question is open, and after "keep".
    terminate = job.locator("button[data-action=terminate]")
    terminate.click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("cannot be undone")
    expect(dialog.locator("button[value=cancel]")).to_be_focused()
    seen = wait_updates(page, wait_updates(page, updates(page)))
    assert client.get(f"/jobs/{job_id}").json()["state"] == "running"
    dialog.locator("button[value=cancel]").click()
    expect(dialog).to_have_count(0)
    wait_updates(page, seen)
    assert client.get(f"/jobs/{job_id}").json()["state"] == "running"
    terminate.click()
    page.locator("dialog[open] button[value=confirm]").click()
    expect(job).to_have_attribute("data-state", "terminated")
    assert client.get(f"/jobs/{job_id}").json()["state"] == "terminated"
    expect(job.locator(".outcome")).to_contain_text("Rolled back: nothing was kept")
    expect(job.locator(".numbers")).not_to_contain_text("/s")
    expect(job.locator("button:visible")).to_have_count(0)
    assert client.get("/datasets/steered").status_code == 404


# --- flows -------------------------------------------------------------------------------


def test_an_upload_is_followed_to_completion_and_a_refusal_shown_by_its_field(
    tab: Tab, client: httpx.Client
) -> None:
    page = tab.open("#/import")
    live(page)
    # Asked for nothing: the page says which field is missing, next to it.
    page.click("#import-submit")
    expect(page.locator("#import-file-error")).to_contain_text("Choose the CSV file")
    page.set_input_files("#import-file", str(RESPONSES_CSV))
    page.fill("#import-dataset", "Bad Name")
    page.click("#import-submit")
    expect(page.locator("#import-file-error")).to_be_hidden()
    expect(page.locator("#import-dataset-error")).to_contain_text("not a dataset name")

    # The upload's progress bar shows while the file is sent.
    page.evaluate(
        """() => {
          window.shown = [];
          const bar = document.querySelector(".upload-progress");
          new MutationObserver(() => window.shown.push(!bar.hidden))
            .observe(bar, {attributes: true, attributeFilter: ["hidden"]});
        }"""
    )
    page.fill("#import-dataset", "uploaded")
    page.click("#import-submit")
    expect(page.locator("#import-dataset-error")).to_be_hidden()
    expect(page.locator("#import-message")).to_contain_text("queued")
    started = page.locator(".started-jobs article.job").first
    expect(started).to_have_attribute("data-state", "completed")
    expect(started.locator(".outcome")).to_contain_text("Imported 1,000 records into uploaded")
    assert client.get("/datasets/uploaded").json()["row_count"] == 1000
    assert page.evaluate("window.shown") == [True, False]

    # The service refuses the same name again: its reason shows by the dataset field, and
    # goes once the next try is accepted.
    page.set_input_files("#import-file", str(RESPONSES_CSV))
    page.click("#import-submit")
    error = page.locator("#import-dataset-error")
    expect(error).to_contain_text("already exists")
    expect(page.locator("#import-dataset")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#import-dataset")).to_be_focused()
    page.locator("label", has_text="Replace a dataset").click()
    page.click("#import-submit")
    expect(error).to_be_hidden()
    expect(page.locator(".started-jobs article.job")).to_have_count(2)
    expect(page.locator(".started-jobs article.job").first).to_have_attribute(
        "data-state", "completed"
    )


def test_an_export_built_in_the_form_is_downloaded(tab: Tab, client: httpx.Client) -> None:
    wait_job(client, upload(client, RESPONSES_CSV, "exported"), {"completed"})
    page = tab.open("#/export?dataset=exported")
    expect(page.locator("#export-dataset")).to_have_value("exported")
    page.get_by_role("button", name="Untick all").click()
    for column in ("response_id", "country", "age"):
        page.locator("#export-columns").get_by_label(column, exact=True).check()
    page.click("#add-filter")
    first = page.locator("#export-filters li").nth(0)
    first.get_by_label("Column").select_option("age")
    first.get_by_label("Condition").select_option("gt")
    first.get_by_label("Value").fill("30")
    page.click("#add-filter")
    second = page.locator("#export-filters li").nth(1)
    second.get_by_label("Column").select_option("country")
    second.get_by_label("Condition").select_option("in")
    second.get_by_label("Value").fill("France, 日本")
    page.click("#export-submit")
    job = page.locator(".started-jobs article.job").first
    expect(job).to_have_attribute("data-state", "completed")
    with page.expect_download() as download_info:
        job.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    got = read_csv(Path(download.path()).read_text(encoding="utf-8"))

    source = read_csv(RESPONSES_CSV.read_text(encoding="utf-8"))
    header, rows = source[0], source[1:]
    pick = [header.index(c) for c in ("response_id", "country", "age")]
    expected = [
        [row[i] for i in pick]
        for row in rows
        if int(row[header.index("age")]) > 30 and row[header.index("country")] in {"France", "日本"}
    ]
    assert got[0] == ["response_id", "country", "age"]
    assert got[1:] == expected
    assert len(expected) > 10


def test_the_rejected_records_of_a_skip_import_are_seen_in_its_detail_view(
    tab: Tab, tmp_path: Path
) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_bytes(RAGGED_CSV)
    page = tab.open("#/import")
    page.set_input_files("#import-file", str(ragged))
    page.fill("#import-dataset", "ragged")
    page.locator("label", has_text="Set bad records aside").click()
    page.click("#import-submit")
    job = page.locator(".started-jobs article.job").first
    expect(job).to_have_attribute("data-state", "completed")
    expect(job.locator(".outcome")).to_contain_text("2 rejected records were set aside")
    job_id = job.get_attribute("data-job-id")

    job.get_by_role("link", name="Details").click()
    expect(page).to_have_url(f"{tab.url}/#/jobs/{job_id}")
    expect(page.locator("h1")).to_have_text("Import into ragged")
    expect(page.locator("#rejected-count")).to_contain_text("2 records were rejected")
    rows = page.locator("#rejected tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("3")
    expect(rows.nth(0)).to_contain_text("the record has 3 fields")
    expect(rows.nth(1)).to_contain_text("5")
    with page.expect_download() as download_info:
        page.click("#rejected-download")
    rejected = read_csv(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert [row[0] for row in rejected[1:]] == ["3", "5"]
    expect(page.locator("#history")).to_contain_text("submitted the job")
    expect(page.locator("#history")).to_contain_text("running → completed")

    # The page has its own address: opened afresh, it shows the same.
    fresh = tab.context.new_page()
    fresh.goto(f"{tab.url}/#/jobs/{job_id}")
    expect(fresh.locator("#rejected tbody tr")).to_have_count(2)


def test_a_teams_upload_lists_its_teams(tab: Tab, client: httpx.Client) -> None:
    page = tab.open("#/teams")
    page.set_input_files("#teams-file", str(TEAMS_CSV))
    page.click("#teams-submit")
    job = page.locator(".started-jobs article.job").first
    expect(job).to_have_attribute("data-state", "completed")
    expect(job.locator(".outcome")).to_contain_text("Created")
    teams = page.locator("#teams tr")
    expect(teams.first).to_be_visible()
    total = len(client.get("/teams", params={"limit": 1000}).json()["items"])
    assert total > 25
    page.click("#more-teams")
    expect(teams).to_have_count(total)

    page.fill("#teams-search", "sales")
    expect(teams.first).to_contain_text("ales")
    wanted = client.get("/teams", params={"q": "sales"}).json()["items"]
    expect(teams).to_have_count(len(wanted))
    for name in page.locator("#teams tr td:first-child").all_inner_texts():
        assert "sales" in name.lower()

    teams.first.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(wanted[0]["name"])
    expect(page.locator("#members tbody tr")).to_have_count(wanted[0]["member_count"])


def test_a_datasets_rows_are_browsed_and_a_dataset_deleted_after_asking(
    tab: Tab, client: httpx.Client
) -> None:
    job_id = upload(client, RESPONSES_CSV, "browsed")
    wait_job(client, job_id, {"completed"})
    wait_job(client, upload(client, RAGGED_CSV, "doomed", on_error="skip"), {"completed"})
    page = tab.open("#/datasets")
    row = page.locator('#datasets tr[data-name="browsed"]')
    expect(row).to_contain_text("1,000")
    expect(row.locator(f'a[href="#/jobs/{job_id}"]')).to_be_visible()
    row.get_by_role("link", name="browsed").click()

    first_cells = page.locator("#rows tr td:nth-child(2)")
    expect(page.locator("#rows tr")).to_have_count(25)
    expect(first_cells.first).to_have_text("1")
    expect(page.locator("#rows-range")).to_have_text("Rows 1 to 25 of 1,000")
    page.click("#rows-next")
    expect(first_cells.first).to_have_text("26")
    page.click("#rows-next")
    expect(first_cells.first).to_have_text("51")
    page.click("#rows-previous")
    expect(first_cells.first).to_have_text("26")
    page.select_option("#rows-size", "100")
    expect(page.locator("#rows tr")).to_have_count(100)
    expect(page.locator("#rows-range")).to_have_text("Rows 1 to 100 of 1,000")
    expect(page.locator("#makers")).to_contain_text("create")

    page.goto(f"{tab.url}/#/datasets/doomed")
    page.click("#delete-dataset")
    page.locator("dialog[open] button[value=cancel]").click()
    assert client.get("/datasets/doomed").status_code == 200
    page.click("#delete-dataset")
    expect(page.locator("dialog[open]")).to_contain_text("cannot be undone")
    page.locator("dialog[open] button[value=confirm]").click()
    expect(page).to_have_url(f"{tab.url}/#/datasets")
    expect(page.locator('#datasets tr[data-name="doomed"]')).to_have_count(0)
    assert client.get("/datasets/doomed").status_code == 404


# --- fit, keyboard, labels, contrast -----------------------------------------------------

VIEWS = ["#/jobs", "#/import", "#/export", "#/teams", "#/datasets"]


def _all_views(client: httpx.Client) -> list[str]:
    viewed = upload(client, RAGGED_CSV, "viewed", on_error="skip", mode="replace")
    wait_job(client, viewed, {"completed"})
    some_import = client.get("/jobs", params={"kind": "import", "limit": 1}).json()["items"][0]
    team = client.get("/teams", params={"limit": 1}).json()["items"]
    return [
        *VIEWS,
        f"#/jobs/{some_import['id']}",
        "#/datasets/viewed",
        *([f"#/teams/{team[0]['id']}"] if team else []),
    ]


def _view_ready(page: Page) -> None:
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("main [role=status]", has_text="Loading…")).to_have_count(0)


def test_every_view_fits_a_phone(
    tab_factory: Callable[..., Tab], client: httpx.Client, big_csv: Path
) -> None:
    job_id = upload(client, big_csv, "phone")
    wait_job(client, job_id, {"running"})
    tab = tab_factory(viewport=PHONE)
    page = tab.open()
    try:
        for view in _all_views(client):
            page.goto(f"{tab.url}/{view}")
            _view_ready(page)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{view} is {width} px wide on a 390 px phone"
        # The running job's state and buttons are within the width of the screen.
        page.goto(f"{tab.url}/#/jobs")
        running = card(page, job_id)
        for part in (".badge", "button[data-action=pause]", "button[data-action=terminate]"):
            box = running.locator(part).bounding_box()
            assert box is not None and box["x"] >= 0, part
            assert box["x"] + box["width"] <= PHONE["width"], f"{part} is off-screen: {box}"
    finally:
        client.post(f"/jobs/{job_id}/terminate")


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter((e) => e.type !== "hidden" && e.getClientRects().length)
  .filter((e) => !e.labels?.length && !e.getAttribute("aria-label")
                 && !e.getAttribute("aria-labelledby"))
  .map((e) => e.outerHTML)"""

# Every visible text's contrast with the colour behind it (WCAG 2: relative luminance).
LOW_CONTRAST = """() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g).map(Number);
                          return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const lum = ({r, g, b}) => { const f = (v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg.a > 0.5) return bg;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    if (["SCRIPT", "STYLE", "OPTION"].includes(el.tagName)) continue;
    if (el.closest("[aria-disabled=true], [hidden]") || !el.getClientRects().length) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3)
      .map((n) => n.textContent.trim()).join("");
    if (!text) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || Number(style.opacity) < 0.5) continue;
    const fg = lum(parse(style.color)), bg = lum(behind(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) bad.push(`${ratio.toFixed(2)} ${el.tagName}.${el.className}: ${text}`);
  }
  return bad;
}"""

FOCUS_SHOWN = """() => {
  const e = document.activeElement;
  const s = getComputedStyle(e);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2;
  return {tag: e.tagName, text: (e.textContent || e.name || e.id || "").trim().slice(0, 40),
          action: e.dataset.action || "", nav: e.dataset.nav || "", id: e.id,
          visible: outline || s.boxShadow !== "none"};
}"""


def test_labels_contrast_and_keyboard_reach_every_control(
    tab: Tab, client: httpx.Client, big_csv: Path
) -> None:
    job_id = upload(client, big_csv, "keyboard")
    wait_job(client, job_id, {"running"})
    client.post(f"/jobs/{job_id}/pause")
    page = tab.open()
    try:
        for view in _all_views(client):
            page.goto(f"{tab.url}/{view}")
            _view_ready(page)
            page.locator("details.more-options summary").evaluate_all(
                "(all) => all.forEach((s) => s.parentElement.open = true)"
            )
            assert page.evaluate(UNLABELLED) == [], f"inputs without a label in {view}"
            assert page.evaluate(LOW_CONTRAST) == [], f"text below 4.5:1 in {view}"

        # From the top of the jobs view, Tab reaches the navigation, the filters and the
        # paused job's buttons, each with a visible focus; Enter resumes the job.
        page.goto(f"{tab.url}/#/jobs")
        page.reload()  # a page just loaded: the keyboard starts at the top
        expect(card(page, job_id)).to_have_attribute("data-state", "paused")
        reached: list[dict[str, Any]] = []
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUS_SHOWN)
            assert focused["visible"], f"no visible focus on {focused}"
            reached.append(focused)
            if focused["action"] == "resume":
                break
        navs = {f["nav"] for f in reached}
        assert {"jobs", "import", "export", "teams", "datasets"} <= navs
        assert {"filter-state", "filter-kind"} <= {f["id"] for f in reached}
        assert reached[-1]["action"] == "resume", reached
        page.keyboard.press("Enter")
        expect(card(page, job_id)).not_to_have_attribute("data-state", "paused")
        page.keyboard.press("Tab")
        assert page.evaluate(FOCUS_SHOWN)["action"] == "terminate"
        page.keyboard.press("Enter")
        expect(page.locator("dialog[open] button[value=cancel]")).to_be_focused()
        assert page.evaluate(LOW_CONTRAST) == [], "text below 4.5:1 in the dialog"
        page.keyboard.press("Tab")
        expect(page.locator("dialog[open] button[value=confirm]")).to_be_focused()
        page.keyboard.press("Enter")
        expect(card(page, job_id)).to_have_attribute("data-state", "terminated")
    finally:
        client.post(f"/jobs/{job_id}/terminate")


# --- offline -----------------------------------------------------------------------------


def test_the_dashboard_docs_and_redoc_load_nothing_from_elsewhere(tab: Tab) -> None:
    page = tab.page
    loaded: list[tuple[str, str]] = []
    outside: list[str] = []
    page.on("request", lambda r: loaded.append((r.resource_type, r.url)))

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(tab.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(f"{tab.url}/")
    live(page)
    expect(page.locator("main h1")).to_have_text("Jobs")
    page.goto(f"{tab.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Collect")
    expect(page.locator("#operations-imports-create_import")).to_be_visible()
    page.goto(f"{tab.url}/redoc")
    expect(page.get_by_role("heading", name="Import a CSV into a dataset").first).to_be_visible()

    assert outside == [], f"requests beyond the server: {outside}"
    # Everything the pages asked for is the server's (ReDoc's search worker is a blob of it).
    local = (f"{tab.url}/", f"blob:{tab.url}/", "data:")
    assert all(url.startswith(local) for _, url in loaded), loaded
    assets = [(kind, url) for kind, url in loaded if kind in ("script", "stylesheet", "font")]
    urls = {url for _, url in assets}
    assert f"{tab.url}/static/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js" in urls
    assert f"{tab.url}/static/vendor/redoc-2.5.4/redoc.standalone.js" in urls


def test_executing_the_import_example_in_docs_creates_no_dataset_by_accident(tab: Tab) -> None:
    page = tab.open("docs")
    operation = page.locator("#operations-imports-create_import")
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    dataset = operation.locator("input[placeholder=dataset]")
    expect(dataset).to_have_value("")


# --- access and robustness ---------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that asks for an API key: ``s3cret-key``."""
    proc = ServerProcess(tmp_path, COLLECT_API_KEYS="acme:s3cret-key").start()
    try:
        yield proc
    finally:
        proc.stop()


def test_an_api_key_is_asked_for_once_in_its_box_and_kept_for_the_session(
    tab_factory: Callable[..., Tab], keyed: ServerProcess
) -> None:
    tab = tab_factory(url=keyed.url)
    page = tab.open()
    box = page.locator("#key-box")
    expect(box).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text("in this box")
    expect(page.locator("body")).not_to_contain_text("header")
    expect(page.locator("#key")).to_be_focused()
    page.fill("#key", "wrong-key")
    page.click("#key-form button")
    expect(box).to_be_visible()
    expect(page.locator("#key-message")).to_contain_text("not accepted")
    page.fill("#key", "s3cret-key")
    page.click("#key-form button")
    expect(box).to_be_hidden()
    live(page)
    expect(page.locator("#jobs + .empty")).to_be_visible()

    # The key lasts for the browser session: a reload does not ask again, and the
    # upload and the event stream carry it.
    page.reload()
    live(page)
    expect(box).to_be_hidden()
    page.goto(f"{keyed.url}/#/import")
    page.set_input_files("#import-file", str(RESPONSES_CSV))
    page.fill("#import-dataset", "keyed")
    page.click("#import-submit")
    expect(page.locator(".started-jobs article.job").first).to_have_attribute(
        "data-state", "completed"
    )
    cookie = next(c for c in tab.context.cookies() if c["name"] == "collect_key")
    assert cookie["expires"] == -1, "a session cookie"

    # Another session asks again.
    other = tab_factory(url=keyed.url).open()
    expect(other.locator("#key-box")).to_be_visible()


# Answers to requests sent with the wrong key, slowed down: all but the first arrive two
# seconds late, after the right key is in place, as on a slow network.
SLOW_STALE_ANSWERS = """
const sendFetch = window.fetch;
let answered = 0;
window.fetch = async (...args) => {
  const withWrongKey = document.cookie.includes("collect_key=wrong-key");
  const response = await sendFetch(...args);
  if (withWrongKey && answered++ > 0) await new Promise((done) => setTimeout(done, 2000));
  return response;
};
"""


def test_a_refusal_of_an_earlier_key_arriving_late_does_not_ask_for_the_key_again(
    tab_factory: Callable[..., Tab], keyed: ServerProcess
) -> None:
    tab = tab_factory(url=keyed.url)
    tab.context.add_init_script(SLOW_STALE_ANSWERS)
    page = tab.open()
    box = page.locator("#key-box")
    expect(box).to_be_visible()
    page.fill("#key", "wrong-key")
    page.click("#key-form button")
    expect(page.locator("#key-message")).to_contain_text("not accepted")
    page.fill("#key", "s3cret-key")
    page.click("#key-form button")
    expect(box).to_be_hidden()
    live(page)
    page.wait_for_timeout(3000)  # every late answer to the wrong key has come
    expect(box).to_be_hidden()
    live(page)
    expect(page.locator("#jobs + .empty")).to_be_visible()


def test_the_page_says_it_is_reconnecting_and_works_on_after_a_restart(
    tab_factory: Callable[..., Tab], tmp_path: Path, big_csv: Path
) -> None:
    first = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="20").start()
    with httpx.Client(base_url=first.url, timeout=60) as http:
        job_id = upload(http, big_csv, "restarted")
        wait_job(http, job_id, {"running"})
        http.post(f"/jobs/{job_id}/pause")
    tab = tab_factory(url=first.url)
    page = tab.open()
    live(page)
    job = card(page, job_id)
    expect(job).to_have_attribute("data-state", "paused")

    first.stop()
    expect(page.locator("#feed-state")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#feed-banner")).to_be_visible()
    expect(page.locator("#feed-banner")).to_contain_text("Reconnecting")

    second = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="20")
    second.port, second.url = first.port, first.url
    second.start()
    try:
        live(page)
        expect(page.locator("#feed-banner")).to_be_hidden()
        # The controls and the feed work on: resume the paused job, see a new one arrive.
        job.locator("button[data-action=resume]").click()
        expect(job).to_have_attribute("data-state", "running")
        with httpx.Client(base_url=second.url, timeout=60) as http:
            new_id = upload(http, RESPONSES_CSV, "after_restart")
            expect(card(page, new_id)).to_have_attribute("data-state", "completed")
            http.post(f"/jobs/{job_id}/terminate")
        expect(job).to_have_attribute("data-state", "terminated")
    finally:
        second.stop()


# --- screenshots -------------------------------------------------------------------------


def test_screenshots_of_the_main_views(
    tab_factory: Callable[..., Tab], client: httpx.Client, big_csv: Path, screenshots: Path
) -> None:
    """Saves each main view at both widths; a person looks at them."""
    wait_job(client, upload(client, RESPONSES_CSV, "responses"), {"completed"})
    skipped = upload(client, RAGGED_CSV, "with_rejects", on_error="skip")
    wait_job(client, skipped, {"completed"})
    wait_job(client, upload(client, RAGGED_CSV, "abort_on_bad"), {"failed"})
    response = client.post(
        "/exports",
        json={
            "dataset": "responses",
            "columns": ["response_id", "country", "age"],
            "filters": [{"column": "age", "op": "gt", "value": 30}],
        },
    )
    wait_job(client, response.json()["id"], {"completed"})
    teams = client.post("/teams/imports", files={"file": ("teams.csv", TEAMS_CSV.read_bytes())})
    wait_job(client, teams.json()["id"], {"completed"})
    stopped = upload(client, big_csv, "stopped")
    wait_job(client, stopped, {"running"})
    client.post(f"/jobs/{stopped}/terminate")
    paused = upload(client, big_csv, "paused_one")
    wait_job(client, paused, {"running"})
    client.post(f"/jobs/{paused}/pause")
    running = upload(client, big_csv, "running_one")
    wait_job(client, running, {"running"})
    team = client.get("/teams", params={"limit": 1}).json()["items"][0]
    views = {
        "jobs": "#/jobs",
        "job": f"#/jobs/{skipped}",
        "import": "#/import",
        "export": "#/export?dataset=responses",
        "teams": "#/teams",
        "team": f"#/teams/{team['id']}",
        "datasets": "#/datasets",
        "rows": "#/datasets/responses",
    }
    try:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            tab = tab_factory(viewport=viewport)
            page = tab.open()
            live(page)
            for view, route in views.items():
                page.goto(f"{tab.url}/{route}")
                _view_ready(page)
                if view == "export":
                    page.click("#add-filter")
                    page.locator("#export-filters li").first.get_by_label("Value").fill("30")
                if view == "import":
                    page.fill("#import-dataset", "responses")
                    page.set_input_files("#import-file", str(RESPONSES_CSV))
                    page.click("#import-submit")
                    expect(page.locator("#import-dataset-error")).to_be_visible()
                page.screenshot(path=screenshots / f"{view}-{name}.png", full_page=True)
                if view == "jobs":
                    expect(card(page, running).locator(".numbers")).to_contain_text("/s")
                    # The first screen, as the README shows it.
                    page.screenshot(path=screenshots / f"dashboard-{name}.png")
                    card(page, running).locator("button[data-action=terminate]").click()
                    expect(page.locator("dialog[open]")).to_be_visible()
                    page.screenshot(path=screenshots / f"confirm-{name}.png")
                    page.keyboard.press("Escape")
                    expect(page.locator("dialog[open]")).to_have_count(0)
            page.goto(f"{tab.url}/docs")
            operation = page.locator("#operations-jobs-pause_job")
            operation.locator(".opblock-summary-control").click()
            expect(operation.locator(".responses-wrapper")).to_be_visible()
            jobs = page.locator("#operations-tag-jobs")
            jobs.evaluate("(e) => window.scrollTo(0, e.getBoundingClientRect().top + scrollY)")
            page.screenshot(path=screenshots / f"docs-{name}.png")
            page.goto(f"{tab.url}/redoc")
            expect(page.get_by_role("heading", name="Pause a job").first).to_be_visible()
            page.screenshot(path=screenshots / f"redoc-{name}.png", full_page=False)
    finally:
        client.post(f"/jobs/{running}/terminate")
        client.post(f"/jobs/{paused}/terminate")
    saved = sorted(p.name for p in screenshots.glob("*.png"))
    assert len(saved) >= 2 * (len(views) + 4), saved
