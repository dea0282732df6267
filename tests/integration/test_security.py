"""API keys, scopes and per-key rate limits through the real app."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from app.config import Settings
from app.main import create_app
from app.security import KeysError
from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for

INFER = "infer-key-0123456789"
ADMIN = "admin-key-0123456789"
OPS = "metrics-key-012345678"
KEYS = f"app:infer:{INFER};ops:admin:{ADMIN};prom:metrics:{OPS}"


def keyed(store: ModelStore, **overrides: object) -> Settings:
    return settings_for(store, api_keys=KEYS, **overrides)


def test_routes_need_a_key_with_their_scope(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(keyed(tiny_store, metrics_require_key=True)) as (client, _):
            body = {"text": "great", "task": "sentiment"}
            r = await client.post("/classify", json=body)
            assert r.status_code == 401
            assert r.json()["error"]["type"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
            wrong = await client.post("/classify", json=body, headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            # Both ways of presenting a key work.
            bearer = {"Authorization": f"Bearer {INFER}"}
            assert (await client.post("/classify", json=body, headers=bearer)).status_code == 200
            header = {"X-API-Key": INFER}
            assert (await client.post("/classify", json=body, headers=header)).status_code == 200
            # An admin key cannot infer, an infer key cannot administer.
            admin = {"X-API-Key": ADMIN}
            r = await client.post("/classify", json=body, headers=admin)
            assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
            assert (await client.get("/v1/files", headers=header)).status_code == 403
            assert (await client.get("/v1/files", headers=admin)).status_code == 200
            assert (await client.get("/v1/fine-tunes", headers=admin)).status_code == 200
            # OpenAI's fine-tuning paths are the same admin operations.
            assert (await client.get("/v1/fine_tuning/jobs", headers=admin)).status_code == 200
            assert (await client.get("/v1/fine_tuning/jobs", headers=header)).status_code == 403
            assert (await client.get("/v1/fine_tuning/jobs")).status_code == 401
            r = await client.post("/v1/models/sentiment/rollback", headers=header)
            assert r.status_code == 403
            # The model list is readable by either.
            assert (await client.get("/v1/models", headers=header)).status_code == 200
            assert (await client.get("/v1/models", headers=admin)).status_code == 200
            assert (await client.get("/v1/models")).status_code == 401
            # Probes stay open; /metrics is keyed when told so.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", headers=header)).status_code == 403
            assert (await client.get("/metrics", headers={"X-API-Key": OPS})).status_code == 200

    run(main)


def test_metrics_stay_open_by_default(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(keyed(tiny_store)) as (client, _):
            assert (await client.get("/metrics")).status_code == 200

    run(main)


def test_rate_limit_answers_429_with_headers_per_key(tiny_store: ModelStore) -> None:
    two_keys = f"a:infer:{INFER};b:infer:{ADMIN}"
    settings = settings_for(
        tiny_store,
        api_keys=two_keys,
        # Slow refill so that the test's own pace cannot refill the bucket.
        rate_limit_requests={"infer": 0.5},
        rate_limit_texts={"infer": 2.0},
        rate_limit_burst_s=6.0,
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            a, b = {"X-API-Key": INFER}, {"X-API-Key": ADMIN}
            # The texts bucket holds 12 texts: 8 pass, 5 more do not.
            many = {"texts": ["fine"] * 8, "task": "sentiment"}
            assert (await client.post("/classify", json=many, headers=a)).status_code == 200
            five = {"texts": ["fine"] * 5, "task": "sentiment"}
            r = await client.post("/classify", json=five, headers=a)
            assert r.status_code == 429
            assert r.json()["error"]["type"] == "rate_limited"
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["x-ratelimit-limit"] == "12"
            assert r.headers["x-ratelimit-remaining"] == "4"
            assert int(r.headers["x-ratelimit-reset"]) >= 1
            # The request bucket holds 3 requests; the refused one took none: 2 more pass.
            one = {"text": "fine", "task": "sentiment"}
            for _ in range(2):
                assert (await client.post("/classify", json=one, headers=a)).status_code == 200
            r = await client.post("/classify", json=one, headers=a)
            assert r.status_code == 429 and r.headers["x-ratelimit-limit"] == "3"
            # Another key has its own buckets.
            assert (await client.post("/classify", json=one, headers=b)).status_code == 200

    run(main)


def test_rate_limit_headers_are_on_every_charged_answer(tiny_store: ModelStore) -> None:
    settings = settings_for(
        tiny_store,
        api_keys=KEYS,
        # A 5-request bucket refilling slowly enough that the test cannot refill it.
        rate_limit_requests={"infer": 0.5},
        rate_limit_texts={"infer": 100.0},
        rate_limit_burst_s=10.0,
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            key = {"X-API-Key": INFER}
            one = {"text": "fine", "task": "sentiment"}
            remaining = []
            for _ in range(2):
                r = await client.post("/classify", json=one, headers=key)
                assert r.status_code == 200
                # The request bucket describes a granted request: 5 at once at most.
                assert r.headers["x-ratelimit-limit"] == "5"
                assert int(r.headers["x-ratelimit-reset"]) >= 1
                # Retry-After is for refusals only.
                assert "retry-after" not in r.headers
                remaining.append(int(r.headers["x-ratelimit-remaining"]))
            # A charged request that fails validation still reports the budget it used.
            bad = await client.post("/classify", json={"task": "sentiment"}, headers=key)
            assert bad.status_code == 422
            remaining.append(int(bad.headers["x-ratelimit-remaining"]))
            # Other routes of the scope carry them too.
            models = await client.get("/v1/models", headers=key)
            assert models.status_code == 200
            remaining.append(int(models.headers["x-ratelimit-remaining"]))
            last = await client.post("/classify", json=one, headers=key)
            remaining.append(int(last.headers["x-ratelimit-remaining"]))
            assert remaining == [4, 3, 2, 1, 0]
            refused = await client.post("/classify", json=one, headers=key)
            assert refused.status_code == 429
            assert refused.headers["x-ratelimit-limit"] == "5"
            assert refused.headers["x-ratelimit-remaining"] == "0"
            assert int(refused.headers["x-ratelimit-reset"]) >= 1
            assert int(refused.headers["retry-after"]) >= 1
            # Each header once: the refusal's own, not a second copy from the middleware.
            assert len(refused.headers.get_list("x-ratelimit-limit")) == 1
            # Uncharged answers carry none: probes, and requests without a valid key.
            assert "x-ratelimit-limit" not in (await client.get("/healthz")).headers
            assert "x-ratelimit-limit" not in (await client.post("/classify", json=one)).headers

    run(main)


def test_a_granted_answer_reports_the_texts_bucket_too(tiny_store: ModelStore) -> None:
    settings = settings_for(
        tiny_store,
        api_keys=KEYS,
        # 5 requests and 50 texts, refilling too slowly for the test to see it.
        rate_limit_requests={"infer": 0.005},
        rate_limit_texts={"infer": 0.05},
        rate_limit_burst_s=1000.0,
    )

    async def main() -> None:
        async with running(settings) as (client, _):
            key = {"X-API-Key": INFER}
            body = {"texts": ["fine"] * 8, "task": "sentiment"}
            r = await client.post("/classify", json=body, headers=key)
            assert r.status_code == 200
            # The unsuffixed headers keep describing the request bucket...
            assert (r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]) == (
                "5",
                "4",
            )
            # ... and each bucket reports itself: the request's 8 texts are gone from 50.
            assert r.headers["x-ratelimit-limit-requests"] == "5"
            assert r.headers["x-ratelimit-remaining-requests"] == "4"
            assert r.headers["x-ratelimit-limit-texts"] == "50"
            assert r.headers["x-ratelimit-remaining-texts"] == "42"
            # 8 texts at 0.05 a second: full again in 160 s.
            assert 159 <= int(r.headers["x-ratelimit-reset-texts"]) <= 160
            # Through FastAPI's router too (the lean path answered the first): /reply-less
            # routes of the scope charge one text.
            models = await client.get("/v1/models", headers=key)
            assert models.headers["x-ratelimit-remaining-texts"] == "41"
            # A refusal by the texts bucket names it in both forms.
            many = {"texts": ["fine"] * 45, "task": "sentiment"}
            refused = await client.post("/classify", json=many, headers=key)
            assert refused.status_code == 429
            assert refused.headers["x-ratelimit-limit"] == "50"
            assert refused.headers["x-ratelimit-remaining-texts"] == "41"
            assert refused.headers["x-ratelimit-remaining-requests"] == "3"

    run(main)


def test_no_rate_limit_headers_without_limits(tiny_store: ModelStore) -> None:
    async def main() -> None:
        body = {"text": "fine", "task": "sentiment"}
        # Open mode: no key, nothing to limit.
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post("/classify", json=body)
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        # A keyed scope without limits.
        unlimited = keyed(tiny_store, rate_limit_requests={}, rate_limit_texts={})
        async with running(unlimited) as (client, _):
            r = await client.post("/classify", json=body, headers={"X-API-Key": INFER})
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers

    run(main)


def test_open_mode_warns_loudly(tiny_store: ModelStore, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with caplog.at_level(logging.WARNING, logger="app.security.guard"):
            async with running(settings_for(tiny_store)) as (client, _):
                body = {"text": "great", "task": "sentiment"}
                assert (await client.post("/classify", json=body)).status_code == 200

    run(main)
    assert any("NO API KEYS CONFIGURED" in r.getMessage() for r in caplog.records)


def test_require_api_keys_refuses_to_start_without_keys(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(KeysError, match="require_api_keys"):
        create_app(settings_for(store, require_api_keys=True))
    create_app(settings_for(store, require_api_keys=True, api_keys=KEYS))


def test_keys_file_is_read(tiny_store: ModelStore, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"app:infer:{INFER}\n")

    async def main() -> None:
        async with running(settings_for(tiny_store, api_keys_file=keys_file)) as (client, _):
            body = {"text": "great", "task": "sentiment"}
            assert (await client.post("/classify", json=body)).status_code == 401
            r = await client.post("/classify", json=body, headers={"X-API-Key": INFER})
            assert r.status_code == 200

    run(main)


def test_openapi_declares_both_schemes_on_protected_routes(tiny_store: ModelStore) -> None:
    spec = create_app(keyed(tiny_store)).openapi()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/classify"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_requests_beyond_the_inflight_cap_get_503_and_probes_still_answer(
    tiny_store: ModelStore,
) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, max_inflight_requests=1)) as (client, app):
            gate = gate_engine(app, "sentiment")
            gate.gate.clear()
            body = {"text": "great", "task": "sentiment"}
            first = asyncio.create_task(client.post("/classify", json=body))
            # Wait until the first request holds the only slot.
            while app.state.services.metrics.http_inflight._value.get() < 1:
                await asyncio.sleep(0.01)
            refused = await client.post("/classify", json=body)
            assert refused.status_code == 503
            assert refused.json()["error"]["type"] == "overloaded"
            assert refused.headers["retry-after"] == "1"
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            gate.gate.set()
            assert (await first).status_code == 200
            assert (await client.post("/classify", json=body)).status_code == 200

    run(main)


def test_the_api_description_is_served_unless_turned_off(tiny_store: ModelStore) -> None:
    async def main() -> None:
        for docs, status in ((True, 200), (False, 404)):
            async with running(keyed(tiny_store, docs=docs)) as (client, _):
                for path in ("/docs", "/redoc", "/openapi.json"):
                    assert (await client.get(path)).status_code == status, (docs, path)

    run(main)
