"""The local store's files: the SQLite schema, segment files (.npy) and their upkeep."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.knowledge.matrix import MatrixIndex
from app.knowledge.vectors import Vector

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS collections (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        model_version TEXT NOT NULL,
        dimension INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS chunks (
        collection TEXT NOT NULL,
        row_id INTEGER NOT NULL,
        document_id TEXT NOT NULL,
        chunk_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        text TEXT NOT NULL,
        metadata TEXT NOT NULL,
        segment TEXT NOT NULL,
        offset INTEGER NOT NULL,
        PRIMARY KEY (collection, row_id)
    )""",
    "CREATE INDEX IF NOT EXISTS chunks_document ON chunks (collection, document_id)",
)


@dataclass(frozen=True)
class Loaded:
    """A collection read back from disk: live rows in row-id order and their vectors."""

    ids: npt.NDArray[np.int64]
    vectors: Vector
    rows: list[tuple[int, str, str, str]]  # row_id, document_id, chunk_id, metadata JSON
    stored: int  # vectors in the segment files, live or dead


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def create_schema(db: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        db.execute(statement)


def write_atomic(path: Path, vectors: Vector) -> None:
    """Write a .npy so that ``path`` is either absent or complete, even across a power cut."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        np.save(file, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (the directory entry, not only the file's bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def texts(db: sqlite3.Connection, collection: str, row_ids: Sequence[int]) -> dict[int, str]:
    """The chunk texts of ``row_ids``: read for the hits only, so texts need no memory."""
    if not row_ids:
        return {}
    marks = ",".join("?" * len(row_ids))
    found = db.execute(
        f"SELECT row_id, text FROM chunks WHERE collection = ? AND row_id IN ({marks})",
        (collection, *row_ids),
    )
    return dict(found.fetchall())


def load(db: sqlite3.Connection, directory: Path, collection: str, dimension: int) -> Loaded:
    """Read a collection's live rows and vectors; delete the files no row points at (left by a
    write that failed or crashed before its commit, or by a compaction after its commit)."""
    records = db.execute(
        "SELECT row_id, document_id, chunk_id, metadata, segment, offset FROM chunks "
        "WHERE collection = ? ORDER BY row_id",
        (collection,),
    ).fetchall()
    vectors = np.zeros((len(records), dimension), dtype=np.float32)
    by_segment: dict[str, list[tuple[int, int]]] = {}
    for position, record in enumerate(records):
        by_segment.setdefault(record[4], []).append((position, record[5]))
    stored = 0
    for path in directory.iterdir():
        if path.name not in by_segment:
            path.unlink()  # an orphan segment or an unfinished temporary file
    for segment, places in by_segment.items():
        matrix = np.load(directory / segment, mmap_mode="r", allow_pickle=False)
        stored += matrix.shape[0]
        positions = np.array([p for p, _ in places])
        offsets = np.array([o for _, o in places])
        vectors[positions] = matrix[offsets]
    return Loaded(
        ids=np.array([r[0] for r in records], dtype=np.int64),
        vectors=vectors,
        rows=[(r[0], r[1], r[2], r[3]) for r in records],
        stored=stored,
    )


def compact(db: sqlite3.Connection, directory: Path, collection: str, index: MatrixIndex) -> None:
    """Rewrite the live vectors (the index's matrix) into one new segment, point every row at
    it in one transaction, then delete the old segments."""
    segment = f"seg-{uuid.uuid4().hex}.npy"
    write_atomic(directory / segment, index.matrix)
    updates = [
        (segment, offset, collection, row_id) for offset, row_id in enumerate(index.ids.tolist())
    ]
    try:
        with transaction(db):
            db.executemany(
                "UPDATE chunks SET segment = ?, offset = ? WHERE collection = ? AND row_id = ?",
                updates,
            )
    except BaseException:
        (directory / segment).unlink(missing_ok=True)
        raise
    for path in directory.iterdir():
        if path.name != segment:
            path.unlink()
