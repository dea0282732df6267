"""Process logging: one JSON (or plain text) line per record, and the per-request access log.

``configure_logging`` runs in the app's lifespan, after uvicorn has set up its own loggers, so
every entry point (``textserve serve``, ``--workers``, ``uvicorn --factory``) logs alike:
uvicorn's records go through the same handler and its access log gives way to ours, which
knows the route template, the model and the stage timings.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]

ACCESS_LOGGER = "textserve.access"
_HANDLER_NAME = "textserve"
# Standard `LogRecord` attributes; anything else in `record.__dict__` came in through `extra`.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_extra(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _extra(record).items() if v is not None)
        return f"{text} {fields}" if fields else text


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now: test runners swap it between tests."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Route every logger (ours and uvicorn's) to one stderr handler; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our access log replaces uvicorn's: one line per request, not two.
    logging.getLogger("uvicorn.access").disabled = True


def log_access(fields: dict[str, Any]) -> None:
    """Write one access-log line; ``fields`` become top-level keys of the JSON object."""
    access_log.info(
        "%s %s %s %.1f ms",
        fields.get("method"),
        fields.get("path"),
        fields.get("status"),
        fields.get("duration_ms", 0.0),
        extra=fields,
    )


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    # Private attributes are other libraries' bookkeeping (Ray stamps `_ray_timestamp_ns`).
    return {
        k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")
    }


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
