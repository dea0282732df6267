"""Uploaded data sets: parsed once at upload, kept as ``{"text", "label"}`` JSON lines."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from app.errors import Conflict
from app.jobs.records import FileRecord
from app.jobs.store import JobStore, new_id
from app.training.data import Example, read_jsonl
from app.training.datasets import parse_dataset


class FileStore:
    """Stores the rows of each upload under ``<data_dir>/files/`` and its record in the DB."""

    def __init__(self, data_dir: Path, db: JobStore) -> None:
        self.folder = data_dir / "files"
        self._db = db

    def path(self, file_id: str) -> Path:
        return self.folder / f"{file_id}.jsonl"

    def original_path(self, file_id: str) -> Path:
        """The upload as it came, for trainers that need more than text and label (reply)."""
        return self.folder / f"{file_id}.original"

    def add(
        self,
        data: bytes,
        *,
        filename: str,
        purpose: str = "fine-tune",
        text_column: str | None = None,
        label_column: str | None = None,
    ) -> FileRecord:
        """Parse ``data`` (raises ``InvalidDataset`` with a line number) and store its rows."""
        parsed = parse_dataset(
            data, filename=filename, text_column=text_column, label_column=label_column
        )
        file_id = new_id("file")
        self.folder.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed, so a crash never leaves half a file
        # that a record points at.
        tmp = self.folder / f".{file_id}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for e in parsed.examples:
                fh.write(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path(file_id))
        self.original_path(file_id).write_bytes(data)
        record = FileRecord(
            id=file_id,
            filename=filename,
            purpose=purpose,
            bytes=len(data),
            created_at=time.time(),
            format=parsed.format,
            has_header=parsed.has_header,
            columns=parsed.columns,
            text_column=parsed.text_column,
            label_column=parsed.label_column,
            inferred=parsed.inferred,
            rows=len(parsed.examples),
            rows_read=parsed.rows_read,
            label_counts=parsed.label_counts,
            problems=[p.as_dict() for p in parsed.problems],
        )
        try:
            return self._db.add_file(record)
        except BaseException:
            self.path(file_id).unlink(missing_ok=True)
            self.original_path(file_id).unlink(missing_ok=True)
            raise

    def get(self, file_id: str) -> FileRecord:
        return self._db.get_file(file_id)

    def page(self, limit: int, after: str | None = None) -> tuple[list[FileRecord], bool]:
        return self._db.list_files(limit, after)

    def delete(self, file_id: str) -> FileRecord:
        """Remove a file; refused while an unfinished job reads it."""
        record = self._db.get_file(file_id)
        users = self._db.files_in_use(file_id)
        if users:
            raise Conflict(f"file {file_id} is used by unfinished jobs: {', '.join(users)}")
        self._db.delete_file(file_id)
        self.path(file_id).unlink(missing_ok=True)
        self.original_path(file_id).unlink(missing_ok=True)
        return record

    def examples(self, file_id: str) -> list[Example]:
        self._db.get_file(file_id)  # FileNotFound for an unknown id
        return read_jsonl(self.path(file_id))
