"""The service's HTTP API, as the command-line client uses it.

Every call returns the service's documents as plain dicts, exactly as the API sends them
(``--json`` prints them unchanged). Failures become two exceptions the commands render as
one line each: ``ApiError`` when the service refused a request (its problem's ``detail``),
``ConnectionProblem`` when it could not be reached or the connection broke.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, connect_sse

Job = dict[str, Any]

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Control calls answer once the job reached a safe point, which the service waits for up to
# COLLECT_CONTROL_WAIT_S (30 s by default): reads may take that long.
_TIMEOUT = httpx.Timeout(90, connect=10)
# An idle event stream carries a keep-alive comment every 15 s; silence longer than this
# means the connection is dead even if no error says so.
_EVENTS_TIMEOUT = httpx.Timeout(10, read=45)
_PAGE = 1000  # the API's largest page


class ApiError(Exception):
    """The service refused a request; ``detail`` says what to do."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class ConnectionProblem(Exception):
    """The service could not be reached, or the connection to it broke."""


class Api:
    def __init__(self, server: str, *, key: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    # Jobs

    def job(self, job_id: str) -> Job:
        return self._json("GET", f"/jobs/{job_id}")

    def jobs(self, *, state: str | None, kind: str | None, limit: int) -> list[Job]:
        params = {k: v for k, v in (("state", state), ("kind", kind)) if v}
        return self._items("/jobs", params, limit)

    def history(self, job_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", f"/jobs/{job_id}/history")["items"]
        return items

    def control(self, job_id: str, action: str) -> Job:
        """``pause``, ``resume`` or ``terminate``; answered once it took effect."""
        return self._json("POST", f"/jobs/{job_id}/{action}")

    @contextmanager
    def events(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> Iterator[Iterator[ServerSentEvent]]:
        """The job's event stream; with ``last_event_id`` it starts with what was missed."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        with (
            self._transport(),
            connect_sse(
                self._http,
                "GET",
                f"/jobs/{job_id}/events",
                headers=headers,
                timeout=_EVENTS_TIMEOUT,
            ) as source,
        ):
            if source.response.status_code != 200:
                source.response.read()
                raise _refusal(source.response)
            yield source.iter_sse()

    def rejections(self, job_id: str, dest: IO[bytes]) -> None:
        """Write the job's rejected records, as the service's CSV, to ``dest``."""
        with self._stream("GET", f"/jobs/{job_id}/errors") as response:
            for chunk in response.iter_bytes():
                dest.write(chunk)

    # Submitting jobs

    def submit_csv(
        self,
        path: str,
        source: Path,
        fields: dict[str, str],
        *,
        on_sent: Callable[[int], None] = lambda _: None,
    ) -> Job:
        """Upload ``source`` to ``POST path`` with the form ``fields``; ``on_sent`` hears how
        many of its bytes have been sent so far."""
        with open(source, "rb") as file:
            files = {"file": (source.name, _Sending(file, on_sent), "text/csv")}
            return self._json("POST", path, data=fields, files=files)

    def submit_export(self, body: dict[str, Any]) -> Job:
        return self._json("POST", "/exports", json=body)

    def download(
        self,
        job_id: str,
        dest: Path,
        *,
        on_total: Callable[[int | None], None] = lambda _: None,
        on_received: Callable[[int], None] = lambda _: None,
    ) -> int:
        """Save an export's file to ``dest`` (whole or not at all); return its size."""
        partial = dest.with_name(f".{dest.name}.part")
        received = 0
        try:
            with (
                self._stream("GET", f"/jobs/{job_id}/result") as response,
                open(partial, "wb") as out,
            ):
                length = response.headers.get("content-length")
                on_total(int(length) if length and length.isdigit() else None)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    received += len(chunk)
                    on_received(received)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return received

    # Datasets

    def datasets(self) -> list[dict[str, Any]]:
        return self._items("/datasets", {}, None)

    def rows(self, dataset: str, *, limit: int) -> dict[str, Any]:
        """The first ``limit`` rows: ``{"columns", "rows", "next"}`` as the API pages them."""
        page: dict[str, Any] = {"rows": []}
        rows: list[list[str]] = []
        params: dict[str, Any] = {}
        while len(rows) < limit:
            params["limit"] = min(_PAGE, limit - len(rows))
            page = self._json("GET", f"/datasets/{dataset}/rows", params=params)
            rows += page["rows"]
            if page["next"] is None:
                break
            params["after"] = page["next"]
        return {**page, "rows": rows}

    # Plumbing

    def _items(self, path: str, params: dict[str, Any], limit: int | None) -> list[Any]:
        """Items of a list endpoint, following ``next`` until ``limit`` (None: all)."""
        items: list[Any] = []
        query = dict(params)
        while limit is None or len(items) < limit:
            query["limit"] = _PAGE if limit is None else min(_PAGE, limit - len(items))
            page = self._json("GET", path, params=query)
            items += page["items"]
            if page["next"] is None:
                break
            query["after"] = page["next"]
        return items

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._transport():
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise _refusal(response)
        return response.json()

    @contextmanager
    def _stream(self, method: str, path: str) -> Iterator[httpx.Response]:
        with self._transport(), self._http.stream(method, path) as response:
            if response.is_error:
                response.read()
                raise _refusal(response)
            yield response

    @contextmanager
    def _transport(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            raise ConnectionProblem(
                f"Cannot reach the Collect service at {self.server} ({_reason(exc)}): is it "
                "running? Start it with `collect serve`, or give its URL with --server or "
                "COLLECT_SERVER."
            ) from None
        except httpx.TimeoutException:
            raise ConnectionProblem(
                f"The Collect service at {self.server} did not answer in time."
            ) from None
        except (httpx.TransportError, SSEError) as exc:
            raise ConnectionProblem(
                f"The connection to the Collect service at {self.server} broke ({_reason(exc)})."
            ) from None


class _Sending:
    """A binary file that reports how far it has been read, which is how far the upload got."""

    def __init__(self, file: IO[bytes], on_sent: Callable[[int], None]) -> None:
        self._file = file
        self._on_sent = on_sent

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._on_sent(self._file.tell())
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        self._on_sent(position)
        return position

    def tell(self) -> int:
        return self._file.tell()


def _refusal(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        return ApiError(response.status_code, problem["detail"], problem)
    request = response.request
    return ApiError(
        response.status_code,
        f"The service answered {response.status_code} {response.reason_phrase} to "
        f"{request.method} {request.url.path}.",
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    # "[Errno 111] Connection refused" reads better without the number.
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.lower() if text else type(exc).__name__
