"""Uploaded data sets: CSV, TSV and JSON lines as people really write them.

A file is read once, at upload: its format is sniffed, a header is recognised or not, the
text and label columns are taken from the caller or inferred (by name, else by content),
and every row becomes an ``Example``. Rows that cannot be used are dropped and reported;
a file that cannot be read as a table at all is refused with the line where it broke.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from app.training.data import Example
from app.training.errors import InvalidDataset

Format = Literal["csv", "tsv", "jsonl"]

# Column names that say "this is the text" / "this is the label", best first. ``intent``
# beats ``category`` because files that hold both (Bitext) use the category as a coarse group.
TEXT_NAMES = (
    "text", "sentence", "content", "review", "utterance", "instruction", "query", "question",
    "comment", "message", "body", "description", "document", "input", "prompt", "sentence1",
)  # fmt: skip
LABEL_NAMES = (
    "label", "labels", "intent", "category", "class", "target", "sentiment", "topic",
    "y", "tag", "gold_label", "output",
)  # fmt: skip
KNOWN_NAMES = frozenset(TEXT_NAMES + LABEL_NAMES + ("title", "id", "idx", "response"))
MIN_ROWS_PER_LABEL = 5
MAX_LINES_LISTED = 10
# csv's own default (128 KiB) refuses long documents; one field may be a whole article.
csv.field_size_limit(16 * 1024 * 1024)


class MalformedDataset(InvalidDataset):
    """A file that cannot be read as a table; ``line`` is where reading broke (1-based)."""

    def __init__(self, message: str, line: int | None = None, param: str = "file") -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.param = param
        self.detail = {"line": line} if line is not None else None


@dataclass
class Problem:
    """Something found in a data set that the caller should know about."""

    kind: str
    message: str
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "count": self.count,
            "lines": self.lines,
        }


@dataclass
class ParsedDataset:
    """What an upload turned out to be, and its usable rows."""

    format: Format
    has_header: bool
    columns: list[str]
    text_column: str
    label_column: str
    inferred: list[str]  # which of "text_column" / "label_column" were inferred
    examples: list[Example]
    rows_read: int
    problems: list[Problem]

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.label for e in self.examples).items()))


def parse_dataset(
    data: bytes,
    *,
    filename: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> ParsedDataset:
    """Read ``data`` as a labelled data set; raise ``MalformedDataset`` if it is not one."""
    text = _decode(data)
    fmt = detect_format(text, filename)
    if fmt == "jsonl":
        header, records = _read_jsonl(text)
        has_header = True
    else:
        has_header, header, records = _read_table(text, fmt, (text_column, label_column))
    if not records:
        raise MalformedDataset("the file holds no data rows")
    text_col, label_col, inferred = _choose_columns(
        header, records, text_column, label_column, by_name=has_header
    )
    ti, li = header.index(text_col), header.index(label_col)
    examples: list[Example] = []
    empty_text: list[int] = []
    empty_label: list[int] = []
    for lineno, row in records:
        t, lab = _cell(row, ti), _cell(row, li)
        if not t.strip():
            empty_text.append(lineno)
        elif not lab.strip():
            empty_label.append(lineno)
        else:
            examples.append(Example(text=t, label=lab.strip()))
    if not examples:
        raise MalformedDataset(
            f"no usable rows: every row has an empty {text_col!r} or {label_col!r}"
        )
    problems = _problems(examples, empty_text, empty_label)
    return ParsedDataset(
        format=fmt,
        has_header=has_header,
        columns=header,
        text_column=text_col,
        label_column=label_col,
        inferred=inferred,
        examples=examples,
        rows_read=len(records),
        problems=problems,
    )


def detect_format(text: str, filename: str | None) -> Format:
    """By extension when it says, else by the first line: ``{`` JSON, a tab TSV, else CSV."""
    suffix = (filename or "").lower().rsplit(".", 1)[-1] if filename and "." in filename else ""
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix == "tsv":
        return "tsv"
    if suffix == "csv":
        return "csv"
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MalformedDataset("the file is not UTF-8 text", line) from exc


Record = tuple[int, list[str]]  # (line where the row starts, its cells)


def _read_table(
    text: str, fmt: Format, named: tuple[str | None, str | None]
) -> tuple[bool, list[str], list[Record]]:
    # TSV files (GLUE and most research sets) do not quote: a quote is just a character.
    # CSV follows RFC 4180, so quoted fields may hold commas and line breaks (Bitext).
    if fmt == "tsv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Record] = []
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedDataset(f"not valid {fmt.upper()}: {exc}", start) from exc
    if not rows:
        raise MalformedDataset("the file is empty")
    width = len(rows[0][1])
    if width < 2:
        raise MalformedDataset(
            f"found one column; a data set needs a text and a label column "
            f"(is this a {'CSV' if fmt == 'tsv' else 'TSV'} file?)",
            rows[0][0],
        )
    for lineno, row in rows:
        if len(row) != width:
            raise MalformedDataset(f"expected {width} fields, found {len(row)}", lineno)
    first = [c.strip() for c in rows[0][1]]
    if _is_header(first, named):
        header = _unique_names(first)
        return True, header, rows[1:]
    return False, [f"column_{i + 1}" for i in range(width)], rows


def _is_header(first: list[str], named: tuple[str | None, str | None]) -> bool:
    """A first row is a header when it names a column the caller asked for, or a known one."""
    lowered = {c.lower() for c in first}
    if any(n is not None and n.lower() in lowered for n in named):
        return True
    return any(c in KNOWN_NAMES for c in lowered) and not any(_is_number(c) for c in first)


def _is_number(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\d+(\.\d+)?", cell))


def _unique_names(cells: list[str]) -> list[str]:
    names: list[str] = []
    for i, cell in enumerate(cells):
        name = cell or f"column_{i + 1}"
        names.append(name if name not in names else f"{name}_{i + 1}")
    return names


def _read_jsonl(text: str) -> tuple[list[str], list[Record]]:
    keys: list[str] = []
    objects: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedDataset(f"not valid JSON: {exc.msg}", lineno) from exc
        if not isinstance(obj, dict):
            raise MalformedDataset("expected a JSON object on each line", lineno)
        for key in obj:
            if key not in keys:
                keys.append(key)
        objects.append((lineno, obj))
    if not objects:
        raise MalformedDataset("the file is empty")
    records: list[Record] = []
    for lineno, obj in objects:
        row: list[str] = []
        for key in keys:
            value = obj.get(key)
            if isinstance(value, list | dict):
                raise MalformedDataset(f"field {key!r} holds a {type(value).__name__}", lineno)
            row.append(
                ""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
        records.append((lineno, row))
    return keys, records


def _resolve(header: list[str], wanted: str, param: str) -> str:
    """A column by name (case-insensitive) or by 1-based position."""
    for name in header:
        if name == wanted or name.lower() == wanted.lower():
            return name
    if wanted.isdigit() and 1 <= int(wanted) <= len(header):
        return header[int(wanted) - 1]
    raise MalformedDataset(f"no column {wanted!r}; columns: {header}", param=param)


def _choose_columns(
    header: list[str],
    records: list[Record],
    text_column: str | None,
    label_column: str | None,
    *,
    by_name: bool,
) -> tuple[str, str, list[str]]:
    inferred: list[str] = []
    text = _resolve(header, text_column, "text_column") if text_column else None
    label = _resolve(header, label_column, "label_column") if label_column else None
    if by_name:
        lowered = {h.lower(): h for h in header}
        if text is None:
            text = next(
                (lowered[n] for n in TEXT_NAMES if n in lowered and lowered[n] != label), None
            )
        if label is None:
            label = next(
                (lowered[n] for n in LABEL_NAMES if n in lowered and lowered[n] != text), None
            )
    stats = _column_stats(header, records)
    if label is None:
        # The label column repeats few short values; the text column is long and varied.
        candidates = [h for h in header if h != text and stats[h][1] <= 64]
        if not candidates:
            raise MalformedDataset(
                "cannot tell which column holds the label: name it with label_column",
                param="label_column",
            )
        label = min(candidates, key=lambda h: (stats[h][0], stats[h][1]))
        inferred.append("label_column")
    elif label_column is None:
        inferred.append("label_column")
    if text is None:
        candidates = [h for h in header if h != label]
        text = max(candidates, key=lambda h: stats[h][1])
        inferred.append("text_column")
    elif text_column is None:
        inferred.append("text_column")
    if text == label:
        raise MalformedDataset(f"text and label are the same column {text!r}", param="label_column")
    return text, label, sorted(inferred, reverse=True)


def _column_stats(header: list[str], records: list[Record]) -> dict[str, tuple[float, float]]:
    """Per column: (distinct values / rows, mean length), over the first rows."""
    sample = records[:2000]
    out: dict[str, tuple[float, float]] = {}
    for i, name in enumerate(header):
        values = [_cell(row, i) for _, row in sample]
        distinct = len(set(values)) / max(1, len(values))
        out[name] = (distinct, sum(len(v) for v in values) / max(1, len(values)))
    return out


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _problems(
    examples: list[Example], empty_text: list[int], empty_label: list[int]
) -> list[Problem]:
    problems: list[Problem] = []
    if empty_text:
        problems.append(
            Problem("empty_text", f"{len(empty_text)} rows with an empty text were dropped",
                    len(empty_text), empty_text[:MAX_LINES_LISTED])
        )  # fmt: skip
    if empty_label:
        problems.append(
            Problem("empty_label", f"{len(empty_label)} rows with an empty label were dropped",
                    len(empty_label), empty_label[:MAX_LINES_LISTED])
        )  # fmt: skip
    counts = Counter(e.label for e in examples)
    rare = sorted(label for label, n in counts.items() if n < MIN_ROWS_PER_LABEL)
    if rare:
        problems.append(
            Problem("few_rows_for_label",
                    f"labels with fewer than {MIN_ROWS_PER_LABEL} rows learn and evaluate "
                    f"poorly: {rare[:20]}", len(rare))
        )  # fmt: skip
    if len(counts) < 2:
        problems.append(
            Problem(
                "single_label",
                f"only one label ({next(iter(counts))!r}); a classifier needs two",
                1,
            )
        )
    duplicates = len(examples) - len(set(examples))
    if duplicates:
        problems.append(
            Problem("duplicate_rows", f"{duplicates} rows repeat an earlier row", duplicates)
        )
    return problems
