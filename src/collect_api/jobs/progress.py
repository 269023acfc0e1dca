"""How far a job is: one document, stored with the job and shown as the API's ``progress``.

Each kind computes it at each checkpoint; the engine stores ``document()``, and the API
declares this same model in its schema.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)

    done: int = Field(description="records (or rows) processed so far")
    total: int | None = Field(
        description="records in all, once known: an import's total is known when it completes"
    )
    percent: float = Field(
        ge=0, le=100, description="how far the job is, 0 to 100; it never goes backwards"
    )
    unit: str = Field(description="what `done` and `total` count: `records` or `rows`")
    bytes_done: int | None = Field(default=None, description="bytes of the source read so far")
    bytes_total: int | None = Field(default=None, description="size of the source in bytes")
    rate_per_s: float | None = Field(
        default=None, description="recent speed, in `unit` per second, while the job runs"
    )
    eta_s: float | None = Field(
        default=None, description="estimated seconds left, while the job runs"
    )

    def document(self) -> dict[str, Any]:
        """As the job's row keeps it."""
        return self.model_dump()
