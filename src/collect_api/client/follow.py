"""Following a job to its end over Server-Sent Events, and what Ctrl-C does meanwhile.

The stream is read with ``Last-Event-ID``: when it drops (the service restarts, the network
hiccups) the follower connects again and the service replays the state changes it missed,
so the bars go on where they were. A stream the service closes before the job ended means
it is stopping; that is a drop too.

Ctrl-C never loses work. With a person at the terminal it asks what to do: pause the job,
terminate it, detach, or keep following. Without one (a script, CI) the first Ctrl-C
pauses the job and waits until the service says it is ``paused``; a second one stops
waiting at once and leaves the job as the service has it.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.prompt import Prompt

from collect_api.client.api import Api, ApiError, ConnectionProblem, Job
from collect_api.client.display import Bars
from collect_api.client.output import Output

# The API's final states, by their names on the wire (the client imports nothing of the server).
TERMINAL = frozenset({"completed", "failed", "terminated"})
_EVENTS = frozenset({"snapshot", "progress", "state"})
# How long a follower keeps trying to reach a service that went away (a restart takes
# seconds; a deployment may take a minute or two).
RECONNECT_FOR_S = 300.0
_MAX_BACKOFF_S = 2.0
_STEADY_S = 5.0


def ended(job: Job) -> bool:
    return job["state"] in TERMINAL


def stopped(job: Job) -> bool:
    return job["state"] == "paused" or ended(job)


@dataclass(frozen=True)
class Outcome:
    """How following ended: with the job over, or interrupted with the job as it then was."""

    job: Job
    interrupted: bool = False


class Follower:
    """Follows one job's events; ``job`` is the job as the last event showed it."""

    def __init__(self, api: Api, job: Job, bars: Bars) -> None:
        self.api = api
        self.job = job
        self.bars = bars
        self._last_event_id: str | None = None

    def follow(self, *, until: Callable[[Job], bool] = ended) -> Job:
        """Follow the events until ``until(job)`` holds; return the job as it then is."""
        down_since: float | None = None
        backoff = 0.0
        while not until(self.job):
            opened_at: float | None = None
            try:
                with self.api.events(self.job["id"], last_event_id=self._last_event_id) as events:
                    opened_at, down_since = time.monotonic(), None
                    self.bars.note("")
                    for event in events:
                        if event.event not in _EVENTS:
                            continue
                        self._last_event_id = event.id or self._last_event_id
                        self.job = event.json()
                        self.bars.job(self.job)
                        if until(self.job):
                            return self.job
            except ConnectionProblem:
                # The service is restarting, or the network dropped: connect again below.
                pass
            except ApiError as exc:
                # A proxy in front of a restarting service, or a busy database: try again.
                # Anything else (an unknown job, a revoked key) will not get better.
                if exc.status < 500:
                    raise
            now = time.monotonic()
            if opened_at is not None and now - opened_at > _STEADY_S:
                # A stream that served a while dropped: connect again at once. (One closed
                # right after it opened, as by a service shutting down, backs off.)
                backoff = 0.0
            down_since = down_since or now
            if now - down_since > RECONNECT_FOR_S:
                raise ConnectionProblem(
                    f"Lost the connection to {self.api.server} for {RECONNECT_FOR_S:.0f} s. "
                    "The job goes on without this command; follow it again with: "
                    f"collect watch {self.job['id']}"
                )
            self.bars.note("reconnecting…")
            time.sleep(backoff)
            backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF_S)
        return self.job


def follow_to_end(api: Api, job: Job, bars: Bars, output: Output) -> Outcome:
    """Follow the job until it ends, or until a Ctrl-C says to stop following it."""
    follower = Follower(api, job, bars)
    while True:
        try:
            return Outcome(follower.follow())
        except KeyboardInterrupt:
            bars.suspend()
        choice = _ask(output, follower.job) if output.can_ask else "pause"
        if choice == "keep":
            bars.resume()
            continue
        job_id = follower.job["id"]
        if choice == "detach":
            output.note(
                f"Detached: job {job_id} goes on. Follow it again with: collect watch {job_id}"
            )
            return Outcome(follower.job, interrupted=True)
        try:
            if choice == "pause":
                return _pause(follower, output)
            return _terminate(follower, output)
        except KeyboardInterrupt:
            output.note(
                f"Stopped waiting; job {job_id} is as the service has it: collect show {job_id}"
            )
            raise


_CHOICES = {"p": "pause", "t": "terminate", "d": "detach", "k": "keep"}


def _ask(output: Output, job: Job) -> str:
    output.err.print(
        f"\nJob {job['id']} is still {job['state']}. What now?\n"
        "  [bold]p[/]  pause it (resume it later with collect resume)\n"
        "  [bold]t[/]  terminate it (its writes are rolled back)\n"
        "  [bold]d[/]  detach (it goes on; follow it again with collect watch)\n"
        "  [bold]k[/]  keep following",
        highlight=False,
    )
    try:
        answer = Prompt.ask("Choice", console=output.err, choices=list(_CHOICES), default="k")
    except EOFError:
        # No answer will come: stop following and leave the job be.
        return "detach"
    return _CHOICES[answer]


def _pause(follower: Follower, output: Output) -> Outcome:
    api, job_id = follower.api, follower.job["id"]
    output.note(f"Pausing job {job_id} at its next safe point…")
    try:
        follower.job = api.control(job_id, "pause")
    except ApiError as exc:
        if exc.status != 409:
            raise
        # It ended before the pause could reach it.
        return Outcome(api.job(job_id))
    job = follower.follow(until=stopped)
    if ended(job):
        return Outcome(job)
    progress = job["progress"]
    output.note(
        f"Paused job {job['id']} at {progress['done']:,} {progress['unit']} "
        f"({progress['percent']:.1f}%). Resume it with: collect resume {job['id']}"
    )
    return Outcome(job, interrupted=True)


def _terminate(follower: Follower, output: Output) -> Outcome:
    api, job_id = follower.api, follower.job["id"]
    output.note(f"Terminating job {job_id}…")
    try:
        follower.job = api.control(job_id, "terminate")
    except ApiError as exc:
        if exc.status != 409:
            raise
        return Outcome(api.job(job_id))
    job = follower.follow()
    if job["state"] == "terminated":
        output.note(f"Terminated job {job['id']}; its writes were rolled back.")
        return Outcome(job, interrupted=True)
    return Outcome(job)
