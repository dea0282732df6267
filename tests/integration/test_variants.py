"""The served variant through the real app: chosen by `model_variant`, reported in /metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.runtime.variants import VariantSetting
from app.store.manifest import FP32, INT8
from app.store.versions import ModelStore
from tests.integration.conftest import run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier


@pytest.mark.parametrize(
    ("setting", "int8_accuracy", "served"),
    [
        ("auto", 0.895, INT8),
        ("auto", 0.80, FP32),  # int8 lost ten points on the held-out rows: not served
        ("fp32", 0.895, FP32),
        ("int8", 0.80, INT8),
    ],
)
def test_the_setting_picks_the_served_variant(
    store: ModelStore, setting: VariantSetting, int8_accuracy: float, served: str
) -> None:
    publish_tiny_classifier(store, int8=True, variant_accuracy={FP32: 0.9, INT8: int8_accuracy})

    async def main() -> None:
        settings = settings_for(store, model_variant=setting, providers=("CPUExecutionProvider",))
        async with running(settings) as (client, app):
            r = await client.post(
                "/classify",
                json={"model": "sentiment", "texts": ["great, love it", "awful"]},
            )
            assert r.status_code == 200
            assert [x["label"] for x in r.json()["results"]] == ["positive", "negative"]
            assert app.state.services.registry.get("sentiment").variant == served
            families = {
                f.name: f
                for f in text_string_to_metric_families((await client.get("/metrics")).text)
            }
            (info,) = families["textserve_model_info"].samples
            assert info.labels == {
                "model": "sentiment",
                "version": "1",
                "provider": "CPUExecutionProvider",
                "task": "classification",
                "variant": served,
            }

    run(main)
