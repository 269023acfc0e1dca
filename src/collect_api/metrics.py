"""The service's metrics, for ``GET /metrics`` in Prometheus' text format.

One ``Metrics`` per app, with its own registry, so that apps in one process (tests) do not
share figures. Counters and histograms are kept by the code that does the work: the job
contexts count what their chunks commit and time each chunk, the control routes time each
request until the job's answer. Gauges that describe the present (jobs by kind and state,
run slots in use, SSE followers) are read when the metrics are scraped.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "collect_records_processed",
            "Records the jobs of this process have committed (read, for exports: written)",
            ["kind"],
            registry=r,
        )
        self.bytes = Counter(
            "collect_bytes_processed",
            "Bytes of their files that the jobs of this process have committed",
            ["kind"],
            registry=r,
        )
        self.chunk_seconds = Histogram(
            "collect_chunk_duration_seconds",
            "Time of each committed chunk, from its start to its commit",
            ["kind"],
            buckets=SECONDS,
            registry=r,
        )
        self.control_seconds = Histogram(
            "collect_control_latency_seconds",
            "Time from a pause, resume or terminate request to its answer: the job at its "
            "safe point",
            ["action"],
            buckets=SECONDS,
            registry=r,
        )
        self.jobs = Gauge(
            "collect_jobs", "Jobs in the database, by kind and state", ["kind", "state"], registry=r
        )
        self.followers = Gauge(
            "collect_sse_followers", "Event streams open on this process", registry=r
        )
        self.slots_in_use = Gauge(
            "collect_run_slots_in_use", "Jobs this process runs now", registry=r
        )
        self.slots = Gauge(
            "collect_run_slots", "Jobs that may run at once, across all processes", registry=r
        )

    def count(self, kind: str, *, records: int, bytes_: int) -> None:
        """Add what a chunk committed."""
        if records > 0:
            self.records.labels(kind).inc(records)
        if bytes_ > 0:
            self.bytes.labels(kind).inc(bytes_)

    def render(self) -> bytes:
        return generate_latest(self.registry)
