"""What the API promises about requests before any model runs: strict types, the key before
the body, bounded integers, and ``Allow`` on a 405 that agrees with the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.finetune import job_settings

INFER = "infer-key-0123456789"
ADMIN = "admin-key-0123456789"
KEYS = f"app:infer:{INFER};ops:admin:{ADMIN}"
NOT_UTF8 = b'{"task": "sentiment", "text": "caf\xe9"}'

# (path, body, field at fault): a number or boolean sent as a string is refused, not coerced.
LOOSE = [
    ("/classify", {"task": "sentiment", "text": "hi", "top_k": "2"}, "top_k"),
    (
        "/classify",
        {"task": "sentiment", "text": "hi", "return_all_scores": "true"},
        "return_all_scores",
    ),
    ("/classify", {"task": "sentiment", "text": "hi", "timeout_ms": "100"}, "timeout_ms"),
    ("/classify", {"task": "sentiment", "text": "hi", "top_k": True}, "top_k"),
    ("/reply", {"message": "hi", "timeout_ms": "100"}, "timeout_ms"),
    (
        "/v1/chat/completions",
        {"model": "reply", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
        "stream",
    ),
    (
        "/v1/chat/completions",
        {"model": "reply", "messages": [{"role": "user", "content": "hi"}], "n": "1"},
        "n",
    ),
    (
        "/v1/chat/completions",
        {
            "model": "reply",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": 1},
        },
        "stream_options.include_usage",
    ),
    (
        "/v1/fine-tunes",
        {"model": "x", "training_file": "file-1", "hyperparameters": {"epochs": "3"}},
        "hyperparameters.epochs",
    ),
    (
        "/v1/fine-tunes",
        {"model": "x", "training_file": "file-1", "hyperparameters": {"learning_rate": "0.1"}},
        "hyperparameters.learning_rate",
    ),
    (
        "/v1/fine-tunes",
        {"model": "x", "training_file": "file-1", "resources": {"cpus": "2"}},
        "resources.cpus",
    ),
    ("/v1/models/sentiment/promote", {"version": "1"}, "version"),
]


@pytest.mark.parametrize("lean", [True, False])
def test_loosely_typed_fields_are_refused_naming_the_field(
    tiny_store: ModelStore, lean: bool
) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, lean_http=lean, job_worker=False)) as (
            client,
            _,
        ):
            for path, body, field in LOOSE:
                r = await client.post(path, json=body)
                assert r.status_code == 422, (path, body, r.text)
                assert r.json()["error"]["param"] == field, (path, body, r.text)
            # Exact types still pass, an integer where a float is asked for included.
            ok = {"task": "sentiment", "text": "hi", "top_k": 2, "return_all_scores": True}
            assert (await client.post("/classify", json=ok)).status_code == 200
            hp = {"learning_rate": 1, "epochs": 1}
            r = await client.post(
                "/v1/fine-tunes", json={"model": "x", "training_file": "f", "hyperparameters": hp}
            )
            assert (r.status_code, r.json()["error"]["param"]) == (404, "training_file")

    run(main)


@pytest.mark.parametrize("lean", [True, False])
def test_a_body_that_is_not_utf8_is_refused_after_the_key_check(
    tiny_store: ModelStore, lean: bool
) -> None:
    json_type = {"content-type": "application/json"}

    async def main() -> None:
        settings = settings_for(tiny_store, api_keys=KEYS, lean_http=lean, job_worker=False)
        async with running(settings) as (client, _):
            for path, key in (("/classify", INFER), ("/reply", INFER), ("/v1/fine-tunes", ADMIN)):
                # No key: 401, whatever the body; the body is never read.
                r = await client.post(path, content=NOT_UTF8, headers=json_type)
                assert r.status_code == 401, (path, r.text)
                assert r.json()["error"]["type"] == "unauthorized"
                assert r.headers["www-authenticate"].startswith("Bearer")
                r = await client.post(path, content=b"{not json", headers=json_type)
                assert r.status_code == 401, (path, r.text)
                # With its key: a 422 naming the body, a status the schema lists.
                r = await client.post(
                    path, content=NOT_UTF8, headers={**json_type, "X-API-Key": key}
                )
                assert r.status_code == 422, (path, r.text)
                error = r.json()["error"]
                assert (error["type"], error["param"]) == ("invalid_request", "body")
                assert error["message"].startswith("body: invalid JSON")

    run(main)


def test_an_event_cursor_beyond_the_job_store_is_refused(store: ModelStore, tmp_path: Path) -> None:
    huge = "110517458191627293671139834830258176"

    async def main() -> None:
        async with running(job_settings(store, tmp_path / "var", job_worker=False)) as (
            client,
            _,
        ):
            for stream in ("false", "true"):
                r = await client.get(
                    "/v1/fine-tunes/ftjob-x/events", params={"after": huge, "stream": stream}
                )
                # Refused whole, before any event is streamed: a JSON answer, not a broken one.
                assert r.status_code == 422, r.text
                assert r.headers["content-type"] == "application/json"
                assert r.json()["error"]["param"] == "after"
            spec = (await client.get("/openapi.json")).json()
            params = spec["paths"]["/v1/fine-tunes/{job_id}/events"]["get"]["parameters"]
            after = next(p for p in params if p["name"] == "after")
            bounds = next(s for s in after["schema"]["anyOf"] if s.get("type") == "integer")
            assert bounds["maximum"] == 2**31 - 1
            # A page cursor naming no object is a documented 404 on every listing.
            for path in ("/v1/files", "/v1/fine-tunes"):
                assert "404" in spec["paths"][path]["get"]["responses"], path
                r = await client.get(path, params={"after": "nope"})
                assert (r.status_code, r.json()["error"]["param"]) == (404, "after")

    run(main)


def test_a_405_lists_every_method_the_path_serves(tiny_store: ModelStore) -> None:
    cases: list[tuple[str, str, set[str]]] = [
        ("PUT", "/v1/files/file-x", {"GET", "DELETE"}),
        ("OPTIONS", "/v1/files", {"GET", "POST"}),
        ("DELETE", "/v1/fine-tunes", {"GET", "POST"}),
        ("GET", "/classify", {"POST"}),
        ("PATCH", "/v1/models/sentiment", {"GET"}),
    ]

    async def main() -> None:
        async with running(settings_for(tiny_store, job_worker=False)) as (client, _):
            spec = (await client.get("/openapi.json")).json()
            for method, path, expected in cases:
                r = await client.request(method, path)
                assert r.status_code == 405, (method, path)
                allowed = {m.strip() for m in r.headers["allow"].split(",")}
                # HEAD comes with every GET (Starlette answers it); the rest is the schema's.
                assert allowed - {"HEAD"} == expected, (method, path, allowed)
                template = next(p for p in spec["paths"] if _matches(p, path))
                assert {m.upper() for m in spec["paths"][template]} == expected

    run(main)


def _matches(template: str, path: str) -> bool:
    parts, want = template.split("/"), path.split("/")
    return len(parts) == len(want) and all(
        p == w or (p.startswith("{") and p.endswith("}")) for p, w in zip(parts, want, strict=True)
    )
