"""The real `textserve serve` process: ready, classify, metrics, clean exit on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.store.versions import ModelStore
from tests.support.server import textserve_process


def test_serve_classify_scrape_and_stop(tiny_store: ModelStore, tmp_path: Path) -> None:
    with textserve_process(tiny_store.root, tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            r = client.post("/classify", json={"task": "sentiment", "text": "I love it, great"})
            assert r.status_code == 200, r.text
            assert (r.json()["label"], r.json()["version"]) == ("positive", 1)
            r = client.post("/classify", json={"task": "topic", "texts": ["invoice charge"]})
            assert r.json()["results"][0]["label"] == "billing"
            models = client.get("/v1/models").json()
            assert {m["id"] for m in models["data"]} == {"sentiment", "topic"}
            scrape = client.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(scrape)}
        answered = sum(
            s.value
            for s in families["textserve_http_requests"].samples
            if s.name == "textserve_http_requests_total" and s.labels["route"] == "/classify"
        )
        assert answered == 2
        assert "textserve_inference_seconds" in families
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
