"""/classify with topic and sentiment at once, streams, and GET /v1/monitor, on real tiny models."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.serving.monitor import OpinionMonitor
from app.store.versions import ModelStore
from tests.integration.conftest import gate_engine, run, running, settings_for
from tests.support.tiny_model import publish_tiny_classifier

CALM = ["great the invoice is good", "how do i change my password", "the parcel arrived great"]
COMPLAINT = "awful invoice charge terrible"


class Clock:
    def __init__(self) -> None:
        self.now = 5_000_000.0

    def __call__(self) -> float:
        return self.now


def with_clock(app: FastAPI) -> Clock:
    """Swap the app's monitor for one on a clock the test moves."""
    clock = Clock()
    opinion = app.state.services.opinion
    opinion.monitor = OpinionMonitor(keep_s=86_400, fine_keep_s=900, clock=clock)
    return clock


def error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()["error"]
    return body


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "fastapi"])
def test_one_call_answers_both_tasks_per_text(tiny_store: ModelStore, lean: bool) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, lean_http=lean)) as (client, _):
            r = await client.post(
                "/classify",
                json={
                    "tasks": ["topic", "sentiment"],
                    "texts": ["my parcel never arrived awful", "great invoice"],
                    "top_k": 2,
                },
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["models"] == {
                "topic": {"model": "topic", "version": 1},
                "sentiment": {"model": "sentiment", "version": 1},
            }
            labels = [(x["topic"]["label"], x["sentiment"]["label"]) for x in body["results"]]
            assert labels == [("delivery", "negative"), ("billing", "positive")]
            first = body["results"][0]["sentiment"]
            assert len(first["scores"]) == 2
            assert first["score"] == max(first["scores"].values())
            assert float(r.headers["x-total-time"]) >= 0

            # By model and version: the keys are the models' names.
            r = await client.post(
                "/classify", json={"models": ["sentiment@1", "topic"], "text": "login error"}
            )
            assert r.status_code == 200, r.text
            assert list(r.json()["results"][0]) == ["sentiment", "topic"]
            assert r.json()["results"][0]["topic"]["label"] in {"account", "technical_problem"}

    run(main)


def test_a_surge_on_one_topic_alerts_in_the_monitor_and_the_metric(tiny_store: ModelStore) -> None:
    async def send(client: httpx.AsyncClient, texts: list[str], stream: str = "news") -> None:
        r = await client.post(
            "/classify", json={"tasks": ["topic", "sentiment"], "texts": texts, "stream": stream}
        )
        assert r.status_code == 200, r.text

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, app):
            clock = with_clock(app)
            for _ in range(30):  # ten calm minutes
                await send(client, CALM)
                await send(client, CALM, "social")
                clock.now += 20
            for _ in range(30):  # one minute of complaints about billing
                clock.now += 2
                await send(client, [COMPLAINT, "the parcel arrived today"])
                await send(client, CALM, "social")
            r = await client.get(
                "/v1/monitor",
                params={"stream": "news", "window": "1m", "baseline": "10m", "min_count": 20},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["stream"], body["window_s"], body["baseline_s"]) == ("news", 60, 600)
            topics = {t["topic"]: t for t in body["topics"]}
            assert topics["billing"]["alerting"] is True
            assert topics["billing"]["negative_share"] == 1.0
            assert topics["billing"]["baseline_share"] == 0.0
            assert topics["delivery"]["alerting"] is False
            assert not any(t["alerting"] for t in topics.values() if t["topic"] != "billing")
            r = await client.get("/v1/monitor", params={"stream": "social", "window": "1m"})
            assert not any(t["alerting"] for t in r.json()["topics"])

            metrics = (await client.get("/metrics")).text
            line = 'textserve_opinion_total{sentiment="negative",stream="news",topic="billing"}'
            assert f"{line} 30.0" in metrics
            assert 'stream="social"' in metrics

    run(main)


def test_stream_names_are_bounded(tiny_store: ModelStore) -> None:
    async def main() -> None:
        async with running(settings_for(tiny_store, monitor_max_streams=16)) as (client, _):
            statuses = []
            for i in range(40):
                r = await client.post(
                    "/classify",
                    json={"tasks": ["topic", "sentiment"], "text": "great", "stream": f"s{i}"},
                )
                statuses.append(r.status_code)
            assert statuses == [200] * 16 + [422] * 24
            assert error(r)["param"] == "stream"
            assert "TEXTSERVE_MONITOR_MAX_STREAMS" in error(r)["message"]
            metrics = (await client.get("/metrics")).text
            streams = {
                line.split('stream="')[1].split('"')[0]
                for line in metrics.splitlines()
                if line.startswith("textserve_opinion_total{")
            }
            assert len(streams) == 16

        allow = settings_for(tiny_store, monitor_streams=("news", "social"))
        async with running(allow) as (client, _):
            body = {"tasks": ["topic", "sentiment"], "text": "great"}
            assert (await client.post("/classify", json={**body, "stream": "news"})).is_success
            e = error(await client.post("/classify", json={**body, "stream": "support"}))
            assert (e["param"], "allows: news, social" in e["message"]) == ("stream", True)

    run(main)


def test_bad_input_names_the_field(tiny_store: ModelStore) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tasks": ["topic", "emotion"], "text": "hi"}, "tasks.1"),
        ({"tasks": ["topic", "topic"], "text": "hi"}, "tasks"),
        ({"tasks": [], "text": "hi"}, "tasks"),
        ({"models": ["sentiment@1", "sentiment@2"], "text": "hi"}, "models"),
        ({"models": ["sentiment", "nope"], "text": "hi"}, "models"),
        ({"models": ["sentiment", "topic@x"], "text": "hi"}, "models"),
        ({"tasks": ["topic", "sentiment"], "text": "hi", "stream": "News!"}, "stream"),
        ({"tasks": ["topic", "sentiment"], "text": "hi", "stream": "x" * 41}, "stream"),
        ({"tasks": ["sentiment"], "text": "hi", "stream": "news"}, "stream"),
        ({"task": "sentiment", "tasks": ["topic"], "text": "hi"}, "body"),
        ({"tasks": ["topic", "sentiment"], "texts": ["ok", " "]}, "texts.1"),
    ]

    async def main() -> None:
        async with running(settings_for(tiny_store)) as (client, _):
            for body, param in cases:
                r = await client.post("/classify", json=body)
                expected = 404 if body.get("models") == ["sentiment", "nope"] else 422
                assert r.status_code == expected, (body, r.text)
                assert r.json()["error"]["param"] == param, (body, r.text)
            for params, param in [
                ({"window": "25h"}, "window"),
                ({"window": "6h", "baseline": "20h"}, "baseline"),
                ({"window": "5 minutes"}, "window"),
                ({"window": "0s"}, "window"),
                ({"stream": "Bad Name"}, "stream"),
                ({"min_count": "0"}, "min_count"),
                ({"floor": "2"}, "floor"),
            ]:
                e = error(await client.get("/v1/monitor", params=params))
                assert e["param"] == param, (params, e)
            r = await client.get("/v1/monitor", params={"stream": "never-seen"})
            assert r.status_code == 200
            assert r.json()["topics"] == []
            assert (r.json()["window_s"], r.json()["baseline_s"]) == (300, 3600)

    run(main)


def test_a_deadline_on_either_model_is_the_requests(tiny_store: ModelStore) -> None:
    async def main() -> None:
        settings = settings_for(tiny_store, solo_session=False, inline_when_idle=False)
        async with running(settings) as (client, app):
            gate = gate_engine(app, "sentiment")
            gate.gate.clear()
            try:
                r = await client.post(
                    "/classify",
                    json={
                        "tasks": ["topic", "sentiment"],
                        "text": "awful invoice",
                        "stream": "news",
                        "timeout_ms": 300,
                    },
                )
            finally:
                gate.gate.set()
            assert r.status_code == 504, r.text
            await asyncio.sleep(0.1)
            # Nothing was counted for a request that failed.
            r = await client.get("/v1/monitor", params={"stream": "news"})
            assert r.json()["topics"] == []
            r = await client.post(
                "/classify", json={"tasks": ["topic", "sentiment"], "text": "awful invoice"}
            )
            assert r.status_code == 200

    run(main)


def test_another_topic_model_pairs_with_sentiment_by_name(store: ModelStore) -> None:
    publish_tiny_classifier(store, "sentiment")
    publish_tiny_classifier(
        store,
        "news-topic",
        ("world", "sports", "business", "sci_tech"),
        {"charge": "business", "app": "sci_tech", "today": "world", "fast": "sports"},
    )

    async def main() -> None:
        async with running(settings_for(store)) as (client, _):
            r = await client.post(
                "/classify",
                json={"models": ["news-topic", "sentiment"], "text": "awful charge", "stream": "n"},
            )
            assert r.status_code == 200, r.text
            r = await client.get("/v1/monitor", params={"stream": "n", "min_count": 1})
            assert [(t["topic"], t["negative"]) for t in r.json()["topics"]] == [("business", 1)]

    run(main)
