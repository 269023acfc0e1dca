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
* **Takeover** (two servers A and B on one database, *different* node names, so B cannot
  see A's pid and must wait for A's lease to expire), for each ``COLLECT_LEASE_S`` in
  ``--leases``: the import is started through A while B is not running (so A claims it),
  then B is started and becomes healthy, then A is killed with ``SIGKILL`` once the import
  has committed ``--stop-after`` records. The clock runs from the kill until B's new chunk.
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

import argparse
import datetime as dt
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_vs_sqlite import (
    command_line,
    ensure_csv,
    fmt,
    free_port,
    machine,
    parse_ts,
    remove,
    server_command,
    stop,
)

REPO = Path(__file__).resolve().parent.parent
SECTION_TITLE = "## Recovery: restart and takeover times"
SEED = 0
DATASET = "responses"
FAST_POLL_S = 0.01
HEALTH_TIMEOUT_S = 30.0
PROGRESS_TIMEOUT_S = 60.0
SLOW_STOP_S = 5.0
STOP_WAIT_S = 120.0  # a stuck graceful stop is timed, then killed
DEFAULT_LEASE_S = 15.0  # Settings.lease_s
DEFAULT_POLL_S = 0.1  # Settings.poll_interval_s
TERMINAL = {"completed", "failed", "terminated"}
# Ids, pids and hex owner suffixes vary from run to run; mask them to count distinct lines.
_MASKS = [
    (re.compile(r"\b[0-9a-z]{26}\b"), "<job>"),
    (re.compile(r"/\d+/[0-9a-f]{8}\b"), "/<pid>/<nonce>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T][\d:.,]+\b"), "<time>"),
]


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    log_path: Path
    spawned_at: float  # time.time() just before the process was spawned
    closed: bool = False


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

    def scan(self, log_path: Path) -> None:
        """Count every log line: at ``--log-level warning`` a healthy server writes nothing,
        and Collect's own warnings reach stderr without a level name (no logging config)."""
        for line in log_path.read_text(errors="replace").splitlines():
            if line.strip():
                for pattern, mask in _MASKS:
                    line = pattern.sub(mask, line)
                self.lines[line.strip()] += 1


# --------------------------------------------------------------------------- helpers


def epoch(value: str | None) -> float | None:
    ts = parse_ts(value)
    return ts.timestamp() if ts else None


def spawn(data_dir: Path, log_path: Path, env_extra: dict[str, str], name: str) -> Node:
    env = {
        **os.environ,
        "COLLECT_DATA_DIR": str(data_dir),
        "COLLECT_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'collect.db'}",
        **env_extra,
    }
    port = free_port()
    with open(log_path, "ab") as log:
        spawned_at = time.time()
        proc = subprocess.Popen(
            server_command(port),
            cwd=data_dir.parent,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    return Node(name=name, proc=proc, client=client, log_path=log_path, spawned_at=spawned_at)


def wait_healthy(node: Node) -> float:
    """Poll ``/healthz`` every 10 ms; when it first answered (``time.time()``)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(
                f"server {node.name} exited with {node.proc.returncode}:\n"
                f"{node.log_path.read_text()}"
            )
        try:
            if node.client.get("/healthz").status_code == 200:
                return time.time()
        except httpx.TransportError:
            pass
        time.sleep(FAST_POLL_S)
    raise RuntimeError(f"server {node.name} not healthy after {HEALTH_TIMEOUT_S} s")


def close(node: Node, problems: Problems) -> None:
    """Stop the server if it still runs (``SIGTERM``, ``SIGKILL`` after a minute), note a
    slow or failed stop, and scan its log."""
    if node.closed:
        return
    node.closed = True
    node.client.close()
    running = node.proc.poll() is None
    t0 = time.monotonic()
    stop(node.proc)
    took = time.monotonic() - t0
    if running and (took > SLOW_STOP_S or node.proc.returncode not in (0, -signal.SIGTERM)):
        problems.lines[
            f"server {node.name} took {took:.0f} s to stop after SIGTERM (exit status "
            f"{node.proc.returncode})"
        ] += 1
    problems.scan(node.log_path)


def get_job(node: Node, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = node.client.get(f"/jobs/{job_id}").raise_for_status().json()
    return job


def start_import(node: Node, csv_path: Path) -> str:
    with open(csv_path, "rb") as f:
        response = node.client.post(
            "/imports",
            files={"file": (csv_path.name, f, "text/csv")},
            data={"dataset": DATASET},
            timeout=None,
        )
    if response.status_code != 202:
        raise RuntimeError(f"POST /imports: {response.status_code} {response.text}")
    return str(response.json()["id"])


def wait_done(node: Node, job_id: str, above: int, *, timeout_s: float) -> float:
    """Poll every 10 ms until ``progress.done > above``; when that was seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(node, job_id)
        if int(job["progress"].get("done") or 0) > above:
            return time.time()
        if job["state"] in TERMINAL:
            raise RuntimeError(f"job {job_id} ended {job['state']} at {job['progress']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} made no progress past {above} in {timeout_s} s")
        if node.proc.poll() is not None:
            raise RuntimeError(f"server {node.name} exited with {node.proc.returncode}")
        time.sleep(FAST_POLL_S)


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


def transition_at(node: Node, job_id: str, src: str, dst: str, after: float) -> float | None:
    """When (server clock, epoch seconds) the job first moved ``src -> dst`` after ``after``."""
    items = node.client.get(f"/jobs/{job_id}/history").raise_for_status().json()["items"]
    for item in items:
        at = epoch(item["at"])
        if item["from_state"] == src and item["to_state"] == dst and at and at >= after:
            return at
    return None


def minus(a: float | None, b: float) -> float | None:
    return None if a is None else a - b


# --------------------------------------------------------------------------- the trials


def restart_trial(
    csv_path: Path, run_dir: Path, how: str, stop_after: int, problems: Problems
) -> RestartRun:
    remove(run_dir)
    data_dir = (run_dir / "data").resolve()
    data_dir.mkdir(parents=True)
    env = {"COLLECT_NODE_NAME": "bench-node"}
    old = spawn(data_dir, run_dir / "server-1.log", env, "old")
    try:
        wait_healthy(old)
        job_id = start_import(old, csv_path)
        wait_done(old, job_id, stop_after - 1, timeout_s=PROGRESS_TIMEOUT_S)
        t_signal = time.monotonic()
        old.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        try:
            old.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            old.proc.kill()
            old.proc.wait()
        stop_s = time.monotonic() - t_signal
        old.closed = True  # stopped here, not by close(): scan its log only
        old.client.close()
        problems.scan(old.log_path)
    finally:
        close(old, problems)
    done, state, _lease = committed(data_dir / "collect.db", job_id)
    if stop_s > SLOW_STOP_S:
        problems.lines[
            f"server old took {stop_s:.0f} s to exit after {how} (exit status "
            f"{old.proc.returncode}); the job was left {state}"
        ] += 1
    new = spawn(data_dir, run_dir / "server-2.log", env, "new")
    try:
        t_health = wait_healthy(new)
        t_progress = wait_done(new, job_id, done, timeout_s=PROGRESS_TIMEOUT_S)
        t_claim = transition_at(new, job_id, "queued", "running", new.spawned_at)
    finally:
        close(new, problems)
    return RestartRun(
        how=how,
        stop_s=stop_s,
        done_at_stop=done,
        state_at_stop=state,
        health_s=t_health - new.spawned_at,
        claim_s=minus(t_claim, new.spawned_at),
        progress_s=t_progress - new.spawned_at,
        from_health_s=t_progress - t_health,
    )


def takeover_trial(
    csv_path: Path, run_dir: Path, lease_s: float, stop_after: int, problems: Problems
) -> TakeoverRun:
    remove(run_dir)
    data_dir = (run_dir / "data").resolve()
    data_dir.mkdir(parents=True)
    lease = {"COLLECT_LEASE_S": f"{lease_s:g}"}
    a = spawn(data_dir, run_dir / "server-a.log", {**lease, "COLLECT_NODE_NAME": "node-a"}, "A")
    b: Node | None = None
    try:
        wait_healthy(a)
        job_id = start_import(a, csv_path)
        wait_done(a, job_id, 0, timeout_s=PROGRESS_TIMEOUT_S)  # A has claimed it
        b = spawn(data_dir, run_dir / "server-b.log", {**lease, "COLLECT_NODE_NAME": "node-b"}, "B")
        wait_healthy(b)
        wait_done(a, job_id, stop_after - 1, timeout_s=PROGRESS_TIMEOUT_S)
        if get_job(a, job_id)["state"] != "running":
            raise RuntimeError(
                f"job {job_id} is not running before the kill (the import finished before B "
                "was up?); use a bigger --rows or a smaller --stop-after"
            )
        t_kill = time.time()
        a.proc.kill()
        a.proc.wait()
        close(a, problems)
        done, state, lease_expires_at = committed(data_dir / "collect.db", job_id)
        if state != "running":
            raise RuntimeError(f"job {job_id} is {state} after A was killed; expected running")
        t_progress = wait_done(b, job_id, done, timeout_s=lease_s * 3 + PROGRESS_TIMEOUT_S)
        t_requeue = transition_at(b, job_id, "running", "queued", t_kill)
        t_claim = transition_at(b, job_id, "queued", "running", t_kill)
    finally:
        close(a, problems)
        if b is not None:
            close(b, problems)
    return TakeoverRun(
        lease_s=lease_s,
        done_at_kill=done,
        lease_left_s=minus(lease_expires_at, t_kill),
        requeue_s=minus(t_requeue, t_kill),
        claim_s=minus(t_claim, t_kill),
        progress_s=t_progress - t_kill,
    )


# --------------------------------------------------------------------------- reporting


def med(values: list[float | None]) -> str:
    """Median with the min-max range, e.g. ``1.23 (1.20-1.31)``."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    if len(got) == 1:
        return fmt(got[0])
    return f"{statistics.median(got):.2f} ({min(got):.2f}–{max(got):.2f})"


def restart_table(runs: list[RestartRun]) -> list[str]:
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
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for how in ("SIGTERM", "SIGKILL"):
        rs = [r for r in runs if r.how == how]
        if not rs:
            continue
        cells = [
            "`SIGTERM` (graceful)" if how == "SIGTERM" else "`SIGKILL` (kill -9)",
            str(len(rs)),
            med([r.stop_s for r in rs]),
            "/".join(sorted({r.state_at_stop for r in rs})),
            med([r.health_s for r in rs]),
            med([r.claim_s for r in rs]),
            med([r.progress_s for r in rs]),
            med([r.from_health_s for r in rs]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def takeover_table(runs: list[TakeoverRun], poll_s: float) -> list[str]:
    head = [
        "`COLLECT_LEASE_S`",
        "runs",
        "lease left at kill (s)",
        "kill → re-queued by B (s)",
        "kill → claimed by B (s)",
        "kill → new chunk (s)",
        "bound for re-queue: lease + poll (s)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lease in sorted({r.lease_s for r in runs}):
        rs = [r for r in runs if r.lease_s == lease]
        cells = [
            f"{lease:g}",
            str(len(rs)),
            med([r.lease_left_s for r in rs]),
            med([r.requeue_s for r in rs]),
            med([r.claim_s for r in rs]),
            med([r.progress_s for r in rs]),
            f"≤ {lease + poll_s:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (or append it), keeping the others.

    The section has ``###`` sub-headings; like ``import_vs_sqlite.py``, it ends at the next
    ``#`` or ``##`` heading outside a code fence."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION_TITLE), None)
    if start is None:
        body = text.rstrip("\n") + "\n\n" + section
    else:
        end, fenced = len(lines), False
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,2} ", lines[i]):
                end = i
                break
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:]).strip("\n")
        body = (before + "\n\n" if before else "") + section + ("\n" + after if after else "")
    path.write_text(body.rstrip("\n") + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (default 1e6)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each trial (default 3)")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=100_000,
        help="stop or kill the server once this many records are committed (default 1e5)",
    )
    parser.add_argument(
        "--leases",
        type=float,
        nargs="+",
        default=[2.0, 5.0, 10.0],
        help="COLLECT_LEASE_S values for the takeover (default 2 5 10)",
    )
    parser.add_argument(
        "--skip", choices=["restart", "takeover"], default=None, help="leave one part out"
    )
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "bench" / "out", help="default bench/out"
    )
    parser.add_argument("--keep", action="store_true", help="keep per-trial data dirs and logs")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1 or not 0 < args.stop_after < args.rows:
        parser.error("need --rows >= 1, --repeat >= 1 and 0 < --stop-after < --rows")
    for var in ("COLLECT_CHUNK_ROWS", "COLLECT_POLL_INTERVAL_S", "COLLECT_LEASE_S"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} from the environment", flush=True)
    poll_s = float(os.environ.get("COLLECT_POLL_INTERVAL_S", DEFAULT_POLL_S))
    restart_lease = float(os.environ.get("COLLECT_LEASE_S", DEFAULT_LEASE_S))

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = ensure_csv(workdir, args.rows, SEED)
    size_mb = csv_path.stat().st_size / 1e6
    problems = Problems()
    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    t_start = time.monotonic()

    restarts: list[RestartRun] = []
    if args.skip != "restart":
        for i in range(args.repeat):
            for how in ("SIGTERM", "SIGKILL") if i % 2 == 0 else ("SIGKILL", "SIGTERM"):
                run_dir = workdir / f"recovery-restart-{how.lower()}-{i + 1}"
                r = restart_trial(csv_path, run_dir, how, args.stop_after, problems)
                restarts.append(r)
                print(
                    f"restart after {how:7} #{i + 1}: exit {r.stop_s:.2f} s, done "
                    f"{r.done_at_stop:,} ({r.state_at_stop}); spawn -> healthz "
                    f"{r.health_s:.2f} s, -> claimed {fmt(r.claim_s)} s, -> new chunk "
                    f"{r.progress_s:.2f} s (healthz -> new chunk {r.from_health_s:.2f} s)",
                    flush=True,
                )
                if not args.keep:
                    remove(run_dir)

    takeovers: list[TakeoverRun] = []
    if args.skip != "takeover":
        for lease in args.leases:
            for i in range(args.repeat):
                run_dir = workdir / f"recovery-takeover-lease{lease:g}-{i + 1}"
                t = takeover_trial(csv_path, run_dir, lease, args.stop_after, problems)
                takeovers.append(t)
                print(
                    f"takeover, lease {lease:g} s #{i + 1}: done {t.done_at_kill:,}; lease "
                    f"left {fmt(t.lease_left_s)} s; kill -> re-queued {fmt(t.requeue_s)} s, "
                    f"-> claimed {fmt(t.claim_s)} s, -> new chunk {t.progress_s:.2f} s",
                    flush=True,
                )
                if not args.keep:
                    remove(run_dir)
    elapsed = time.monotonic() - t_start

    print()
    parts: list[str] = []
    if restarts:
        table = restart_table(restarts)
        print("\n".join(table))
        print()
        parts += [
            "### Restart on the same data (same node name)",
            "",
            f"A fresh server imports the file; once {args.stop_after:,} records are "
            "committed it is stopped with `SIGTERM` (graceful) or killed with `SIGKILL`. "
            "A new server (same `COLLECT_NODE_NAME`, lease "
            f"{restart_lease:g} s) is spawned on the same data dir. *Old server exit*: signal "
            "to process exit. *State at stop*: the job's committed state once the old "
            "process is gone. *Claimed*: the `queued → running` transition in the job's "
            "history (server clock). *New chunk*: `progress.done` of `GET /jobs/{id}` "
            "(polled every 10 ms) first above its committed value at the stop. Median "
            "(min–max).",
            "",
            *table,
            "",
        ]
    if takeovers:
        table = takeover_table(takeovers, poll_s)
        print("\n".join(table))
        print()
        parts += [
            "### Takeover after a dead owner (different node names)",
            "",
            "Servers A (`COLLECT_NODE_NAME=node-a`) and B (`node-b`) share one database. The "
            "import is started through A while B is down (A claims it); then B is started "
            f"and healthy, and A is killed with `SIGKILL` once {args.stop_after:,} records "
            "are committed. B cannot check A's pid, so it waits for A's lease to expire. "
            "*Lease left at kill*: the job's `lease_expires_at` minus the kill time (a "
            "running job renews it at every committed chunk). *Re-queued* / *claimed*: the "
            "`running → queued` and `queued → running` transitions in the history (server "
            "clock). *New chunk*: as above, from the kill. Expected: B re-queues the job "
            f"at most `COLLECT_POLL_INTERVAL_S` ({poll_s:g} s) after the lease left at the "
            "kill runs out, so within lease + poll; the new chunk follows by the first "
            "chunk's own time. "
            "Median (min–max).",
            "",
            *table,
            "",
        ]
    distinct = problems.lines.most_common()
    if distinct:
        print("server log lines and slow stops (masked, with counts):")
        for line, count in distinct:
            print(f"  {count:3} x {line}")
        log_note = (
            "Server log lines and slow stops (ids masked), over all trials: "
            + "; ".join(f"{count} × `{line}`" for line, count in distinct[:8])
            + ("." if len(distinct) <= 8 else f"; and {len(distinct) - 8} more.")
        )
    else:
        print("server logs: empty; every stop was quick")
        log_note = "Server logs: empty (no warnings, errors or tracebacks); every stop was quick."
    print(f"total time {elapsed:.0f} s")

    if not args.no_write:
        info = machine()
        section = "\n".join(
            [
                SECTION_TITLE,
                "",
                f"Date: {dt.date.today().isoformat()}",
                "",
                f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}, "
                f"Python {info['python']} (SQLite library {info['sqlite_python']}). "
                f"1-minute load average at the start: {load_before:.2f}, at the end: "
                f"{os.getloadavg()[0]:.2f}.",
                "",
                "Command (from the repository root):",
                "",
                "```sh",
                command_line(),
                "```",
                "",
                f"Input: every trial imports {args.rows:,} rows of `make_csv.py` output (seed "
                f"{SEED}, nasty), {size_mb:.1f} MB, into a fresh data dir, with default chunk "
                f"rows ({os.environ.get('COLLECT_CHUNK_ROWS', '5000')}) and poll interval "
                f"({poll_s:g} s). {args.repeat} runs of each case; {elapsed:.0f} s in all.",
                "",
                *parts,
                log_note,
                "",
            ]
        )
        target = REPO / "BENCHMARKS.md"
        write_section(target, section)
        print(f"updated {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
