"""Progress bars on stderr: bytes sent or received, and the job's own progress.

The job's bar shows what the service reports (records done, percent, rate, ETA) rather
than estimating it here, so that it is right from the first event, across pauses, and
after a reconnection. Without a terminal nothing is drawn at all.
"""

from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Bars:
    """The bars of one command, drawn together while the command runs."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._enabled = enabled
        self._transfers = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        # Styled as rich styles the transfer's columns: one look for both bars.
        self._jobs = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%", style="progress.percentage"),
            TextColumn("{task.fields[job][count]}", style="progress.download"),
            TextColumn("{task.fields[job][rate]}", style="progress.data.speed"),
            TextColumn("{task.fields[job][eta]}", style="progress.remaining"),
            TextColumn("{task.fields[job][state]}", style="bold"),
            console=console,
        )
        self._console = console
        self._live: Live | None = None
        self._job_task: TaskID | None = None
        self._note = ""
        self._last: dict[str, Any] | None = None

    def __enter__(self) -> "Bars":
        self.resume()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.suspend()

    def suspend(self) -> None:
        """Stop drawing (to ask a question, or at the end); the bars stay on screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def resume(self) -> None:
        """Draw the bars again, below whatever was printed meanwhile. (A new ``Live``: a
        restarted one would redraw over the lines where it last was.)"""
        if self._enabled and self._live is None:
            self._live = Live(
                Group(self._transfers, self._jobs),
                console=self._console,
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def transfer(self, description: str, total: int | None = None) -> "Transfer":
        """A new bar of bytes sent or received."""
        if not self._enabled:
            return Transfer(None, None)
        task = self._transfers.add_task(description, total=total)
        self._align()
        return Transfer(self._transfers, task)

    def _align(self) -> None:
        """Pad every bar's description to the longest, so that the bars line up."""
        tasks = [*self._transfers.tasks, *self._jobs.tasks]
        width = max(len(t.description.rstrip()) for t in tasks)
        for progress in (self._transfers, self._jobs):
            for t in progress.tasks:
                progress.update(t.id, description=t.description.rstrip().ljust(width))

    def note(self, text: str) -> None:
        """A word in place of the job's state, such as ``reconnecting…``; '' clears it."""
        self._note = text
        if self._last is not None:
            self.job(self._last)

    def job(self, job: dict[str, Any]) -> None:
        self._last = job
        if not self._enabled:
            return
        fields = _job_fields(job, self._note)
        if self._job_task is None:
            self._job_task = self._jobs.add_task(_describe(job), total=100, job=fields)
            self._align()
        self._jobs.update(self._job_task, completed=job["progress"]["percent"], job=fields)


class Transfer:
    """One bar of bytes (drawn only when its ``Bars`` are)."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def total(self, total: int | None) -> None:
        """The size, for a transfer that learns it once it starts."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def done(self, done: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)


def _describe(job: dict[str, Any]) -> str:
    params = job["params"]
    target = params.get("dataset") or params.get("filename") or ""
    return f"{job['kind']} {target}".strip()


def _job_fields(job: dict[str, Any], note: str) -> dict[str, str]:
    progress = job["progress"]
    unit = progress.get("unit") or "records"
    done, total = progress["done"], progress.get("total")
    count = f"{done:,}/{total:,} {unit}" if total is not None else f"{done:,} {unit}"
    rate = progress.get("rate_per_s")
    eta = progress.get("eta_s")
    running = job["state"] == "running"
    return {
        "count": count,
        "rate": f"{rate:,.0f} {unit}/s" if rate and running else "",
        "eta": f"ETA {_clock(eta)}" if eta is not None and running else "",
        "state": note or ("" if running else job["state"]),
    }


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
