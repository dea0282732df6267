"""The job store's tables. The schema itself is made and changed by the Alembic migrations in
``app/jobs/migrations`` (``app.jobs.migrate``); these classes must agree with their head, which
``tests/unit/jobs/test_migrations.py`` checks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    # The dispatcher's claim reads the oldest queued job: one index walk, not a scan.
    __table_args__ = (Index("ix_jobs_state_seq", "state", "seq"),)

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
