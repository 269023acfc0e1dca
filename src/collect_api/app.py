"""The application: ``create_app(settings)`` and its lifespan. No globals."""

import asyncio
import csv
import logging
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from collect_api import __version__
from collect_api.access import Access
from collect_api.api import datasets, events, exports, health, imports, jobs, teams
from collect_api.api.deps import Services
from collect_api.api.limits import BodyLimit
from collect_api.api.schemas import COMMON_RESPONSES
from collect_api.db import Database, is_disk_full
from collect_api.errors import CollectError
from collect_api.jobs.broker import Broker
from collect_api.jobs.supervisor import Supervisor
from collect_api.kinds import all_kinds
from collect_api.settings import Settings

log = logging.getLogger("collect")
PROBLEM = "application/problem+json"


def _problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


@contextmanager
def _end_streams_on_stop(broker: Broker) -> Iterator[None]:
    """On SIGTERM or SIGINT, end the event streams before the server drains connections.

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
        loop.call_soon_threadsafe(broker.close_streams)
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


def create_app(settings: Settings | None = None) -> FastAPI:
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
        async with db.write() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        broker = Broker(db, progress_interval=settings.progress_interval_s)
        supervisor = Supervisor(db=db, settings=settings, broker=broker, kinds=all_kinds(settings))
        await supervisor.start()
        app.state.services = Services(
            settings=settings, db=db, broker=broker, supervisor=supervisor, access=access
        )
        log.info("Collect %s serving data in %s", __version__, settings.data_dir)
        log.info("access: %s", access.describe())
        try:
            with _end_streams_on_stop(broker):
                yield
        finally:
            broker.close_streams()
            await supervisor.close()
            await db.dispose()

    app = FastAPI(
        title="Collect",
        version=__version__,
        summary="Long-running data jobs you can pause, resume or terminate.",
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
    )

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
        return FileResponse(static / "index.html")

    app.add_middleware(BodyLimit)
    for router in (
        imports.router,
        exports.router,
        teams.router,
        jobs.router,
        events.router,
        datasets.router,
        health.router,
    ):
        app.include_router(router)
    return app
