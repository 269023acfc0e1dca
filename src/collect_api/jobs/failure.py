"""Why a job failed, as the engine records it: a code, a message and details.

A kind raises ``JobFailure`` for the failures it expects, turning its own errors into it
(a CSV kind's ``CsvProblem`` becomes one with the line, record and column at fault); the
supervisor writes ``document()`` as the job's ``error``. Anything else that ends a run is
unexpected, and is recorded as ``internal``.
"""

from typing import Any


class JobFailure(Exception):
    """A kind's reason to fail a job: ``code`` for machines, the message for people, and
    ``details`` (such as ``line``, ``record`` and ``column``) where there are any."""

    def __init__(self, message: str, *, code: str = "failed", **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = {k: v for k, v in details.items() if v is not None}

    def document(self) -> dict[str, Any]:
        """The job's ``error``."""
        return {"code": self.code, "message": str(self), **self.details}
