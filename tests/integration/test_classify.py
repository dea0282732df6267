"""POST /classify through the real app and real ONNX Runtime sessions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import numpy as np
import pytest

from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier


def test_single_text_for_both_tasks(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post("/classify", json={"task": "sentiment", "text": "I love it"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["model"], body["version"], body["label"]) == ("sentiment", 1, "positive")
            assert body["truncated"] is False
            assert 0.0 < body["score"] <= 1.0
            assert body["results"] == [
                {"label": "positive", "score": body["score"], "truncated": False}
            ]
            for header in ("x-total-time", "x-queue-time", "x-inference-time"):
                assert float(r.headers[header]) >= 0.0
            assert r.headers["x-request-id"]
            r = await client.post(
                "/classify", json={"task": "topic", "text": "my parcel never arrived"}
            )
            assert r.json()["label"] == "delivery"

    run(main)


def test_texts_keep_their_order_with_scores(tiny_store: ModelStore) -> None:
    texts = ["awful and broken", "what is the size", "great thanks", "terrible"]

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post(
                "/classify",
                json={"model": "sentiment", "texts": texts, "return_all_scores": True},
            )
            body = r.json()
            assert [x["label"] for x in body["results"]] == [
                "negative", "neutral", "positive", "negative",
            ]  # fmt: skip
            assert "label" not in body or body["label"] is None
            for item in body["results"]:
                assert set(item["scores"]) == {"negative", "neutral", "positive"}
                assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-6)
                assert item["score"] == max(item["scores"].values())
            r = await client.post(
                "/classify", json={"model": "sentiment", "text": "great", "top_k": 2}
            )
            scores = r.json()["results"][0]["scores"]
            assert next(iter(scores)) == "positive"
            assert len(scores) == 2

    run(main)


def test_long_text_is_truncated_and_says_so(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            long_text = " ".join(["great"] * 100)
            r = await client.post("/classify", json={"task": "sentiment", "text": long_text})
            assert r.status_code == 200
            assert r.json()["truncated"] is True
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.json()["truncated"] is False

    run(main)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"task": "sentiment", "text": "   "}, "text"),
        ({"task": "sentiment", "texts": ["ok", ""]}, "texts.1"),
        ({"task": "sentiment", "texts": []}, "texts"),
        ({"task": "sentiment", "text": "\u0000"}, "text"),
        ({"task": "sentiment", "text": "\u200b\u200b\ufeff"}, "text"),
        ({"task": "sentiment", "texts": ["ok", " \u200b "]}, "texts.1"),
        ({"model": "", "text": "a"}, "model"),
        ({"task": "sentiment", "text": 42}, "text"),
        ({"task": "sentiment", "texts": "not a list"}, "texts"),
        ({"task": "weather", "text": "hi"}, "task"),
        ({"text": "hi"}, "body"),
        ({"task": "sentiment", "text": "a", "texts": ["b"]}, "body"),
        ({"task": "sentiment", "text": "hi", "colour": "red"}, "colour"),
        ({"task": "sentiment", "texts": ["hi"] * 9}, "texts"),
        ({"task": "sentiment", "text": "x" * 300}, "text"),
        ({"task": "sentiment", "text": "hi", "top_k": 0}, "top_k"),
        ({"task": "sentiment", "text": "hi", "timeout_ms": 10**9}, "timeout_ms"),
        ({"model": "../../etc", "text": "hi"}, "model"),
        ({"model": "sentiment@latest", "text": "hi"}, "model"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    tiny_store: ModelStore, payload: dict[str, object], param: str
) -> None:
    settings = settings_for(tiny_store, max_texts_per_request=8, max_text_chars=200)

    async def main() -> None:
        async with running(settings) as (client, _):
            r = await client.post("/classify", json=payload)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["param"] == param
            assert param in error["message"] or param == "body"

    run(main)


def test_blank_text_and_an_empty_model_name_are_reported_as_sent(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            for text in ("  ", "\u0000", "\u200b\u200b\ufeff"):
                r = await client.post("/classify", json={"task": "sentiment", "text": text})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["message"] == "text: text is empty"
            # Visible text after an invisible character is text.
            r = await client.post("/classify", json={"task": "sentiment", "text": "\ufeffok"})
            assert r.status_code == 200, r.text
            r = await client.post("/classify", json={"model": "", "text": "a"})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["message"].startswith("invalid model name '':")

    run(main)


def test_malformed_json_is_422(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post(
                "/classify", content=b"{not json", headers={"content-type": "application/json"}
            )
            assert r.status_code == 422

    run(main)


def test_unknown_model_or_version_is_404_and_old_versions_answer(tiny_store: ModelStore) -> None:
    publish_tiny_classifier(tiny_store, "sentiment", seed=5, activate=False)

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.post("/classify", json={"model": "nope", "text": "hi"})
            assert r.status_code == 404 and r.json()["error"]["param"] == "model"
            r = await client.post("/classify", json={"model": "sentiment@9", "text": "hi"})
            assert r.status_code == 404
            r = await client.post("/classify", json={"model": "sentiment@2", "text": "great"})
            assert r.status_code == 200
            assert (r.json()["version"], r.json()["label"]) == (2, "positive")
            r = await client.post("/classify", json={"model": "sentiment", "text": "great"})
            assert r.json()["version"] == 1

    run(main)


def test_body_over_the_limit_is_413(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, max_body_bytes=2048)) as (client, _):
            payload = {"task": "sentiment", "texts": ["great"] * 1000}
            r = await client.post("/classify", json=payload)
            assert r.status_code == 413
            assert r.json()["error"]["param"] == "body"

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b" " * 1000

            r = await client.post(
                "/classify", content=chunks(), headers={"content-type": "application/json"}
            )
            assert r.status_code == 413
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.status_code == 200

    run(main)


@pytest.mark.parametrize("streams", [1, 2])
def test_concurrent_mixed_requests_match_unbatched_runs(
    tiny_store: ModelStore, streams: int
) -> None:
    """Many callers, mixed batch sizes and lengths: every row equals a direct single run,
    with one model run in flight or two (and the solo session for lone texts)."""
    rng = random.Random(7)
    words = "great awful the order refund parcel arrived late good bad love hate not".split()
    requests = [
        [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(n)]
        for n in (rng.randint(1, 10) for _ in range(80))
    ]

    async def main() -> None:
        settings = settings_for(tiny_store, max_batch_size=16, max_wait_ms=5, batch_streams=streams)
        async with running(settings) as (client, app):
            engine = app.state.services.registry.get("sentiment")
            assert (engine._solo is not None) == (streams > 1)
            lone = await client.post("/classify", json={"model": "sentiment", "text": "good"})
            assert lone.status_code == 200

            async def one(texts: list[str]) -> list[dict[str, object]]:
                body = {"model": "sentiment", "texts": texts, "return_all_scores": True}
                r = await client.post("/classify", json=body)
                assert r.status_code == 200, r.text
                results: list[dict[str, object]] = r.json()["results"]
                return results

            answers = await asyncio.gather(*(one(t) for t in requests))
            labels = engine.manifest.labels
            for texts, results in zip(requests, answers, strict=True):
                assert len(results) == len(texts)
                for text, result in zip(texts, results, strict=True):
                    (logits,), _ = engine.run_direct([text])
                    probs = np.exp(logits[0] - logits[0].max())
                    probs /= probs.sum()
                    got = result["scores"]
                    assert isinstance(got, dict)
                    assert [got[lbl] for lbl in labels] == pytest.approx(probs.tolist(), abs=1e-5)
                    assert result["label"] == labels[int(probs.argmax())]
            metrics = (await client.get("/metrics")).text
            assert "textserve_batch_size_texts_bucket" in metrics

    run(main)


def test_full_queue_answers_429_with_retry_after(tiny_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(tiny_store, max_queue_texts=4, max_batch_size=2, max_wait_ms=0)
        async with running(settings) as (client, app):
            gate = gate_engine(app, "sentiment")
            gate.gate.clear()
            body = {"task": "sentiment", "texts": ["great", "bad"]}
            busy = asyncio.create_task(client.post("/classify", json=body))
            await asyncio.sleep(0.1)
            queued = asyncio.create_task(
                client.post("/classify", json={"task": "sentiment", "texts": ["a"] * 4})
            )
            await asyncio.sleep(0.1)
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "overloaded"
            gate.gate.set()
            assert (await busy).status_code == 200
            assert (await queued).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert (
                'textserve_rejections_total{model="sentiment",reason="queue_full"} 1.0' in metrics
            )

    run(main)


def test_deadline_passed_in_queue_answers_504(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, max_batch_size=1)) as (client, app):
            gate = gate_engine(app, "sentiment")
            gate.gate.clear()
            busy = asyncio.create_task(
                client.post("/classify", json={"task": "sentiment", "text": "great"})
            )
            await asyncio.sleep(0.1)
            r = await client.post(
                "/classify", json={"task": "sentiment", "text": "late", "timeout_ms": 50}
            )
            assert r.status_code == 504
            assert r.json()["error"]["type"] == "deadline_exceeded"
            gate.gate.set()
            assert (await busy).status_code == 200

    run(main)


def test_inference_error_is_500_with_request_id_and_next_request_works(
    tiny_store: ModelStore,
) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, app):
            gate_engine(app, "sentiment").fail_next = True
            r = await client.post(
                "/classify",
                json={"task": "sentiment", "text": "great"},
                headers={"x-request-id": "req-123"},
            )
            assert r.status_code == 500
            assert r.json()["error"]["request_id"] == "req-123"
            assert r.headers["x-request-id"] == "req-123"
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'textserve_inference_errors_total{model="sentiment",version="1"} 1.0' in metrics

    run(main)
