"""Domain errors, raised where the fact is known and rendered once as RFC 9457 problem details."""

from typing import Any

from collect_api.jobs.models import TERMINAL


class CollectError(Exception):
    """An error a user can act on: an HTTP status, a short title and a detail sentence."""

    status: int = 400
    title: str = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        return {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


class Unauthorized(CollectError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, challenge: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": challenge}


class NotFound(CollectError):
    status = 404
    title = "Not found"


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"No job with id {job_id!r} exists. List your jobs with GET /jobs.", job_id=job_id
        )


class DatasetNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"No dataset named {name!r} exists. List datasets with GET /datasets.", dataset=name
        )


class Gone(CollectError):
    status = 410
    title = "Gone"


class Conflict(CollectError):
    status = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    title = "Invalid transition"

    def __init__(self, job_id: str, state: str, to: str) -> None:
        super().__init__(
            f"Job {job_id} is {state} and cannot become {to}."
            + (" It is finished; submit a new job instead." if state in TERMINAL else ""),
            job_id=job_id,
            state=str(state),
        )


class Unprocessable(CollectError):
    status = 422
    title = "Unprocessable content"


class BadCsv(Unprocessable):
    """The uploaded CSV cannot be imported as it is."""

    title = "Bad CSV"


class PayloadTooLarge(CollectError):
    status = 413
    title = "Payload too large"


class InsufficientStorage(CollectError):
    status = 507
    title = "Insufficient storage"
