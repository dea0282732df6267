"""Reading reply training rows: uploaded files as they came, and which column is which."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from app.training.errors import InvalidDataset

# Header names recognised for each role, first match wins. "category" is deliberately not an
# intent column: Bitext has both, and its category is the coarser grouping.
UTTERANCE_COLUMNS = ("utterance", "instruction", "text", "message", "question", "query")
INTENT_COLUMNS = ("intent", "label")
RESPONSE_COLUMNS = ("response", "reply", "answer", "template")
CATEGORY_COLUMNS = ("category",)
# What an uploaded file must hold to train a reply model through the job API, which takes
# no separate template file: the bank is built from the response column.
REQUIRED_COLUMNS = {
    "utterance": UTTERANCE_COLUMNS,
    "intent": INTENT_COLUMNS,
    "response": RESPONSE_COLUMNS,
}


def missing_roles(columns: Iterable[str]) -> list[str]:
    """The roles of ``REQUIRED_COLUMNS`` that no column of ``columns`` fills, in order."""
    present = {c.strip().lower() for c in columns}
    return [role for role, names in REQUIRED_COLUMNS.items() if present.isdisjoint(names)]


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a ``.csv`` (with a header; quoted multi-line fields are fine), ``.jsonl`` or
    ``.json`` (a list of objects) file, as string-valued dicts."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                return [dict(r) for r in csv.DictReader(fh)]
        if suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            return [_object(json.loads(line), f"{path}:{n}") for n, line in _numbered(lines)]
        if suffix == ".json":
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, list):
                raise InvalidDataset(f"{path}: expected a JSON list of rows")
            return [_object(r, f"{path}[{n}]") for n, r in enumerate(document)]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
    raise InvalidDataset(f"unsupported data file {path.name} (use .csv, .jsonl or .json)")


def find_column(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str | None:
    if not rows:
        return None
    by_lower = {str(k).strip().lower(): str(k) for k in rows[0]}
    return next((by_lower[n] for n in names if n in by_lower), None)


def cell_text(row: Mapping[str, Any], column: str | None) -> str:
    value = row.get(column) if column is not None else None
    if value is None or isinstance(value, bool):
        return ""
    return str(value).strip()


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDataset(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidDataset(f"{path}: expected a JSON object")
    return document


def _object(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidDataset(f"{where}: expected a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _numbered(lines: list[str]) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


def rows_from_upload(data: bytes, filename: str | None = None) -> list[dict[str, str]]:
    """Rows (all columns) of an uploaded file, read the way uploads are parsed: sniffed
    format, RFC 4180 CSV (multi-line quoted responses), TSV or JSON lines, with a header."""
    from app.training.datasets import _decode, _read_jsonl, _read_table, detect_format

    text = _decode(data)
    fmt = detect_format(text, filename)
    if fmt == "jsonl":
        header, records = _read_jsonl(text)
    else:
        has_header, header, records = _read_table(text, fmt, (None, None))
        if not has_header:
            raise InvalidDataset("a reply data set needs a header naming its columns")
    return [dict(zip(header, row, strict=False)) for _, row in records]
