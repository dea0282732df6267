"""Fine-tune jobs: uploads, the jobs database, workers.

One section of ``app.config.Settings``, which composes the sections; fields read
``TEXTSERVE_<FIELD>`` there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings


class JobSettings(BaseSettings):
    """Fine-tune jobs: uploads, the jobs database, workers."""

    # -- fine-tune jobs ----------------------------------------------------------------------
    data_dir: Path = Field(
        Path("var"),
        description="Uploaded data sets, the SQLite jobs database (WAL) and job work folders.",
    )
    jobs_db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the jobs database, e.g. PostgreSQL shared by replicas "
        "(default: SQLite in TEXTSERVE_DATA_DIR).",
    )
    max_upload_bytes: int = Field(
        200_000_000, ge=1024, description="Largest data set upload (413 above)."
    )
    max_concurrent_jobs: int = Field(
        1, ge=1, description="Fine-tunes this replica runs at once; more queue."
    )
    job_worker: bool = Field(True, description="Run queued fine-tunes on this replica.")
    job_poll_s: float = Field(2.0, gt=0, description="How often the job dispatcher looks.")
    job_stale_after_s: float = Field(
        120.0, gt=0, description="A running job whose owner sent no heartbeat for this long failed."
    )
    cancel_grace_s: float = Field(3.0, ge=0, description="SIGTERM to SIGKILL grace on cancel.")
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("TEXTSERVE_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
        description="Run fine-tunes on this Ray cluster (also read from RAY_ADDRESS); a job "
        'asks for its share with `resources: {"cpus": …, "gpus": …}`.',
    )
    watch_interval_s: float = Field(
        2.0,
        ge=0,
        description="How often each replica re-reads the active pointers, to hot-swap (0: never).",
    )
