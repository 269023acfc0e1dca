"""Settings, read from ``COLLECT_*`` environment variables when the app is created."""

import socket
from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECT_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/collect.db"
    data_dir: Path = Path("./data")
    max_running_jobs: int = Field(default=2, ge=1)
    max_upload_bytes: int = Field(default=10 * 1024**3, ge=1)
    # The most records in one chunk; chunks also stop at about a quarter second of work.
    chunk_rows: int = Field(default=20_000, ge=1)
    max_field_bytes: int = Field(default=1024**2, ge=1)
    max_columns: int = Field(default=1000, ge=1)
    # How long a control request (pause, terminate) waits for the job to reach a safe point
    # before answering with the job in its transitional state.
    control_wait_s: float = Field(default=30.0, gt=0)
    # How often each process looks at the job table for work and for changes to stream.
    poll_interval_s: float = Field(default=0.1, gt=0)
    # Minimum spacing of `progress` events on one stream.
    progress_interval_s: float = Field(default=0.25, ge=0)
    # A comment is sent on an event stream that has had nothing to send for this long, so
    # that proxies do not close it as idle.
    sse_ping_s: float = Field(default=15.0, gt=0)
    # A running job's claim is renewed at every chunk; a claim older than this is abandoned.
    lease_s: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # tenant:key pairs, comma-separated; empty: open, one tenant.
    api_keys: str = Field(default="", repr=False)
    # Let `collect serve` bind beyond loopback with no API keys.
    allow_open: bool = False
    # How long a finished export's file is kept: seconds, or ISO 8601 such as P7D.
    result_ttl: timedelta = timedelta(days=7)
    # Disk kept free beside the database (a reserve file), given back when the disk fills up
    # so that a failing job can still record its end and roll its writes back.
    disk_reserve_bytes: int = Field(default=64 * 1024**2, ge=0)
    # Start a data-plane worker with the server, so that the first import or export does not
    # wait for one (about half a second) to start.
    start_worker: bool = True
    # The WAL is copied into the database file whenever no job runs in this process; while
    # jobs run, only once it has grown past this many bytes.
    checkpoint_wal_bytes: int = Field(default=512 * 1024**2, ge=0)
    # How often finished jobs' leftover files are looked for.
    housekeeping_interval_s: float = Field(default=60.0, gt=0)
    # This host's name in job claims. Processes that share it (one host) see at once that a
    # peer died by its pid; others wait for its lease to expire. Default: the host name.
    node_name: str = Field(default_factory=socket.gethostname, pattern=r"^[^/]+$")

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"
