"""The application: ``create_app(settings)`` and its lifespan. No globals."""

import asyncio
import csv
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from collect_api import __version__, migrations
from collect_api.access import Access
from collect_api.api import datasets, events, exports, health, imports, jobs, metrics, teams
from collect_api.api.deps import Services
from collect_api.api.docs import add_docs_pages, openapi_document
from collect_api.api.kinds import KindModule
from collect_api.api.limits import BodyLimit
from collect_api.db import Database, is_disk_full
from collect_api.errors import CollectError
from collect_api.jobs.broker import Broker
from collect_api.jobs.supervisor import Supervisor
from collect_api.metrics import Metrics
from collect_api.settings import Settings
from collect_api.storage.dataplane.client import DataPlane

log = logging.getLogger("collect")
PROBLEM = "application/problem+json"
BODY_UNREADABLE = "The body cannot be read: send a JSON object, encoded as UTF-8."
# The dashboard loads its scripts, styles and images from this server only.
DASHBOARD_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'self'; form-action 'self'"
)


def _problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


@contextmanager
def _end_streams_on_stop(broker: Broker) -> Iterator[None]:
    """On SIGTERM or SIGINT, end the event streams before the server drains connections,
    once they have been sent what was committed up to then (``Broker.end_streams``).

    uvicorn runs the lifespan shutdown only once every response has finished, and an event
    stream never finishes by itself: without this a stop waits for the graceful-shutdown
    timeout. The server's own handler still runs, after ours, and is put back on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_stop(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(broker.end_streams)
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:
            signal.default_int_handler(sig, frame)

    for sig in previous:
        signal.signal(sig, on_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


API_DESCRIPTION = """
Collect runs long data jobs — **import** a CSV into a dataset, **export** a dataset to a CSV
file, create **teams** from a CSV — and lets any client steer a job while it runs: **pause**
it, **resume** it from its last checkpoint, or **terminate** it and have its writes rolled
back. The dashboard at [`/`](/) does all of this in a browser; this page documents the HTTP
API (also as [ReDoc](/redoc), and as [`/openapi.json`](/openapi.json)).

**A job's life.** `queued` → `running` → `completed`; or `failed`, its writes rolled back and
`error` saying why; `paused` via `pausing`; `terminated` via `terminating`, its writes rolled
back. `completed`, `failed` and `terminated` are final. A job's rows become visible only when
it completes.

**Trying it here.** Import `sample_data/responses.csv` of the repository with
`POST /imports` as dataset `responses`; the export examples then work as given. Follow a job
with `GET /jobs/{job_id}/events` from a terminal (`curl -N`), as this page cannot show an
endless stream.

**Lists** answer `{"items": [...], "next": cursor}`: pass `next` back as `after` for the
following page, with `limit` (default 100, at most 1000).

**Errors** are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details,
`application/problem+json`, whose `detail` says what to do; each operation lists the
statuses it can answer and when.

**API keys.** When the service is configured with keys (`COLLECT_API_KEYS`), every operation
but `GET /healthz` needs one: press *Authorize* and enter it, or send
`Authorization: Bearer <key>`. The dashboard keeps its key in the `collect_key` cookie,
which this page sends too.
"""

API_TAGS = [
    {"name": "imports", "description": "Load a CSV of records into a dataset."},
    {"name": "exports", "description": "Write a dataset, filtered and projected, to a file."},
    {"name": "teams", "description": "Create teams and members from a CSV, and read them."},
    {"name": "jobs", "description": "Read, pause, resume and terminate jobs of any kind."},
    {"name": "events", "description": "Follow jobs live, as Server-Sent Events."},
    {"name": "datasets", "description": "What has been imported, and its rows."},
    {"name": "health", "description": "Is the service up?"},
]


# The kinds of job the service runs: each is registered, routed and documented from here.
KINDS: tuple[KindModule, ...] = (imports.KIND, exports.KIND, teams.KIND)


def create_app(settings: Settings | None = None, *, kinds: Sequence[KindModule] = KINDS) -> FastAPI:
    settings = settings or Settings()
    access = Access.parse(settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        settings.exports_dir.mkdir(parents=True, exist_ok=True)
        # The csv module's limit is per process and counts characters. It only stops a runaway
        # field (a quote never closed); RecordReader enforces max_field_bytes in bytes and
        # names the column.
        csv.field_size_limit(max(settings.max_field_bytes * 16, 1 << 20))
        db = Database(settings.database_url)
        # Every process migrates as it starts; a lock makes the others wait, then do nothing.
        migration = await migrations.upgrade(settings.database_url)
        log.info("%s", migration.describe())
        broker = Broker(db, progress_interval=settings.progress_interval_s)
        dataplane = DataPlane(settings.database_url, workers=settings.max_running_jobs)
        metrics = Metrics()
        supervisor = Supervisor(
            db=db,
            settings=settings,
            broker=broker,
            kinds={kind.name: kind.runner(settings, dataplane) for kind in kinds},
            metrics=metrics,
        )
        await supervisor.start()
        if settings.start_worker or await supervisor.has_work():
            dataplane.warm()  # a worker starts while the server begins to serve
        app.state.services = Services(
            settings=settings,
            db=db,
            broker=broker,
            supervisor=supervisor,
            access=access,
            dataplane=dataplane,
            metrics=metrics,
        )
        log.info("Collect %s serving data in %s", __version__, settings.data_dir)
        log.info("access: %s", access.describe())
        log.info("database: %s", make_url(settings.database_url).render_as_string())
        # What start-up made (modules, routes, schemas, engines: over 100,000 objects) lives
        # as long as the service: it is kept out of the collector's full passes, each of
        # which would otherwise walk it all with the event loop stopped, for tens of
        # milliseconds, every few thousand allocations. Given back on the way out.
        gc.freeze()
        try:
            with _end_streams_on_stop(broker):
                yield
        finally:
            gc.unfreeze()
            broker.close_streams()
            await supervisor.close()
            await dataplane.close()
            await db.dispose()

    app = FastAPI(
        title="Collect",
        version=__version__,
        summary="Long-running data jobs you can pause, resume or terminate.",
        description=API_DESCRIPTION,
        openapi_tags=API_TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Operation ids are the handlers' names: `pause_job`, not `pause_job_jobs__job_id__...`.
        generate_unique_id_function=lambda route: route.name,
        # The service's figures are its own (`GET /metrics`): FastAPI's OpenTelemetry hooks
        # off, or every request would look for a provider in the environment.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.openapi = openapi_document(app, kinds=[kind.name for kind in kinds])  # type: ignore[method-assign]
    add_docs_pages(app)

    @app.exception_handler(CollectError)
    async def _collect_error(_request: Request, exc: CollectError) -> JSONResponse:
        return JSONResponse(
            exc.problem(), status_code=exc.status, media_type=PROBLEM, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        detail = f"{where}: {first.get('msg', 'invalid value')}" if where else "invalid request"
        return _problem(
            422,
            "Unprocessable content",
            detail,
            errors=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is no such resource; see /docs for the API."
        elif exc.status_code == 405:
            detail = "This method is not allowed here; see /docs for the API."
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            return _problem(400, "Bad request", BODY_UNREADABLE)
        return _problem(exc.status_code, detail.split(";")[0], detail)

    @app.exception_handler(OperationalError)
    async def _database_error(request: Request, exc: OperationalError) -> JSONResponse:
        if is_disk_full(exc):
            db: Database = request.app.state.services.db
            db.disk_full = True
            return _problem(
                507,
                "Insufficient storage",
                f"The database's disk is full: {db.room()}. Nothing was changed; try again "
                "once space is freed.",
            )
        log.error("database error: %s", exc)
        return _problem(503, "Service unavailable", "The database is busy; try again.")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _problem(
            500, "Internal server error", "The service failed on this request; try again."
        )

    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(
            static / "index.html", headers={"Content-Security-Policy": DASHBOARD_POLICY}
        )

    app.add_middleware(BodyLimit)
    for router in (
        *(kind.router for kind in kinds),
        jobs.router,
        events.router,
        datasets.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    return app
