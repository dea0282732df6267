"""``textserve replay``: send recorded texts through /classify (topic and sentiment) in order.

The input is CSV (a ``text`` column, else the first; an optional ``timestamp`` column) or JSON
lines (``{"text": ..., "timestamp": ...}``). Timestamps are ISO 8601 or Unix seconds; texts
are replayed at their recorded pace divided by ``speed``, or at ``rate`` texts per second
when a rate is given (or the file has no timestamps), one request per text. A 429 or 503 is
retried after the Retry-After the server sends; other failures are counted.

Standard library HTTP only: the command is for demos and tests, not for load (see bench/).
"""

from __future__ import annotations

import csv
import http.client
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

RETRIES = 5


class ReplayError(ValueError):
    """The input file cannot be replayed; the message says where."""


@dataclass(frozen=True)
class Row:
    text: str
    at: float | None  # seconds (Unix time), when the file records one


@dataclass
class Outcome:
    sent: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # (topic, sentiment) of each answered text
    opinions: Counter[tuple[str, str]] = field(default_factory=Counter)


def parse_time(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ReplayError(f"{where}: timestamp {value!r} is neither ISO 8601 nor Unix seconds")


def read_rows(path: Path) -> list[Row]:
    """The texts of a CSV or JSON-lines file, in file order."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = handle.read(1)
            handle.seek(0)
            rows = list(_jsonl(handle, path) if first == "{" else _csv(handle, path))
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path}: not UTF-8 text ({exc})") from exc
    if not rows:
        raise ReplayError(f"{path}: no texts")
    return rows


def _jsonl(lines: Iterator[str], path: Path) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"{where}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ReplayError(f"{where}: expected an object with a string 'text'")
        yield Row(obj["text"], parse_time(obj.get("timestamp"), where))


def _csv(lines: Iterator[str], path: Path) -> Iterator[Row]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip().lower() for h in header]
    text_at = names.index("text") if "text" in names else 0
    time_at = names.index("timestamp") if "timestamp" in names else None
    for number, record in enumerate(reader, 2):
        if not record:
            continue
        where = f"{path.name}:{number}"
        if len(record) <= text_at:
            raise ReplayError(f"{where}: no text column")
        stamp = record[time_at] if time_at is not None and time_at < len(record) else None
        yield Row(record[text_at], parse_time(stamp, where))


def schedule(rows: list[Row], rate: float | None, speed: float) -> list[float]:
    """Seconds after the start at which each row is sent."""
    if rate is not None:
        return [i / rate for i in range(len(rows))]
    if any(r.at is None for r in rows):
        return [0.0] * len(rows)  # no pace recorded: one after the other
    first = rows[0].at or 0.0
    # In file order: a row stamped before its predecessor goes right after it.
    offsets, latest = [], 0.0
    for row in rows:
        latest = max(latest, ((row.at or first) - first) / speed)
        offsets.append(latest)
    return offsets


class Client:
    """One keep-alive connection to the server's /classify."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ReplayError(f"--url {url!r}: expected http://host:port")
        secure = parts.scheme == "https"
        conn = http.client.HTTPSConnection if secure else http.client.HTTPConnection
        self._conn = conn(parts.hostname, parts.port, timeout=timeout_s)
        self._path = parts.path.rstrip("/") + "/classify"
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    def classify(self, text: str, stream: str) -> tuple[int, dict[str, object], float]:
        """Status, JSON body and Retry-After (seconds) of one two-task request."""
        body = json.dumps({"tasks": ["topic", "sentiment"], "text": text, "stream": stream})
        try:
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()  # reconnects on the next request
            return 0, {}, 1.0
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            payload = {}
        retry_after = float(response.getheader("retry-after") or 1)
        return response.status, payload if isinstance(payload, dict) else {}, retry_after

    def close(self) -> None:
        self._conn.close()


def replay(
    rows: list[Row],
    send: Callable[[str], tuple[int, dict[str, object], float]],
    *,
    rate: float | None = None,
    speed: float = 1.0,
    on_sent: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send every row at its time; returns what came back."""
    outcome = Outcome()
    start = clock()
    for i, (row, offset) in enumerate(zip(rows, schedule(rows, rate, speed), strict=True)):
        wait = start + offset - clock()
        if wait > 0:
            sleep(wait)
        for _ in range(RETRIES):
            status, body, retry_after = send(row.text)
            if status not in (0, 429, 503):
                break
            sleep(retry_after)
        outcome.statuses[status] += 1
        if status == 200:
            outcome.sent += 1
            outcome.opinions[_opinion(body)] += 1
        else:
            outcome.failed += 1
        if on_sent is not None:
            on_sent(i + 1)
    return outcome


def _opinion(body: dict[str, object]) -> tuple[str, str]:
    results = body.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return "?", "?"
    item = results[0]
    return (
        str((item.get("topic") or {}).get("label", "?")),
        str((item.get("sentiment") or {}).get("label", "?")),
    )
