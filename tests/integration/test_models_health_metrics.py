"""/v1/models, /healthz, /readyz and /metrics through the real app."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier


def test_models_list_is_openai_shaped_with_textserve_fields(tiny_store: ModelStore) -> None:
    publish_tiny_classifier(tiny_store, "sentiment", seed=3, activate=False)

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            body = (await client.get("/v1/models")).json()
            assert body["object"] == "list"
            cards = {m["id"]: m for m in body["data"]}
            assert set(cards) == {"sentiment", "topic"}
            card = cards["sentiment"]
            assert card["object"] == "model" and card["owned_by"] == "textserve"
            assert isinstance(card["created"], int) and card["created"] > 0
            assert card["active_version"] == 1 and card["loaded_version"] == 1
            assert card["provider"] == "CPUExecutionProvider"
            assert card["variant"] == "fp32"  # the tiny model has no int8 file
            assert card["labels"] == ["negative", "neutral", "positive"]
            assert [v["version"] for v in card["versions"]] == [1, 2]
            assert card["metrics"] == {"eval": {"accuracy": 0.5}}
            one = (await client.get("/v1/models/topic")).json()
            assert one["id"] == "topic" and one["task"] == "classification"
            r = await client.get("/v1/models/missing")
            assert r.status_code == 404

    run(main)


def test_readyz_is_503_with_reason_until_models_load(store: ModelStore) -> None:
    store.root.mkdir(parents=True, exist_ok=True)  # there, and empty

    async def main() -> None:
        async with running(settings_for(store)) as (client, _):
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert "no models" in r.json()["reason"]
            assert r.headers["retry-after"] == "1"
            r = await client.post("/classify", json={"task": "sentiment", "text": "hi"})
            assert r.status_code == 404

    run(main)


def test_readyz_tells_a_missing_store_from_an_empty_one(store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(store, model_store=store.root / "mistyped")
        async with running(settings) as (client, _):
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["reason"] == (
                f"the model store {store.root / 'mistyped'} does not exist (TEXTSERVE_MODEL_STORE)"
            )
            # Probes answer HEAD as load balancers send it, with the same status.
            assert (await client.head("/readyz")).status_code == 503
            assert (await client.head("/healthz")).status_code == 200

    run(main)


def test_readyz_names_a_corrupt_active_model(tiny_store: ModelStore) -> None:
    model = tiny_store.version_dir("topic", 1) / "model.onnx"
    model.write_bytes(b"garbage")

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert "topic" in r.json()["reason"] and "checksum" in r.json()["reason"]
            r = await client.post("/classify", json={"task": "topic", "text": "hi"})
            assert r.status_code == 503
            # The healthy model still serves.
            r = await client.post("/classify", json={"task": "sentiment", "text": "great"})
            assert r.status_code == 200

    run(main)


def test_readyz_turns_200_once_loaded_and_warm(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, app):
            r = await client.get("/readyz")
            assert r.status_code == 200
            assert r.json()["models"] == {"sentiment": "sentiment@1", "topic": "topic@1"}
            assert all(e.warm for e in app.state.services.registry.active_engines().values())

    run(main)


def test_metrics_expose_what_an_ops_dashboard_needs(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            await asyncio.gather(
                *(
                    client.post("/classify", json={"task": "sentiment", "text": f"great {i}"})
                    for i in range(10)
                )
            )
            await client.post("/classify", json={"task": "sentiment", "text": ""})
            r = await client.get("/metrics")
            assert r.headers["content-type"].startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(r.text)}

            def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
                return [(s.name, s.labels, s.value) for s in families[name].samples]

            reqs = samples("textserve_http_requests")
            classify_ok = {"route": "/classify", "method": "POST", "status": "200"}
            ok = [v for n, lbl, v in reqs if n.endswith("_total") and lbl == classify_ok]
            assert ok == [10.0]
            assert any(lbl.get("status") == "422" for _, lbl, _ in reqs)
            for name in (
                "textserve_http_request_duration_seconds",
                "textserve_queue_wait_seconds",
                "textserve_tokenization_seconds",
                "textserve_inference_seconds",
                "textserve_model_request_seconds",
                "textserve_batch_size_texts",
                "textserve_batch_size_tokens",
            ):
                counts = [v for n, _, v in samples(name) if n.endswith("_count")]
                assert counts and sum(counts) > 0, name
            mv = {"model": "sentiment", "version": "1"}
            assert ("textserve_texts_total", mv, 10.0) in samples("textserve_texts")
            assert any(
                n == "textserve_queue_depth_texts"
                for n, _, _ in samples("textserve_queue_depth_texts")
            )
            info = samples("textserve_model_info")
            assert (
                "textserve_model_info",
                {"model": "sentiment", "version": "1", "provider": "CPUExecutionProvider",
                 "task": "classification", "variant": "fp32"},
                1.0,
            ) in info  # fmt: skip
            preds = samples("textserve_predictions")
            assert ("textserve_predictions_total", {**mv, "label": "positive"}, 10.0) in preds
            # CUDA is requested by default and absent here: counted, not silent.
            missing = samples("textserve_provider_unavailable")
            assert any(
                lbl.get("provider") == "CUDAExecutionProvider" and v >= 1 for _, lbl, v in missing
            )
            assert ("textserve_ready", {}, 1.0) in samples("textserve_ready")

    run(main)
