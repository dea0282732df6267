"""Knowledge-base metadata in SQL (SQLite by default, any SQLAlchemy URL such as PostgreSQL).

The documents' full texts are kept here, not only their chunks in the vector store: a
re-index with a new embedding version re-chunks and re-embeds from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class KnowledgeBaseRow(Base):
    __tablename__ = "knowledge_bases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # The API key id that made it (None on a server without keys); admins see every one.
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[int] = mapped_column(Integer)
    # The vector collection holding its chunks; a re-index fills a new one, then swaps.
    collection: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)


class DocumentRow(Base):
    __tablename__ = "knowledge_documents"

    kb_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # `metadata` is reserved by SQLAlchemy's declarative classes.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class KnowledgeBase:
    """A knowledge base as callers see it."""

    id: str
    name: str
    owner: str | None
    model: str
    model_version: str
    dimension: int
    collection: str
    created_at: float
    updated_at: float
    documents: int = 0
    chunks: int = 0

    @classmethod
    def of(cls, row: KnowledgeBaseRow, documents: int = 0, chunks: int = 0) -> KnowledgeBase:
        return cls(
            row.id, row.name, row.owner, row.model, row.model_version, row.dimension,
            row.collection, row.created_at, row.updated_at, documents, chunks,
        )  # fmt: skip


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'knowledge.db').resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class KnowledgeDatabase:
    """The engine and short transactions over the two tables; thread-safe."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
