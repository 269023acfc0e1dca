"""The service's documents as people read them: tables, a job's page, one-line summaries."""

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

Job = dict[str, Any]

_STATE_STYLES = {
    "completed": "green",
    "failed": "red",
    "terminated": "red",
    "paused": "yellow",
    "pausing": "yellow",
    "terminating": "yellow",
    "running": "cyan",
}


def state(name: str) -> Text:
    return Text(name, style=_STATE_STYLES.get(name, ""))


def when(timestamp: str | None) -> str:
    """An RFC 3339 time as a short local time."""
    if not timestamp:
        return ""
    return datetime.fromisoformat(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(job: Job) -> float | None:
    """Seconds from the job's start to its end, pauses included."""
    if not job.get("started_at") or not job.get("finished_at"):
        return None
    started = datetime.fromisoformat(job["started_at"])
    return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()


def seconds(value: float | None) -> str:
    if value is None:
        return "an unknown time"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def target(job: Job) -> str:
    """What the job works on: its dataset, or the file it reads."""
    params = job["params"]
    return str(params.get("dataset") or params.get("filename") or "")


def percent(job: Job) -> str:
    return f"{job['progress']['percent']:.1f}%"


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "KIND", "STATE", "PROGRESS", "DATASET OR FILE", "CREATED"):
        table.add_column(column, no_wrap=column != "DATASET OR FILE")
    for job in jobs:
        table.add_row(
            job["id"], job["kind"], state(job["state"]), percent(job), target(job),
            when(job["created_at"]),
        )  # fmt: skip
    return table


def job_page(job: Job, history: list[dict[str, Any]]) -> RenderableType:
    """``collect show``: parameters, progress, result or error, and the history."""
    head = Text.assemble((f"Job {job['id']}", "bold"), f"  {job['kind']}  ", state(job["state"]))
    times = _pairs(
        ("created", when(job["created_at"])),
        ("started", when(job["started_at"])),
        ("finished", when(job["finished_at"])),
    )
    parts: list[RenderableType] = [head, times, Text("\nParameters", style="bold")]
    parts.append(_pairs(*((k, _value(v)) for k, v in job["params"].items())))
    parts += [Text("\nProgress", style="bold"), _pairs(*_progress_pairs(job))]
    if job["result"]:
        parts += [Text("\nResult", style="bold")]
        parts.append(_pairs(*((k, _value(v)) for k, v in job["result"].items())))
    if job["error"]:
        parts += [Text("\nError", style="bold red")]
        parts.append(_pairs(*((k, _value(v)) for k, v in job["error"].items() if v is not None)))
    parts.append(Text("\nHistory", style="bold"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("AT", "FROM", "TO", "BY", "REASON"):
        table.add_column(column)
    for entry in history:
        table.add_row(
            when(entry["at"]), entry["from_state"] or "", state(entry["to_state"]),
            entry["actor"], entry["reason"] or "",
        )  # fmt: skip
    parts.append(table)
    return Group(*parts)


def _progress_pairs(job: Job) -> list[tuple[str, str]]:
    progress = job["progress"]
    unit = progress.get("unit") or "records"
    done, total = progress["done"], progress.get("total")
    pairs = [
        ("done", f"{done:,} {unit}" + (f" of {total:,}" if total is not None else "")),
        ("percent", percent(job)),
    ]
    if progress.get("bytes_total"):
        pairs.append(
            ("bytes", f"{progress.get('bytes_done') or 0:,} of {progress['bytes_total']:,}")
        )
    if progress.get("rate_per_s") and job["state"] == "running":
        pairs.append(("rate", f"{progress['rate_per_s']:,.0f} {unit}/s"))
    return pairs


def _pairs(*pairs: tuple[str, str]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        if value != "":
            grid.add_row(f"  {key}", Text(value))
    return grid


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        # Filters read as they are written: "age gt 30; country eq France".
        separator = "; " if any(isinstance(v, dict) for v in value) else ", "
        return separator.join(_value(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_value(v) for v in value.values())
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def datasets_table(datasets: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "ROWS", "COLUMNS", "VERSION", "UPDATED"):
        table.add_column(column, justify="right" if column in ("ROWS", "VERSION") else "left")
    for dataset in datasets:
        table.add_row(
            dataset["name"], f"{dataset['row_count']:,}", ", ".join(dataset["columns"]),
            str(dataset["version"]), when(dataset["updated_at"]),
        )  # fmt: skip
    return table


def rows_table(page: dict[str, Any]) -> Table:
    table = Table(header_style="bold", show_lines=False)
    for column in page["columns"]:
        table.add_column(column, overflow="fold")
    for row in page["rows"]:
        table.add_row(*(_field(field) for field in row))
    return table


def _field(value: str | None) -> Text:
    """A field on one line: line breaks inside it shown as ↵."""
    if value is None:
        return Text("")
    return Text(value.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵"))


def rejections_table(records: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("LINE", "RECORD", "COLUMN", "REASON", "RAW"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            _number(record["line"]), _number(record["record"]), record["column"],
            Text(record["reason"]),
            _field(record["raw"].rstrip("\r\n")),
        )  # fmt: skip
    return table


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def summary(job: Job) -> str:
    """What a finished job did, in a sentence."""
    result = job["result"] or {}
    took = seconds(duration(job))
    if job["state"] == "failed":
        message = (job["error"] or {}).get("message", "no reason was given")
        return f"The {job['kind']} job {job['id']} failed: {message}"
    if job["state"] == "terminated":
        return f"The {job['kind']} job {job['id']} was terminated; its writes were rolled back."
    if job["state"] != "completed":
        return f"Job {job['id']} is {job['state']}."
    if job["kind"] == "import":
        return (
            f"Imported {result['rows_imported']:,} rows into dataset {result['dataset']} in "
            f"{took}; {result['rows_rejected']:,} rejected."
        )
    if job["kind"] == "export":
        return (
            f"Exported {result['rows']:,} rows ({size(result['bytes'])}) of dataset "
            f"{result['dataset']} in {took}."
        )
    return (
        f"Created {result['teams_created']:,} teams and added {result['members_added']:,} "
        f"members ({result['members_already_present']:,} already there) in {took}; "
        f"{result['rows_rejected']:,} rows rejected."
    )
