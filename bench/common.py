"""Shared by the benchmark scripts: data loading, statistics, machine facts, JSON output."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent

# Column names recognised when a file has a header and no column is named on the command line.
TEXT_COLUMNS = ("text", "sentence", "content", "utterance", "instruction", "review", "question")
LABEL_COLUMNS = ("label", "labels", "intent", "category", "class", "target")


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None


def report_console(width: int = 160) -> Console:
    """The console the scripts print their tables to; captured output (a file, CI) gets
    ``width`` columns instead of squeezing the tables into 80."""
    console = Console()
    if not console.is_terminal:
        console.width = width
    return console


def add_served_texts_args(p: argparse.ArgumentParser) -> None:
    """The options of the scripts that load a served model with a file of texts."""
    p.add_argument("--data", type=Path, required=True, help=".tsv/.csv/.jsonl/.txt of texts")
    p.add_argument("--text-column", help="column name or 0-based index (default: detected)")
    p.add_argument("--model", default="sentiment")
    p.add_argument("--store", type=Path, default=Path("models"), help="model store root")


def add_labelled_data_args(p: argparse.ArgumentParser, drop_help: str) -> None:
    """The options of the scripts that score a model on a labelled file."""
    p.add_argument("--data", type=Path, required=True, help="labelled .tsv/.csv/.jsonl")
    p.add_argument("--text-column", help="name or 0-based index (default: detected)")
    p.add_argument("--label-column", help="name or 0-based index (default: detected)")
    p.add_argument("--label-map", default="", help="file label -> model label: 0=negative,...")
    p.add_argument("--drop-label", action="append", default=[], help=drop_help)
    p.add_argument("--limit", type=int, help="only the first N examples")


def _pick(header: list[str], wanted: str | None, known: Sequence[str], what: str) -> int | None:
    """Index of the column ``wanted`` (a name or a 0-based index), else of a known name."""
    lowered = [h.strip().lower() for h in header]
    if wanted is not None:
        if wanted.isdigit():
            return int(wanted)
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise SystemExit(f"no {what} column {wanted!r} in header {header}")
    for name in known:
        if name in lowered:
            return lowered.index(name)
    return None


def _longest_column(rows: list[list[str]]) -> int:
    width = max(len(r) for r in rows)
    totals = [sum(len(r[i]) for r in rows if i < len(r)) for i in range(width)]
    return max(range(width), key=totals.__getitem__)


def _from_rows(
    rows: list[list[str]], text_column: str | None, label_column: str | None
) -> list[Example]:
    """Rows of a CSV/TSV file, header or not, into examples.

    A first row is a header when it names a known text or label column (or the one asked for).
    Without a header (or a recognised name), the text is the column with the most characters
    and the label is the first other column.
    """
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return []
    first = [c.strip().lower() for c in rows[0]]
    names = {*TEXT_COLUMNS, *LABEL_COLUMNS}
    asked = {c.lower() for c in (text_column, label_column) if c and not c.isdigit()}
    has_header = bool((names | asked) & set(first))
    header = rows[0] if has_header else []
    body = rows[1:] if has_header else rows
    if not body:
        return []
    text_i = _pick(header, text_column, TEXT_COLUMNS, "text")
    if text_i is None:
        text_i = _longest_column(body)
    label_i = _pick(header, label_column, LABEL_COLUMNS, "label")
    if label_i is None:
        others = [i for i in range(len(body[0])) if i != text_i]
        label_i = others[0] if others else None
    out = []
    for row in body:
        text = row[text_i].strip() if text_i < len(row) else ""
        if not text:
            continue
        label = row[label_i].strip() if label_i is not None and label_i < len(row) else None
        out.append(Example(text, label))
    return out


def load_examples(
    path: Path, text_column: str | None = None, label_column: str | None = None
) -> list[Example]:
    """Read ``.tsv``/``.csv`` (header or not), ``.jsonl`` (``text``/``label``) or ``.txt``."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [Example(s.strip(), None) for s in lines if s.strip()]
    if suffix == ".jsonl":
        text_key, label_key = text_column or "text", label_column or "label"
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                label = record.get(label_key)
                out.append(Example(str(record[text_key]), None if label is None else str(label)))
        return out
    if suffix in (".tsv", ".csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            if suffix == ".tsv":
                # SST-2 is not quoted: a '"' inside a sentence is a plain character.
                reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            else:
                reader = csv.reader(fh)
            return _from_rows(list(reader), text_column, label_column)
    raise SystemExit(f"unsupported data file {path} (use .tsv, .csv, .jsonl or .txt)")


def load_texts(path: Path, text_column: str | None = None) -> list[str]:
    return [e.text for e in load_examples(path, text_column)]


# -- statistics ----------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """Milliseconds: mean and the percentiles a latency report needs."""
    values = sorted(latencies_s)
    if not values:
        return {}
    summary = {f"p{q:g}": percentile(values, q) * 1000 for q in (50, 90, 99, 99.9)}
    summary["mean"] = sum(values) / len(values) * 1000
    summary["max"] = values[-1] * 1000
    return summary


# -- CPU accounting --------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / _TICK, total / _TICK


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy on the machine while this process sleeps: other people's work."""
    busy0, _ = machine_cpu()
    time.sleep(seconds)
    return (machine_cpu()[0] - busy0) / seconds


# -- machine facts and output ---------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    import onnxruntime as ort

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
        "ort_available_providers": ort.get_available_providers(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=str) + "\n")


def round_floats(value: Any, digits: int = 4) -> Any:
    """Round every float in a JSON-like structure (NaN becomes null)."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value


def thread_cpu_s(pid: int, tid: int) -> float:
    """CPU seconds of one thread of ``pid`` (the main thread is ``tid == pid``)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_by_role(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid``'s threads, summed by OS thread name (the service names its
    threads: ts-run, ts-scheduler, ts-ort, ts-tokenize, ...); the main thread is the event
    loop."""
    roles: dict[str, float] = defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        role = "event loop" if task.name == str(pid) else name
        roles[role] += (int(fields[11]) + int(fields[12])) / _TICK
    return dict(roles)


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` and its descendants in MiB: now, and the peak (VmHWM)."""
    now = peak = 0.0
    for member in _family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    now += int(line.split()[1]) / 1024.0
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024.0
    return {"rss_mb": now, "peak_rss_mb": peak}


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (a server may fork workers)."""
    total = 0.0
    for member in _family(pid):
        with contextlib.suppress(OSError):  # it exited meanwhile
            total += process_cpu_s(member)
    return total


def _family(pid: int) -> set[int]:
    """``pid`` and its live descendants."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    family = {pid}
    grew = True
    while grew:
        kids = {p for p, parent in parents.items() if parent in family} - family
        family |= kids
        grew = bool(kids)
    return family
