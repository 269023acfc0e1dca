"""The service's logging: one configuration for its own loggers and uvicorn's.

Every line has a timestamp, a level, the logger and, when it is about one job, the job's id:
the supervisor sets ``job_id`` for the task that runs a job, and a filter copies it into each
record. ``text`` lines are for people; ``json`` gives one JSON object a line, for log
shippers. uvicorn applies the configuration (``log_config``) in every server process.
"""

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("collect_job_id", default=None)

FORMATS = ("text", "json")


class JobFilter(logging.Filter):
    """Adds ``job_id`` (or None) to every record: the job whose task logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = job_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(job)s%(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)

    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        record.job = f"[job {job}] " if job else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def config(*, level: str = "info", log_format: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {log_format!r}")
    formatter = f"collect_api.logs.{'Json' if log_format == 'json' else 'Text'}Formatter"
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "collect",
        "filters": ["job"],
        "stream": "ext://sys.stderr",
    }
    named = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job": {"()": "collect_api.logs.JobFilter"}},
        "formatters": {"collect": {"()": formatter}},
        "handlers": {"collect": handler},
        "loggers": {
            "collect": {"handlers": ["collect"], "level": named, "propagate": False},
            "uvicorn": {"handlers": ["collect"], "level": named, "propagate": False},
            "uvicorn.error": {"level": named},
            "uvicorn.access": {"handlers": ["collect"], "level": named, "propagate": False},
        },
    }
