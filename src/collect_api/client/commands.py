"""The client verbs of ``collect``: run jobs, follow and steer them, read what they made.

Every verb takes ``--server`` (``COLLECT_SERVER``), ``--key`` (``COLLECT_API_KEY``) and
``--json``. Exit codes a script can trust: 0 the job completed, or the call succeeded;
1 the job failed, or the service refused the request or could not be reached; 2 a usage
error; 3 the job ended terminated; 130 a Ctrl-C stopped the command.
"""

import csv
import functools
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from collect_api.client import render
from collect_api.client.api import DEFAULT_SERVER, Api, ApiError, ConnectionProblem, Job
from collect_api.client.display import Bars
from collect_api.client.follow import Outcome, follow_to_end
from collect_api.client.output import Output, error
from collect_api.client.where import SYNTAX, BadExpression, parse_where

client = typer.Typer()

RUN = "Run a job"
STEER = "Follow and steer jobs"
DATA = "Read datasets"

EXIT_FAILED = 1
EXIT_TERMINATED = 3
EXIT_INTERRUPTED = 130


class Mode(StrEnum):
    CREATE = "create"
    APPEND = "append"
    REPLACE = "replace"


class OnError(StrEnum):
    ABORT = "abort"
    SKIP = "skip"


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"


class Kind(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    TEAMS = "teams"


_CONNECTION = "Connection"
ServerOption = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="COLLECT_SERVER",
        help="URL of the Collect service.",
        rich_help_panel=_CONNECTION,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="COLLECT_API_KEY",
        help="API key, sent as 'Authorization: Bearer KEY'.",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print exactly one JSON document on stdout (the job, or the list)."
    ),
]
DetachOption = Annotated[
    bool,
    typer.Option("--detach", help="Return once the job is accepted, printing its id."),
]
JobId = Annotated[str, typer.Argument(metavar="ID", help="The job's id.", show_default=False)]
CsvFile = Annotated[
    Path,
    typer.Argument(
        metavar="FILE",
        exists=True,
        dir_okay=False,
        readable=True,
        help="The CSV file to upload.",
        show_default=False,
    ),
]
OnErrorOption = Annotated[
    OnError,
    typer.Option("--on-error", help="abort: a bad record fails the job; skip: set it aside."),
]
MaxErrorsOption = Annotated[
    int | None,
    typer.Option(
        "--max-errors", min=0, help="With --on-error skip, fail past this many rejected records."
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option("--encoding", help="utf-8 (default), utf-16 or latin-1.", show_default=False),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="auto (default) or the one character between fields.",
        show_default=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def _verb(name: str | None = None, *, panel: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a client verb; what goes wrong becomes one line on stderr and an exit code."""

    def register(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except ApiError as exc:
                error(exc.detail)
            except ConnectionProblem as exc:
                error(str(exc))
            except OSError as exc:
                error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
            except KeyboardInterrupt:
                raise typer.Exit(EXIT_INTERRUPTED) from None
            raise typer.Exit(EXIT_FAILED)

        client.command(name, rich_help_panel=panel)(run)
        return func

    return register


@contextmanager
def _connect(server: str, key: str | None) -> Iterator[Api]:
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{server!r} is not a URL; give one like {DEFAULT_SERVER}", param_hint="'--server'"
        )
    api = Api(server, key=key)
    try:
        yield api
    finally:
        api.close()


def _csv_fields(
    on_error: OnError, max_errors: int | None, encoding: str | None, delimiter: str | None
) -> dict[str, str]:
    fields = {"on_error": on_error.value}
    for name, value in (
        ("max_errors", max_errors),
        ("encoding", encoding),
        ("delimiter", delimiter),
    ):
        if value is not None:
            fields[name] = str(value)
    return fields


# Running jobs


@_verb("import", panel=RUN)
def import_(
    file: CsvFile,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="The dataset to import into.", show_default=False)
    ],
    mode: Annotated[
        Mode,
        typer.Option("--mode", help="create: a new dataset; append to it; replace its rows."),
    ] = Mode.CREATE,
    on_error: OnErrorOption = OnError.ABORT,
    max_errors: MaxErrorsOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    detach: DetachOption = False,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a CSV file into a dataset, with progress bars for the upload and the job."""
    fields = {"dataset": dataset, "mode": mode.value}
    fields |= _csv_fields(on_error, max_errors, encoding, delimiter)
    _upload_and_follow("/imports", file, fields, server, key, as_json=as_json, detach=detach)


@_verb(panel=RUN)
def teams(
    file: CsvFile,
    on_error: OnErrorOption = OnError.ABORT,
    max_errors: MaxErrorsOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    detach: DetachOption = False,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create teams and members from a CSV (team, member_email, member_name, role)."""
    fields = _csv_fields(on_error, max_errors, encoding, delimiter)
    _upload_and_follow("/teams/imports", file, fields, server, key, as_json=as_json, detach=detach)


def _upload_and_follow(
    path: str,
    file: Path,
    fields: dict[str, str],
    server: str,
    key: str | None,
    *,
    as_json: bool,
    detach: bool,
) -> NoReturn:
    output = Output(as_json=as_json)
    with _connect(server, key) as api, Bars(output.err, enabled=output.shows_progress) as bars:
        upload = bars.transfer(f"upload {file.name}", file.stat().st_size)
        try:
            job = api.submit_csv(path, file, fields, on_sent=upload.done)
        except KeyboardInterrupt:
            bars.suspend()
            output.note("Interrupted during the upload.")
            raise
        if detach:
            _accepted(output, job)
        _following(output, job)
        _finish(api, output, follow_to_end(api, job, bars, output), bars)


@_verb(panel=RUN)
def export(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="The dataset to export.", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="The file to write (required unless --detach).", dir_okay=False
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="The columns to write, in order: a,b,… (default: all)."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help=f"A filter, {SYNTAX}; repeat for more (all must hold)."),
    ] = None,
    gzip: Annotated[bool, typer.Option("--gzip", help="Write the file gzip-compressed.")] = False,
    detach: DetachOption = False,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export a dataset, filtered and projected, and download the file."""
    if (out is None) != detach:
        raise typer.BadParameter(
            "give the file to write the export to, or --detach to return before it exists",
            param_hint="'--output' / '-o'",
        )
    if out is not None and not out.resolve().parent.is_dir():
        raise typer.BadParameter(f"the folder of {out} does not exist", param_hint="'--output'")
    try:
        filters = [parse_where(expression) for expression in where or []]
    except BadExpression as exc:
        raise typer.BadParameter(str(exc), param_hint="'--where'") from None
    body: dict[str, Any] = {"dataset": dataset, "filters": filters, "gzip": gzip}
    if columns is not None:
        body["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    output = Output(as_json=as_json)
    with _connect(server, key) as api, Bars(output.err, enabled=output.shows_progress) as bars:
        job = api.submit_export(body)
        if detach or out is None:
            _accepted(output, job)
        _following(output, job)
        outcome = follow_to_end(api, job, bars, output)
        if outcome.job["state"] == "completed" and not outcome.interrupted:
            download = bars.transfer(f"download {out.name}")
            api.download(job["id"], out, on_total=download.total, on_received=download.done)
        _finish(api, output, outcome, bars, saved_to=out)


def _accepted(output: Output, job: Job) -> NoReturn:
    if output.as_json:
        output.document(job)
    else:
        output.line(job["id"])
    raise typer.Exit(0)


def _following(output: Output, job: Job) -> None:
    if output.shows_progress:
        output.note(
            f"Job {job['id']} accepted; following it (Ctrl-C to pause, terminate or detach)."
        )


def _finish(
    api: Api, output: Output, outcome: Outcome, bars: Bars, *, saved_to: Path | None = None
) -> NoReturn:
    """Say how the job ended, print it with --json, and exit with the code for its end."""
    bars.suspend()
    job = outcome.job
    if not outcome.interrupted:
        _report(api, output, job, saved_to=saved_to)
    if output.as_json:
        output.document(job)
    raise typer.Exit(_exit_code(outcome))


def _report(api: Api, output: Output, job: Job, *, saved_to: Path | None = None) -> None:
    text = render.summary(job)
    if job["state"] == "failed":
        error(text)
    elif job["state"] == "terminated":
        output.note(text)
    elif job["state"] == "completed":
        if saved_to is not None:
            text += f" Saved to {saved_to}."
        elif job["kind"] == "export":
            text += f" Download it from {api.server}{job['result']['download_url']}"
        output.line(text)
        if (job["result"] or {}).get("rows_rejected"):
            output.line(f"See the rejected rows with: collect errors {job['id']}")


def _exit_code(outcome: Outcome) -> int:
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return {"completed": 0, "terminated": EXIT_TERMINATED}.get(outcome.job["state"], EXIT_FAILED)


# Following and steering


@_verb(panel=STEER)
def jobs(
    state: Annotated[State | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    kind: Annotated[Kind | None, typer.Option("--kind", help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        found = api.jobs(
            state=state.value if state else None, kind=kind.value if kind else None, limit=limit
        )
    if output.as_json:
        output.document(found)
    elif found:
        output.show(render.jobs_table(found))
    else:
        output.note("No jobs.")


@_verb(panel=STEER)
def show(
    job_id: JobId,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """One job: its parameters, progress, result or error, and its history."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        job = api.job(job_id)
        if output.as_json:
            output.document(job)
            return
        output.show(render.job_page(job, api.history(job_id)))


@_verb(panel=STEER)
def watch(
    job_id: JobId,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job until it ends; the exit code says how it ended."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api, Bars(output.err, enabled=output.shows_progress) as bars:
        job = api.job(job_id)
        _finish(api, output, follow_to_end(api, job, bars, output), bars)


@_verb(panel=STEER)
def pause(
    job_id: JobId,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a job at its next safe point; it holds nothing until resumed."""
    _control(job_id, "pause", server, key, as_json)


@_verb(panel=STEER)
def resume(
    job_id: JobId,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused job from its checkpoint."""
    _control(job_id, "resume", server, key, as_json)


@_verb(panel=STEER)
def terminate(
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Terminate a job and roll its writes back (asks first on a terminal)."""
    output = Output(as_json=as_json)
    if output.can_ask and not yes:
        with _connect(server, key) as api:
            job = api.job(job_id)
        question = (
            f"Terminate the {job['kind']} job {job_id} ({render.target(job)}, {job['state']}, "
            f"{render.percent(job)})? Its writes are rolled back."
        )
        if not typer.confirm(question, err=True):
            output.note("Not terminated.")
            raise typer.Exit(EXIT_FAILED)
    _control(job_id, "terminate", server, key, as_json)


def _control(job_id: str, action: str, server: str, key: str | None, as_json: bool) -> None:
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        job = api.control(job_id, action)
    if output.as_json:
        output.document(job)
        return
    progress = job["progress"]
    output.line(
        f"Job {job['id']} is {job['state']} "
        f"({progress['done']:,} {progress['unit']}, {render.percent(job)})."
    )
    if job["state"] == "paused":
        output.line(f"Resume it with: collect resume {job['id']}")


@_verb(panel=STEER)
def errors(
    job_id: JobId,
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the records to this CSV file.", dir_okay=False),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The records an import rejected: line, record, column, reason and raw text."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        if out is not None:
            with open(out, "wb") as file:
                api.rejections(job_id, file)
            records = _records(out.read_bytes())
            output.note(f"Wrote {len(records):,} rejected records to {out}.")
            if output.as_json:
                output.document(records)
            return
        if not output.as_json and not sys.stdout.isatty():
            # Piped: the CSV itself, for the next program.
            api.rejections(job_id, sys.stdout.buffer)
            return
        buffer = io.BytesIO()
        api.rejections(job_id, buffer)
    records = _records(buffer.getvalue())
    if output.as_json:
        output.document(records)
    elif records:
        output.show(render.rejections_table(records))
    else:
        output.note(f"Job {job_id} rejected no records.")


def _records(data: bytes) -> list[dict[str, Any]]:
    """The service's CSV of rejected records as objects, line and record as numbers."""
    return [
        {**record, "line": _number(record["line"]), "record": _number(record["record"])}
        for record in csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    ]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


# Datasets


@_verb(panel=DATA)
def datasets(
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """What has been imported: datasets with their columns and row counts."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        found = api.datasets()
    if output.as_json:
        output.document(found)
    elif found:
        output.show(render.datasets_table(found))
    else:
        output.note("No datasets yet; import one with: collect import FILE --dataset NAME")


@_verb(panel=DATA)
def rows(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="The dataset.", show_default=False)
    ],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many rows.")
    ] = 20,
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The first rows of a dataset, in source order."""
    output = Output(as_json=as_json)
    with _connect(server, key) as api:
        page = api.rows(dataset, limit=limit)
    if output.as_json:
        output.document(page)
    else:
        output.show(render.rows_table(page))
