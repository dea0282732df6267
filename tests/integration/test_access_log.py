"""One structured access-log line per request, through the real app."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.logs import (
    ACCESS_LOGGER,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    json_line,
    log_access,
)
from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == ACCESS_LOGGER]


def test_each_request_logs_one_json_line_with_id_route_model_and_timings(
    tiny_store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            caplog.clear()
            r = await client.post(
                "/classify",
                json={"task": "sentiment", "text": "great"},
                headers={"X-Request-ID": "req-123"},
            )
            assert r.headers["x-request-id"] == "req-123"
            assert (r.headers["x-model"], r.headers["x-model-version"]) == ("sentiment", "1")
            r2 = await client.get("/v1/models/nope")
            assert r2.status_code == 404
            r3 = await client.get("/no/such/path")
            assert r3.status_code == 404

            lines = access_lines(caplog)
            assert len(lines) == 3
            ok, missing, unmatched = lines
            assert ok["request_id"] == "req-123"
            assert (ok["method"], ok["route"], ok["path"], ok["status"]) == (
                "POST", "/classify", "/classify", 200
            )  # fmt: skip
            assert (ok["model"], ok["version"]) == ("sentiment", 1)
            assert ok["level"] == "info"
            assert ok["logger"] == ACCESS_LOGGER
            assert ok["msg"].startswith("POST /classify 200 ")
            for key in ("duration_ms", "total_ms", "queue_ms", "tokenization_ms", "inference_ms"):
                assert isinstance(ok[key], float), key
                assert ok[key] >= 0, key
            # An id is made up when the client sends none, and returned to it.
            assert missing["request_id"] == r2.headers["x-request-id"]
            assert len(str(missing["request_id"])) == 32
            assert (missing["route"], missing["status"]) == ("/v1/models/{name}", 404)
            assert "model" not in missing
            assert "total_ms" not in missing
            assert (unmatched["route"], unmatched["path"]) == ("unmatched", "/no/such/path")

    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        run(main)


def test_text_format_and_configure_is_idempotent() -> None:
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("info", "text")
        configure_logging("warning", "json")
        ours = [h for h in root.handlers if h.get_name() == "textserve"]
        assert len(ours) == 1
        assert isinstance(ours[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("uvicorn.access").disabled
        # So uvicorn does not even build its own line's arguments.
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        record = logging.makeLogRecord(
            {"name": ACCESS_LOGGER, "msg": "GET /healthz 200 0.2 ms", "request_id": "abc"}
        )
        line = TextFormatter().format(record)
        assert line.endswith("textserve.access: GET /healthz 200 0.2 ms request_id=abc")
    finally:
        root.setLevel(level)


def _restore_root(level: int) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "textserve"]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_direct_access_line_is_the_line_logging_writes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "method": "POST",
        "path": "/classify",
        "route": "/classify",
        "status": 200,
        "duration_ms": 3.14159,
        "model": "sentiment",
        "version": 2,
    }
    root = logging.getLogger()
    level = root.level
    access = logging.getLogger(ACCESS_LOGGER)
    # Alone on the root logger, as in the service (pytest hangs its capture handlers there).
    monkeypatch.setattr(root, "handlers", [])
    try:
        configure_logging("info", "json")
        ours = next(h for h in root.handlers if h.get_name() == "textserve")
        capsys.readouterr()

        def no_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            raise AssertionError("the direct path makes no LogRecord")

        with monkeypatch.context() as patch:
            patch.setattr(access, "makeRecord", no_record)
            log_access(fields)
        # The same fields through logging, as any other handler would get them.
        record = access.makeRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, "%s", ("POST /classify 200 3.1 ms",), None,
            extra=fields,
        )  # fmt: skip
        ours.handle(record)
        ours.flush()
        direct, via_logging = (json.loads(line) for line in capsys.readouterr().err.splitlines())
        assert direct.pop("ts") and via_logging.pop("ts")
        assert direct == via_logging
        assert list(direct) == list(via_logging)  # same key order too
        assert direct["msg"] == "POST /classify 200 3.1 ms"
    finally:
        _restore_root(level)


def test_access_lines_reach_other_handlers_through_logging(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("info", "json")
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            log_access({"method": "GET", "path": "/healthz", "status": 200, "duration_ms": 0.2})
        assert [r.getMessage() for r in caplog.records] == ["GET /healthz 200 0.2 ms"]
        assert caplog.records[0].__dict__["path"] == "/healthz"
        # Our handler got it too, once: through logging, not also directly.
        next(h for h in root.handlers if h.get_name() == "textserve").flush()
        assert len(capsys.readouterr().err.splitlines()) == 1
    finally:
        _restore_root(level)


def test_line_times_are_utc_to_the_millisecond_across_seconds() -> None:
    stamps = [1764466800.5, 1764466800.999, 1764466801.25, 1764466800.0]
    got = [json.loads(json_line(t, "INFO", "x", "m", {}))["ts"] for t in stamps]
    assert got == [
        "2025-11-30T01:40:00.500Z",
        "2025-11-30T01:40:00.999Z",
        "2025-11-30T01:40:01.250Z",
        "2025-11-30T01:40:00.000Z",  # an earlier second again: not the cached one
    ]


def test_requests_and_model_moves_name_the_key_that_made_them(
    tiny_store: ModelStore, caplog: pytest.LogCaptureFixture
) -> None:
    publish_tiny_classifier(tiny_store, "sentiment", seed=3, activate=False)  # version 2
    infer, admin = "infer-key-0123456789", "admin-key-0123456789"
    settings = settings_for(tiny_store, api_keys=f"app:infer:{infer};ops:admin:{admin}")

    async def main() -> None:
        async with running(settings) as (client, _):
            caplog.clear()
            body = {"task": "sentiment", "text": "great"}
            r = await client.post("/classify", json=body, headers={"X-API-Key": infer})
            assert r.status_code == 200
            r = await client.post(
                "/v1/models/sentiment/promote", json={"version": 2}, headers={"X-API-Key": admin}
            )
            assert r.status_code == 200, r.text
            assert (await client.post("/classify", json=body)).status_code == 401

    run(main)
    classify, promote, refused = access_lines(caplog)
    assert (classify["key"], promote["key"]) == ("app", "ops")
    assert "key" not in refused  # no valid key, no name
    audit = [r for r in caplog.records if r.name == "app.api.routes.model_admin"]
    assert [r.getMessage() for r in audit] == ["promote: sentiment@2 active (was 1), by key ops"]
