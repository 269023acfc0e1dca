"""Receiving a CSV upload for a job: shared by ``POST /imports`` and ``POST /teams/imports``."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request, Response

from collect_api.api.deps import Services
from collect_api.api.multipart import (
    UploadProblem,
    UploadTooLarge,
    discard_file,
    receive_upload,
)
from collect_api.db import is_disk_full, room_on_disk, shielded
from collect_api.errors import InsufficientStorage, PayloadTooLarge, Unprocessable
from collect_api.ids import new_job_id
from collect_api.jobs import store
from collect_api.jobs.models import Job
from collect_api.kinds.csvsource import Upload, upload_path


class EarlyStart(Protocol):
    """Work on an upload begun while it still arrives (``kinds.imports.EarlyImport``)."""

    def file_started(self, upload: Upload) -> None: ...

    def received(self, size: int) -> None: ...

    async def stop(self, *, failed: bool) -> None: ...

    async def discard(self) -> None: ...


# The job's submission: its id, the upload received, and the early start if there was one.
Submit = Callable[[str, Upload, EarlyStart | None], Awaitable[Job]]


def csv_form(file: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a CSV upload: the ``file`` part so described, the form
    ``fields`` of the operation, then the options every CSV upload takes."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": file},
        **fields,
        "on_error": {
            "type": "string",
            "enum": ["abort", "skip"],
            "default": "abort",
            "description": "what a bad record does: `abort` fails the job, keeping nothing; "
            "`skip` sets it aside (listed by `GET /jobs/{id}/errors`) and goes on",
        },
        "max_errors": {
            "type": "integer",
            "minimum": 0,
            "default": 1000,
            "description": "with `on_error=skip`, the most records that may be set aside; "
            "one more fails the job",
        },
        "encoding": {
            "type": "string",
            "enum": ["utf-8", "utf-16", "latin-1"],
            "default": "utf-8",
            "description": "the file's text encoding: `utf-8` with or without a byte order "
            "mark, `utf-16` with one, or `latin-1`",
        },
        "delimiter": {
            "type": "string",
            "default": "auto",
            "description": "`auto` (picks among `,` `;` tab `|`; the job's `params` say which) "
            "or the one character that separates fields",
        },
    }
    required = ["file", *(name for name, spec in fields.items() if spec.pop("required", False))]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": required, "properties": properties}
                }
            },
        }
    }


async def accept_csv_job(
    request: Request,
    response: Response,
    services: Services,
    submit: Submit,
    *,
    early_start: Callable[[str, Path], EarlyStart] | None = None,
) -> dict[str, Any]:
    """Stream the upload to its file, let ``submit`` validate it and queue the job (removing
    the file if it refuses), and answer 202 with the job and its ``Location``.

    With ``early_start``, the job's work may begin while the upload still arrives; what it
    did is dropped unless the job is submitted."""
    settings = services.settings
    job_id = new_job_id()
    path = upload_path(settings, job_id)
    early = early_start(job_id, path) if early_start is not None else None
    submitted = False
    try:
        job = await _receive_and_submit(request, services, submit, job_id, path, early)
        submitted = True
    finally:
        if early is not None and not submitted:
            await shielded(early.discard)
    services.supervisor.wake()
    response.headers["Location"] = f"/jobs/{job.id}"
    return store.job_document(job)


async def _receive_and_submit(
    request: Request,
    services: Services,
    submit: Submit,
    job_id: str,
    path: Path,
    early: EarlyStart | None,
) -> Job:
    settings = services.settings
    received = False
    try:
        upload = await receive_upload(
            request.stream(),
            content_type=request.headers.get("content-type", ""),
            dest=path,
            max_bytes=settings.max_upload_bytes,
            on_file=early.file_started if early is not None else None,
            on_written=early.received if early is not None else None,
        )
        received = True
    except UploadTooLarge as exc:
        raise PayloadTooLarge(
            f"the file is larger than the {exc.limit}-byte upload limit "
            "(COLLECT_MAX_UPLOAD_BYTES); split it or raise the limit"
        ) from None
    except UploadProblem as exc:
        raise Unprocessable(str(exc), field="file") from None
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise InsufficientStorage(
            f"The upload does not fit: {room_on_disk(path.parent)} is full. Nothing was "
            "kept; free some space, or send a smaller file."
        ) from None
    finally:
        if early is not None:
            await early.stop(failed=not received)
    try:
        return await submit(job_id, upload, early)
    except BaseException:
        await discard_file(path)
        raise
