"""Fixtures: a real SQLite file per test, or a new PostgreSQL database per test; the app
in-process, or a real uvicorn process.

PostgreSQL is the local server (``COLLECT_TEST_POSTGRES_URL``, by default the ``postgres``
user on 127.0.0.1:5432); its cases are skipped when it cannot be reached, and fail when
``CI`` is set.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from collect_api.api.deps import Services
from collect_api.api.kinds import KindModule
from collect_api.app import KINDS, create_app
from collect_api.settings import Settings
from tests.helpers import (
    KEEP_HEADER,
    KEEP_ROWS,
    Keep,
    csv_bytes,
    dataset_rows,
    start_import,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "COLLECT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on leaving."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    name = f"collect_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for the test."""
    async with fresh_postgres() as url:
        yield url


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The test's database on each backend in turn: a new SQLite file, or a new PostgreSQL
    database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'collect.db'}"
    else:
        async with fresh_postgres() as url:
            yield url


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'collect.db'}",
        "data_dir": tmp_path / "data",
        "chunk_rows": 200,
        "poll_interval_s": 0.02,
        "max_running_jobs": 2,
        "progress_interval_s": 0.25,
        # In-process apps come and go by the hundred: a worker starts with the first job.
        "start_worker": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``backends`` (a module's ``pytestmark``, say) runs on each backend in
    turn, through the ``backend`` fixture that ``settings`` and ``database`` depend on."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite``, or each backend in turn for a test marked ``backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of the test's database: a new SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'collect.db'}"
    else:
        async with fresh_postgres() as url:
            yield url


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database: str) -> Settings:
    """Settings for a test, on its ``database``; ``@pytest.mark.settings(name=value)``
    overrides them."""
    marker = request.node.get_closest_marker("settings")
    overrides = {"database_url": database, **(marker.kwargs if marker else {})}
    return make_settings(tmp_path, **overrides)


@asynccontextmanager
async def app_services(
    settings: Settings, *, kinds: Sequence[KindModule] = KINDS
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The app on ``settings`` (with ``kinds``), its lifespan running, a client talking to it
    in-process, and its services (for tests that look at the supervisor). Leaving the block
    stops the app as a server stop would."""
    app = create_app(settings, kinds=kinds)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://collect.test", timeout=60
        ) as http:
            yield http, app.state.services


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``settings``, its lifespan running, and a client talking to it in-process."""
    async with app_services(settings) as (http, _services):
        yield http


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as http:
        yield http


@pytest.fixture
async def keep(client: httpx.AsyncClient) -> Keep:
    """The dataset ``keep``, imported before a test's bad request or file, to compare with
    ``assert_unharmed`` afterwards; from here on every 5xx answer of ``client`` is noted."""
    server_errors: list[str] = []

    async def no_5xx(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            server_errors.append(
                f"{response.request.method} {response.request.url}: {response.text}"
            )

    client.event_hooks["response"].append(no_5xx)
    job = await start_import(client, csv_bytes(KEEP_HEADER, KEEP_ROWS), "keep")
    done = await wait_for(client, job["id"], {"completed"})
    columns, rows = await dataset_rows(client, "keep")
    assert (columns, rows) == (KEEP_HEADER, KEEP_ROWS)
    dataset = (await client.get("/datasets/keep")).json()
    return Keep(done, dataset, columns, rows, server_errors)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``collect serve`` in a subprocess, against a data dir and database of the test's."""

    def __init__(
        self, tmp_path: Path, *, workers: int = 1, database_url: str | None = None, **env: str
    ) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "COLLECT_DATABASE_URL": database_url
            or f"sqlite+aiosqlite:///{tmp_path / 'collect.db'}",
            "COLLECT_DATA_DIR": str(tmp_path / "data"),
            "COLLECT_POLL_INTERVAL_S": "0.02",
            **env,
        }
        self.log = tmp_path / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> "ServerProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "collect_api",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--log-level",
                    "info",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, COLLECT_CHUNK_ROWS="200").start()
    try:
        yield proc
    finally:
        proc.stop()
