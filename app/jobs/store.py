"""The job store: files, jobs and events in one SQL database (SQLite in WAL mode by default,
PostgreSQL through psycopg 3 when replicas share it).

Every state change is a single ``UPDATE ... WHERE state IN (...)`` so that two replicas
sharing one database never both claim a job, and a cancel never overwrites a finished job.
On PostgreSQL a claim picks its job with ``FOR UPDATE SKIP LOCKED``, so replicas polling at
once take different jobs instead of queueing on one row. A database that cannot be reached
surfaces as ``JobStoreUnavailable`` (503 with ``Retry-After``), never as a raw driver error.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import FileNotFound, JobNotFound, JobStoreUnavailable
from app.jobs.migrate import upgrade
from app.jobs.records import JOB_STATES, EventRecord, FileRecord, JobRecord
from app.jobs.tables import EventRow, FileRow, JobRow

# Longest wait for a PostgreSQL connection before a request is answered 503: a job route
# should fail fast while the database is away, not hold the client for TCP's own timeout.
CONNECT_TIMEOUT_S = 5


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'jobs.db').resolve()}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API requests) run while the dispatcher writes; NORMAL sync is
    # durable across a process crash, which is the failure this store must survive.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class JobStore:
    """Reads and writes files, jobs and events. Thread-safe: one short session per call."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if url.startswith("postgresql"):
            # pre_ping: after PostgreSQL restarts, pooled connections are dead; check each on
            # checkout so the first request after an outage succeeds instead of failing.
            options = {
                "pool_pre_ping": True,
                "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
            }
        self.engine: Engine = create_engine(url, json_serializer=_dumps, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.postgres = self.engine.dialect.name == "postgresql"
        # At start the database must answer (a replica migrates before it serves); an error
        # here stops the process with the driver's message, and its supervisor retries.
        upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with _unavailable_as_domain_error(), self._sessions.begin() as session:
            yield session

    # -- files -----------------------------------------------------------------------------
    def add_file(self, record: FileRecord) -> FileRecord:
        with self._session() as s:
            s.add(FileRow(**record.model_dump()))
        return record

    def get_file(self, file_id: str) -> FileRecord:
        with self._session() as s:
            row = s.get(FileRow, file_id)
            if row is None:
                raise FileNotFound(f"no file with id {file_id!r}")
            return FileRecord.model_validate(row)

    def list_files(self, limit: int, after: str | None = None) -> tuple[list[FileRecord], bool]:
        with self._session() as s:
            query = select(FileRow).order_by(FileRow.created_at.desc(), FileRow.id.desc())
            if after is not None:
                anchor = s.get(FileRow, after)
                if anchor is None:
                    raise FileNotFound(f"no file with id {after!r}", param="after")
                query = query.where(
                    (FileRow.created_at < anchor.created_at)
                    | ((FileRow.created_at == anchor.created_at) & (FileRow.id < anchor.id))
                )
            rows = s.scalars(query.limit(limit + 1)).all()
            return [FileRecord.model_validate(r) for r in rows[:limit]], len(rows) > limit

    def delete_file(self, file_id: str) -> None:
        with self._session() as s:
            row = s.get(FileRow, file_id)
            if row is None:
                raise FileNotFound(f"no file with id {file_id!r}")
            s.delete(row)

    def files_in_use(self, file_id: str) -> list[str]:
        """Ids of unfinished jobs that read ``file_id``."""
        with self._session() as s:
            rows = s.scalars(
                select(JobRow.id).where(
                    (JobRow.training_file == file_id) | (JobRow.validation_file == file_id),
                    JobRow.state.in_(("validating_files", "queued", "running")),
                )
            ).all()
            return list(rows)

    # -- jobs ------------------------------------------------------------------------------
    def add_job(self, record: JobRecord) -> JobRecord:
        with self._session() as s:
            data = record.model_dump(mode="json")
            s.add(JobRow(**data))
        return record

    def get_job(self, job_id: str) -> JobRecord:
        with self._session() as s:
            row = s.scalars(select(JobRow).where(JobRow.id == job_id)).first()
            if row is None:
                raise JobNotFound(f"no fine-tune job with id {job_id!r}")
            return JobRecord.model_validate(row)

    def list_jobs(
        self, limit: int, after: str | None = None, states: Sequence[str] | None = None
    ) -> tuple[list[JobRecord], bool]:
        """Newest first; ``after`` is the id of the last job of the previous page."""
        with self._session() as s:
            query = select(JobRow).order_by(JobRow.seq.desc())
            if after is not None:
                anchor = s.scalars(select(JobRow.seq).where(JobRow.id == after)).first()
                if anchor is None:
                    raise JobNotFound(f"no fine-tune job with id {after!r}", param="after")
                query = query.where(JobRow.seq < anchor)
            if states is not None:
                query = query.where(JobRow.state.in_(list(states)))
            rows = s.scalars(query.limit(limit + 1)).all()
            return [JobRecord.model_validate(r) for r in rows[:limit]], len(rows) > limit

    def jobs_in(self, states: Sequence[str], oldest_first: bool = True) -> list[JobRecord]:
        with self._session() as s:
            order = JobRow.seq.asc() if oldest_first else JobRow.seq.desc()
            rows = s.scalars(select(JobRow).where(JobRow.state.in_(list(states))).order_by(order))
            return [JobRecord.model_validate(r) for r in rows]

    def transition(
        self, job_id: str, from_states: Sequence[str], to_state: str, **fields: Any
    ) -> bool:
        """Move a job to ``to_state`` only if it is in one of ``from_states``; True if it moved."""
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state.in_(list(from_states)))
                .values(state=to_state, **fields)
            )
            return bool(getattr(result, "rowcount", 0))

    def finish(
        self,
        job_id: str,
        to_state: str,
        message: str,
        *,
        level: str,
        fields: dict[str, Any],
    ) -> bool:
        """Move a running job to its final ``to_state`` and write its ``state`` event in one
        transaction: an event stream that sees the job ended has its last event to read."""
        with self._session() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.state == "running")
                .values(state=to_state, **fields)
            )
            if not getattr(result, "rowcount", 0):
                return False
            s.add(
                EventRow(
                    job_id=job_id,
                    created_at=time.time(),
                    level=level,
                    type="state",
                    message=message,
                    data={"state": to_state},
                )
            )
            return True

    def claim_next(self, owner: str, runner: str, now: float) -> JobRecord | None:
        """Move the oldest queued job to ``running`` for ``owner``; None if none is left."""
        if not self.postgres:
            # SQLite has no row locks: its one writer at a time already serialises claims, and
            # the conditional transition makes a lost race a retry, not a double start.
            while True:
                queued = self.jobs_in(("queued",))
                if not queued:
                    return None
                fields = {"started_at": now, "owner": owner, "heartbeat_at": now, "runner": runner}
                if self.transition(queued[0].id, ("queued",), "running", **fields):
                    return self.get_job(queued[0].id)
        with self._session() as s:
            row = s.scalars(
                select(JobRow)
                .where(JobRow.state == "queued")
                .order_by(JobRow.seq.asc())
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            row.state, row.started_at, row.owner = "running", now, owner
            row.heartbeat_at, row.runner = now, runner
            s.flush()
            return JobRecord.model_validate(row)

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        """Which of ``job_ids`` someone asked to cancel (possibly through another replica)."""
        if not job_ids:
            return set()
        with self._session() as s:
            rows = s.scalars(
                select(JobRow.id).where(JobRow.id.in_(list(job_ids)), JobRow.cancel_requested)
            ).all()
            return set(rows)

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self._session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(**fields))

    def heartbeat(self, job_ids: Sequence[str], now: float) -> None:
        if job_ids:
            with self._session() as s:
                s.execute(
                    update(JobRow).where(JobRow.id.in_(list(job_ids))).values(heartbeat_at=now)
                )

    def count_by_state(self) -> dict[str, int]:
        with self._session() as s:
            rows = s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all()
        counts: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        counts.update({state: int(n) for state, n in rows})
        return counts

    # -- events ----------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        type: str,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        with self._session() as s:
            row = EventRow(
                job_id=job_id,
                created_at=time.time(),
                level=level,
                type=type,
                message=message,
                data=data or {},
            )
            s.add(row)
            s.flush()
            return EventRecord.model_validate(row)

    def events(self, job_id: str, after: int | None = None, limit: int = 100) -> list[EventRecord]:
        """Oldest first; ``after`` is the id of the last event already seen."""
        with self._session() as s:
            query = select(EventRow).where(EventRow.job_id == job_id)
            if after is not None:
                query = query.where(EventRow.id > after)
            rows = s.scalars(query.order_by(EventRow.id.asc()).limit(limit)).all()
            return [EventRecord.model_validate(r) for r in rows]


@contextmanager
def _unavailable_as_domain_error() -> Iterator[None]:
    """A database that cannot be reached (refused, dropped, timed out) becomes one domain
    error; constraint violations and programming errors stay what they are."""
    try:
        yield
    except OperationalError as exc:
        raise JobStoreUnavailable("the job database cannot be reached; retry shortly") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise JobStoreUnavailable("the job database connection was lost; retry") from exc
        raise


def _dumps(value: Any) -> str:
    # NaN losses from a diverging run must not make the row unwritable: PostgreSQL's json type
    # rejects NaN and Infinity, and a JSON answer cannot carry them, so they are kept as null.
    return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
