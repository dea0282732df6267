"""The job store: files, jobs and events in one SQL database (SQLite in WAL mode by default).

Every state change is a single ``UPDATE ... WHERE state IN (...)`` so that two replicas
sharing one database never both claim a job, and a cancel never overwrites a finished job.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from app.errors import FileNotFound, JobNotFound
from app.jobs.records import JOB_STATES, EventRecord, FileRecord, JobRecord


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    format: Mapped[str] = mapped_column(String(8))
    has_header: Mapped[bool] = mapped_column(Boolean)
    columns: Mapped[list[str]] = mapped_column(JSON)
    text_column: Mapped[str] = mapped_column(String(255))
    label_column: Mapped[str] = mapped_column(String(255))
    inferred: Mapped[list[str]] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(Integer)
    rows_read: Mapped[int] = mapped_column(Integer)
    label_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class JobRow(Base):
    __tablename__ = "jobs"

    # An integer key orders jobs by creation; the public id is random and opaque.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    model: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(32))
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40), nullable=True)
    base_model: Mapped[str] = mapped_column(String(512))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    promote: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    runner: Mapped[str | None] = mapped_column(String(16), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class EventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


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
        self.engine: Engine = create_engine(url, json_serializer=_dumps)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
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


def _dumps(value: Any) -> str:
    # NaN losses from a diverging run must not make the row unwritable.
    return json.dumps(value, allow_nan=True)
