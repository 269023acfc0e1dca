"""Benchmark: how long a job takes to make progress again after its server stops or dies.

Every trial imports the generated CSV (``make_csv.py``, ``nasty=True``, cached in
``--workdir`` like ``import_vs_sqlite.py``) into a fresh data dir and database, and stops the
server once the import has committed ``--stop-after`` records. "Progress again" means the
first new committed chunk: ``progress.done`` of ``GET /jobs/{id}``, polled every 10 ms,
first exceeds the value it had when the old server stopped (read from the database file
once the old process has exited, so it is the last *committed* value).

* **Restart** (same ``COLLECT_NODE_NAME``, so a dead pid is seen at once, default lease):
  the server is stopped with ``SIGTERM`` (graceful: the job is re-queued at its last
  checkpoint) or killed with ``SIGKILL`` (the job stays ``running`` under a dead pid). A
  new server is then spawned on the same data, and the clock runs from the moment its
  process is spawned -- and, separately, from when ``/healthz`` first answers -- until the
  new chunk. The job's history (``GET /jobs/{id}/history``) gives, on the server's clock,
  when the new server claimed it (``queued -> running``).
* **Takeover** (two servers A and B on one database, *different* node names, so neither
  can see the other's pid and must wait for its lease to expire), for each
  ``COLLECT_LEASE_S`` in ``--leases``: both servers are started and become healthy, the
  import is started through A, and the server that claimed it (the job's ``owner`` in the
  database; A, as a rule) is killed with ``SIGKILL`` once the import has committed
  ``--stop-after`` records. The clock runs from the kill until the other's new chunk.
  (Starting B only once A had claimed the job raced the import itself: here a 1M import
  sometimes ended while B was starting.)
  A running job renews its lease at every committed chunk (and every lease/3), so at the
  kill about a whole lease is left; B looks for expired claims every
  ``COLLECT_POLL_INTERVAL_S`` (default 0.1 s). Expected: about lease + poll interval, plus
  the first chunk's own time.

Each trial runs ``--repeat`` times; tables show medians with the min-max range. Servers run
with ``--log-level warning``, so a healthy one writes nothing: every log line is counted
(ids and pids masked), and so is a server that took over 5 s to stop after ``SIGTERM``
(it is killed after a minute); the distinct lines are printed and summarised. The results
replace the ``## Recovery: restart and takeover times`` section of ``BENCHMARKS.md`` (other
sections are kept) unless ``--no-write`` is given.

Run from the repository root::

    .venv/bin/python bench/recovery_times.py --rows 1000000 --repeat 3
    .venv/bin/python bench/recovery_times.py --rows 300000 --leases 2 5 --repeat 2 --no-write

Per-trial data dirs and logs (in ``--workdir``) are deleted after each trial unless
``--keep`` is given.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as bl

TITLE = "Recovery: restart and takeover times"
FAST_POLL_S = 0.01
PROGRESS_TIMEOUT_S = 60.0
SLOW_STOP_S = 5.0
STOP_WAIT_S = 120.0  # a stuck graceful stop is timed, then killed
DEFAULT_LEASE_S = 15.0  # Settings.lease_s
DEFAULT_POLL_S = 0.1  # Settings.poll_interval_s
# Ids, pids and hex owner suffixes vary from run to run; mask them to count distinct lines.
_MASKS = [
    (re.compile(r"\b[0-9a-z]{26}\b"), "<job>"),
    (re.compile(r"/\d+/[0-9a-f]{8}\b"), "/<pid>/<nonce>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T][\d:.,]+Z?"), "<time>"),
]


@dataclass
class RestartRun:
    how: str  # "SIGTERM" or "SIGKILL"
    stop_s: float  # signal sent -> old process exited
    done_at_stop: int
    state_at_stop: str
    health_s: float  # spawn -> /healthz answers 200
    claim_s: float | None  # spawn -> queued->running in the history (server clock)
    progress_s: float  # spawn -> progress.done first above done_at_stop
    from_health_s: float  # /healthz answered -> progress.done first above done_at_stop


@dataclass
class TakeoverRun:
    lease_s: float
    done_at_kill: int
    lease_left_s: float | None  # lease_expires_at - kill time
    requeue_s: float | None  # kill -> running->queued by B (server clock)
    claim_s: float | None  # kill -> queued->running by B (server clock)
    progress_s: float  # kill -> progress.done first above done_at_kill


@dataclass
class Problems:
    lines: Counter[str] = field(default_factory=Counter)

    def scan(self, server: bl.Server) -> None:
        """Count every log line: at ``--log-level warning`` a healthy server writes nothing."""
        for line in server.log_text().splitlines():
            if line.strip():
                for pattern, mask in _MASKS:
                    line = pattern.sub(mask, line)
                self.lines[line.strip()] += 1


def spawn(data_dir: Path, log_path: Path, env: dict[str, str], name: str) -> bl.Server:
    server = bl.Server(
        data_dir, env=env, log_path=log_path, log_level="warning", name=name, timeout=30.0
    )
    return server.start()


def close(server: bl.Server, problems: Problems) -> None:
    """Stop the server if it still runs (``SIGTERM``, ``SIGKILL`` after a while), note a
    slow or failed stop, and scan its log."""
    if server.client.is_closed:
        return
    running = server.alive()
    server.client.close()
    took = server.stop(timeout=STOP_WAIT_S)
    code = server.proc.returncode if server.proc else None
    if running and (took > SLOW_STOP_S or code not in (0, -signal.SIGTERM)):
        problems.lines[
            f"server {server.name} took {took:.0f} s to stop after SIGTERM (exit status {code})"
        ] += 1
    problems.scan(server)


def wait_done(server: bl.Server, job_id: str, above: int, *, timeout_s: float) -> float:
    """Poll every 10 ms until ``progress.done > above``; when that was seen (``time.time()``)."""
    bl.wait_done(server.client, job_id, above, poll_s=FAST_POLL_S, timeout_s=timeout_s)
    return time.time()


def epoch(value: str | None) -> float | None:
    ts = bl.parse_ts(value)
    return ts.timestamp() if ts else None


def committed(db_path: Path, job_id: str) -> tuple[int, str, float | None]:
    """The job's committed ``progress.done``, state and lease, read from the file (read-only:
    no checkpoint, the WAL is left as the stopped server left it)."""
    with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT json_extract(progress, '$.done'), state, lease_expires_at FROM job "
            "WHERE id = ?",
            (job_id,),
        ).fetchone()
    if row is None:
        raise RuntimeError(f"job {job_id} not in the database")
    return int(row[0] or 0), str(row[1]), row[2]


def job_owner(db_path: Path, job_id: str) -> str:
    """The claim on the job: ``node/pid/nonce`` of the server that runs it."""
    with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT owner FROM job WHERE id = ?", (job_id,)).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"job {job_id} has no owner")
    return str(row[0])


def transition_at(server: bl.Server, job_id: str, src: str, dst: str, after: float) -> float | None:
    """When (server clock, epoch seconds) the job first moved ``src -> dst`` after ``after``."""
    items = server.client.get(f"/jobs/{job_id}/history").raise_for_status().json()["items"]
    for item in items:
        at = epoch(item["at"])
        if item["from_state"] == src and item["to_state"] == dst and at and at >= after:
            return at
    return None


def minus(a: float | None, b: float) -> float | None:
    return None if a is None else a - b


# --------------------------------------------------------------------------- the trials


def restart_trial(
    csv_path: Path,
    run_dir: Path,
    how: str,
    stop_after: int,
    problems: Problems,
    chunks: dict[str, str],
) -> RestartRun:
    bl.remove(run_dir)
    data_dir = (run_dir / "data").resolve()
    env = {**chunks, "COLLECT_NODE_NAME": "bench-node"}
    old = spawn(data_dir, run_dir / "server-1.log", env, "old")
    try:
        old.wait_healthy(poll_s=FAST_POLL_S)
        job, _, _ = bl.upload(old.client, csv_path)
        job_id = job["id"]
        wait_done(old, job_id, stop_after - 1, timeout_s=PROGRESS_TIMEOUT_S)
        sig = signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL
        stop_s = old.stop(sig, timeout=STOP_WAIT_S)
    finally:
        close(old, problems)
    at_stop, state, _lease = committed(data_dir / "collect.db", job_id)
    if stop_s > SLOW_STOP_S:
        problems.lines[
            f"server old took {stop_s:.0f} s to exit after {how}; the job was left {state}"
        ] += 1
    new = spawn(data_dir, run_dir / "server-2.log", env, "new")
    try:
        t_health = new.wait_healthy(poll_s=FAST_POLL_S)
        t_progress = wait_done(new, job_id, at_stop, timeout_s=PROGRESS_TIMEOUT_S)
        t_claim = transition_at(new, job_id, "queued", "running", new.spawned_at)
    finally:
        close(new, problems)
    return RestartRun(
        how=how,
        stop_s=stop_s,
        done_at_stop=at_stop,
        state_at_stop=state,
        health_s=t_health - new.spawned_at,
        claim_s=minus(t_claim, new.spawned_at),
        progress_s=t_progress - new.spawned_at,
        from_health_s=t_progress - t_health,
    )


def takeover_trial(
    csv_path: Path,
    run_dir: Path,
    lease_s: float,
    stop_after: int,
    problems: Problems,
    chunks: dict[str, str],
) -> TakeoverRun:
    bl.remove(run_dir)
    data_dir = (run_dir / "data").resolve()
    lease = {**chunks, **bl.settings_env(lease_s=f"{lease_s:g}")}
    a = spawn(data_dir, run_dir / "server-a.log", {**lease, "COLLECT_NODE_NAME": "node-a"}, "A")
    b: bl.Server | None = None
    try:
        b = spawn(data_dir, run_dir / "server-b.log", {**lease, "COLLECT_NODE_NAME": "node-b"}, "B")
        a.wait_healthy(poll_s=FAST_POLL_S)
        b.wait_healthy(poll_s=FAST_POLL_S)
        job, _, _ = bl.upload(a.client, csv_path)
        job_id = job["id"]
        wait_done(a, job_id, stop_after - 1, timeout_s=PROGRESS_TIMEOUT_S)
        owner = job_owner(data_dir / "collect.db", job_id)
        dying, taking = (b, a) if owner.startswith("node-b/") else (a, b)
        if bl.get_job(a.client, job_id)["state"] != "running":
            raise RuntimeError(
                f"job {job_id} is not running before the kill (the import finished?); use a "
                "bigger --rows or a smaller --stop-after"
            )
        t_kill = time.time()
        dying.stop(signal.SIGKILL)
        close(dying, problems)
        at_kill, state, lease_expires_at = committed(data_dir / "collect.db", job_id)
        if state != "running":
            raise RuntimeError(f"job {job_id} is {state} after its server was killed")
        t_progress = wait_done(taking, job_id, at_kill, timeout_s=lease_s * 3 + PROGRESS_TIMEOUT_S)
        t_requeue = transition_at(taking, job_id, "running", "queued", t_kill)
        t_claim = transition_at(taking, job_id, "queued", "running", t_kill)
    finally:
        close(a, problems)
        if b is not None:
            close(b, problems)
    return TakeoverRun(
        lease_s=lease_s,
        done_at_kill=at_kill,
        lease_left_s=minus(lease_expires_at, t_kill),
        requeue_s=minus(t_requeue, t_kill),
        claim_s=minus(t_claim, t_kill),
        progress_s=t_progress - t_kill,
    )


# --------------------------------------------------------------------------- reporting


def restart_table(runs: list[RestartRun]) -> list[str]:
    rows = []
    for how in ("SIGTERM", "SIGKILL"):
        rs = [r for r in runs if r.how == how]
        if rs:
            rows.append(
                (
                    "`SIGTERM` (graceful)" if how == "SIGTERM" else "`SIGKILL` (kill -9)",
                    len(rs),
                    bl.spread(r.stop_s for r in rs),
                    "/".join(sorted({r.state_at_stop for r in rs})),
                    bl.spread(r.health_s for r in rs),
                    bl.spread(r.claim_s for r in rs),
                    bl.spread(r.progress_s for r in rs),
                    bl.spread(r.from_health_s for r in rs),
                )
            )
    head = [
        "stop",
        "runs",
        "old server exit (s)",
        "state at stop",
        "spawn → /healthz (s)",
        "spawn → claimed (s)",
        "spawn → new chunk (s)",
        "/healthz → new chunk (s)",
    ]
    return bl.table(head, rows)


def takeover_table(runs: list[TakeoverRun], poll_s: float) -> list[str]:
    rows = []
    for lease in sorted({r.lease_s for r in runs}):
        rs = [r for r in runs if r.lease_s == lease]
        rows.append(
            (
                f"{lease:g}",
                len(rs),
                bl.spread(r.lease_left_s for r in rs),
                bl.spread(r.requeue_s for r in rs),
                bl.spread(r.claim_s for r in rs),
                bl.spread(r.progress_s for r in rs),
                f"≤ {lease + poll_s:.2f}",
            )
        )
    head = [
        "`COLLECT_LEASE_S`",
        "runs",
        "lease left at kill (s)",
        "kill → re-queued by B (s)",
        "kill → claimed by B (s)",
        "kill → new chunk (s)",
        "bound for re-queue: lease + poll (s)",
    ]
    return bl.table(head, rows)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = bl.arguments(__doc__, rows=1_000_000)
    parser.add_argument(
        "--stop-after",
        type=int,
        default=100_000,
        help="stop or kill the server once this many records are committed",
    )
    parser.add_argument(
        "--leases",
        type=float,
        nargs="+",
        default=[2.0, 5.0, 10.0],
        help="COLLECT_LEASE_S values for the takeover",
    )
    parser.add_argument(
        "--skip", choices=["restart", "takeover"], default=None, help="leave one part out"
    )
    args = bl.parse(parser, argv)
    if not 0 < args.stop_after < args.rows:
        parser.error("need 0 < --stop-after < --rows")

    csv_path = bl.ensure_csv(args.workdir, args.rows)
    problems = Problems()
    chunks = bl.settings_env(chunk_rows=args.chunk_rows)
    load_before = bl.load()
    t_start = time.monotonic()

    restarts: list[RestartRun] = []
    if args.skip != "restart":
        for i in range(args.repeat):
            for how in ("SIGTERM", "SIGKILL") if i % 2 == 0 else ("SIGKILL", "SIGTERM"):
                run_dir = args.workdir / f"recovery-restart-{how.lower()}-{i + 1}"
                r = restart_trial(csv_path, run_dir, how, args.stop_after, problems, chunks)
                restarts.append(r)
                print(
                    f"restart after {how:7} #{i + 1}: exit {r.stop_s:.2f} s, done "
                    f"{r.done_at_stop:,} ({r.state_at_stop}); spawn -> healthz "
                    f"{r.health_s:.2f} s, -> claimed {bl.fmt(r.claim_s)} s, -> new chunk "
                    f"{r.progress_s:.2f} s (healthz -> new chunk {r.from_health_s:.2f} s)"
                )
                if not args.keep:
                    bl.remove(run_dir)

    takeovers: list[TakeoverRun] = []
    if args.skip != "takeover":
        for lease in args.leases:
            for i in range(args.repeat):
                run_dir = args.workdir / f"recovery-takeover-lease{lease:g}-{i + 1}"
                t = takeover_trial(csv_path, run_dir, lease, args.stop_after, problems, chunks)
                takeovers.append(t)
                print(
                    f"takeover, lease {lease:g} s #{i + 1}: done {t.done_at_kill:,}; lease "
                    f"left {bl.fmt(t.lease_left_s)} s; kill -> re-queued {bl.fmt(t.requeue_s)} "
                    f"s, -> claimed {bl.fmt(t.claim_s)} s, -> new chunk {t.progress_s:.2f} s"
                )
                if not args.keep:
                    bl.remove(run_dir)
    elapsed = time.monotonic() - t_start

    figures: list[bl.Figure] = []
    parts: list[str] = []
    if restarts:
        for how in ("SIGTERM", "SIGKILL"):
            rs = [r.progress_s for r in restarts if r.how == how]
            figures.append(
                bl.Figure(
                    f"restart after `{how}`: spawn → new chunk (median)", f"{bl.median(rs):.2f} s"
                )
            )
        parts += [
            "### Restart on the same data (same node name)",
            "",
            f"A fresh server imports the file; once {args.stop_after:,} records are "
            "committed it is stopped with `SIGTERM` (graceful) or killed with `SIGKILL`. "
            f"A new server (same `COLLECT_NODE_NAME`, lease {DEFAULT_LEASE_S:g} s) is spawned "
            "on the same data dir. *Old server exit*: signal to process exit. *State at "
            "stop*: the job's committed state once the old process is gone. *Claimed*: the "
            "`queued → running` transition in the job's history (server clock). *New chunk*: "
            "`progress.done` of `GET /jobs/{id}` (polled every 10 ms) first above its "
            "committed value at the stop. Median (min–max).",
            "",
            *restart_table(restarts),
            "",
        ]
    if takeovers:
        for lease in sorted({t.lease_s for t in takeovers}):
            ts = [t.progress_s for t in takeovers if t.lease_s == lease]
            figures.append(
                bl.Figure(
                    f"takeover, lease {lease:g} s: kill → new chunk (median)",
                    f"{bl.median(ts):.2f} s",
                    f"≈ lease + poll ({lease + DEFAULT_POLL_S:.2f} s) + a chunk",
                )
            )
        parts += [
            "### Takeover after a dead owner (different node names)",
            "",
            "Servers A (`COLLECT_NODE_NAME=node-a`) and B (`node-b`) share one database. Both "
            "are started and healthy, the import is started through A, and the server that "
            f"claimed it (A, as a rule) is killed with `SIGKILL` once {args.stop_after:,} "
            "records are committed. The other cannot check the dead server's pid, so it "
            "waits for its lease to expire. "
            "*Lease left at kill*: the job's `lease_expires_at` minus the kill time (a "
            "running job renews it at every committed chunk). *Re-queued* / *claimed*: the "
            "`running → queued` and `queued → running` transitions in the history (server "
            "clock). *New chunk*: as above, from the kill. Expected: B re-queues the job "
            f"at most `COLLECT_POLL_INTERVAL_S` ({DEFAULT_POLL_S:g} s) after the lease left "
            "at the kill runs out, so within lease + poll; the new chunk follows by the "
            "first chunk's own time. Median (min–max).",
            "",
            *takeover_table(takeovers, DEFAULT_POLL_S),
            "",
        ]
    distinct = problems.lines.most_common()
    if distinct:
        log_note = (
            "Server log lines and slow stops (ids masked), over all trials: "
            + "; ".join(f"{count} × `{line}`" for line, count in distinct[:8])
            + ("." if len(distinct) <= 8 else f"; and {len(distinct) - 8} more.")
        )
    else:
        log_note = "Server logs: empty (no warnings, errors or tracebacks); every stop was quick."
    text = bl.section(
        TITLE,
        figures=figures,
        load_before=load_before,
        method=(
            f"Input: every trial imports {bl.input_line(args.rows, csv_path)} into a fresh "
            f"data dir, with chunk rows {bl.chunk_rows_text(args.chunk_rows)} and poll interval "
            f"({DEFAULT_POLL_S:g} s); servers run with `--log-level warning`. {args.repeat} "
            f"runs of each case; {elapsed:.0f} s in all."
        ),
        body=[*parts, log_note],
    )
    bl.publish(args, TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
